"""Teach a new word the way an admin does, and measure the contract of issue 25 on real speakers.

The takes are real people saying the word (../shared/speech/extra/_unknown_/<word>_*):
`--takes` clips of the `--speakers` speakers who said it most. A fresh app (its own
database, runs and data folders: nothing cached, the check set built on the way, as on
a fresh clone) serving the shipped model gets them uploaded into a data set, then
`POST /admin/api/jobs {"dataset": ["default", "<set>"], "init": <active id>,
"activate": true}`; the time is from the request to the new version served. `--warm`
sends the same job a second time (the check set now built).

Then, the new version beside the shipped one:
- the new word said by every other speaker (never a take, and not in the shipped
  model's rehearsal pack either): how often it is heard as the word;
- the 8 command words (../shared/speech/words): accuracy (the shipped model trained on
  these speakers: not a held-out figure, but the same clips for both);
- the similar word (`--similar`, all its clips): how often it is NOT taken for the new word;
- continuous listening: bench_detect.py's noisy make_stream.py recordings (`--seeds`),
  hits and false alarms of both versions (the new word is no command there).

Run:  PYTHONPATH=. .venv/bin/python bench/bench_teach.py [--word on] [--similar off]
          [--takes 10] [--speakers 2] [--seeds 100-103] [--warm]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench_detect  # noqa: E402

from ml import dataset, guard, rehearsal  # noqa: E402

SPEECH = ROOT.parent / "shared" / "speech"
DEFAULT = ROOT / "models" / "default"
PASSWORD = "bench-teach-password"


def clips_of(word: str) -> dict[str, list[Path]]:
    """speaker -> their clips of `word` in ../shared/speech/extra/_unknown_."""
    out = defaultdict(list)
    for path in sorted((SPEECH / "extra" / "_unknown_").glob(f"{word}_*")):
        out[dataset.speaker_of(path.name)].append(path)
    return out


def pick_takes(by_speaker: dict, takes: int, speakers: int) -> list[Path]:
    """`takes` clips of the `speakers` speakers with the most (ties: by id), in turn."""
    chosen = sorted(by_speaker, key=lambda s: (-len(by_speaker[s]), s))[:speakers]
    pool = [p for rank in range(max(len(by_speaker[s]) for s in chosen))
            for s in chosen if rank < len(by_speaker[s]) for p in [by_speaker[s][rank]]]
    return pool[:takes]


def login(client) -> dict:
    import re

    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    return {"X-CSRFToken": token}


def teach_through_the_api(tmp: Path, word: str, takes: list[Path], warm: bool) -> tuple[Path, list[float]]:
    """The admin's path: a data set of the takes, then the contract's job; its run and times."""
    from webapp import create_app
    from webapp.datasets import store
    from webapp.training import startup

    app = create_app({"HARK_INSTANCE": str(tmp / "instance"), "HARK_RUNS": str(tmp / "runs"),
                      "HARK_DATA": str(tmp / "data"), "HARK_QUEUE_IMMEDIATE": True,
                      "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_MODEL_CHECK_S": 0,
                      "HARK_DEFAULT_MODEL": str(DEFAULT)})
    startup.check(app, auto_train=False)
    with app.app_context():
        ds = store.create(tmp / "data", "new-word", [word])
        store.add(ds, [store.prepare(p.read_bytes(), word, p.name, dataset.speaker_of(p.name), "upload")
                       for p in takes])
        key = ds.key
    client = app.test_client()
    headers = login(client)
    times, run = [], None
    for _ in range(2 if warm else 1):
        versions = client.get("/admin/api/versions").get_json()["versions"]
        active = next(v for v in versions if v["source"] == "default")["id"]
        started = time.monotonic()
        answer = client.post("/admin/api/jobs", headers=headers,
                             json={"dataset": ["default", key], "init": active, "activate": True})
        job = client.get(f"/admin/api/jobs/{answer.get_json()['id']}").get_json()
        times.append(time.monotonic() - started)
        if job["state"] != "succeeded":
            raise SystemExit(f"the job {job['state']}: {job.get('error')}\n{job['log_tail']}")
        print(job["log_tail"], file=sys.stderr)
        if not (job["activation"] or {}).get("activated"):
            print(f"NOT ACTIVATED: {(job['activation'] or {}).get('why')}")
        run = Path(job["run_dir"])
    return run, times


def heard_as(clf, paths: list[Path], label: str) -> float:
    from ml.audio import decode

    hits = sum(clf.classify(*decode(p)).label == label for p in paths)
    return hits / max(len(paths), 1)


def continuous(clf, seeds: list[int], cache: Path, word: str) -> dict:
    """bench_detect's totals, and false alarms without the new word's: the recordings hold
    words outside the vocabulary (unlabelled), the new word among them."""
    from ml.detect import Detector

    scores = []
    for seed in seeds:
        wav = bench_detect.recording(cache, None, seed, True, 40)
        wave, rate = sf.read(wav, dtype="float32")
        found = [d.to_dict() for d in Detector(clf).detect(wave, rate)]
        scores.append(bench_detect.score(found, bench_detect.read_truth(wav), len(wave) / rate))
        scores[-1]["new_word"] = sum(d["label"] == word for d in found)
    total = bench_detect.total(scores)
    total["new_word"] = sum(s["new_word"] for s in scores)
    total["other_fa_per_min"] = (total["false_alarms"] - total["new_word"]) / (total["seconds"] / 60)
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--word", default="on")
    p.add_argument("--similar", default="off")
    p.add_argument("--takes", type=int, default=10)
    p.add_argument("--speakers", type=int, default=2)
    p.add_argument("--seeds", default="100-103")
    p.add_argument("--warm", action="store_true", help="send the job twice; the second time warm")
    args = p.parse_args()
    if not SPEECH.is_dir():
        print(f"skipped: {SPEECH} is not here")
        return 0
    from ml.classifier import Classifier

    by_speaker = clips_of(args.word)
    takes = pick_takes(by_speaker, args.takes, args.speakers)
    taken = {dataset.speaker_of(t.name) for t in takes}
    in_pack = set(rehearsal.read(DEFAULT).speakers)
    others = [p for s, paths in by_speaker.items() if s not in taken and s not in in_pack for p in paths]
    print(f"teaching {args.word!r}: {len(takes)} takes by {len(taken)} speakers; tested on "
          f"{len(others)} clips of {len({dataset.speaker_of(p.name) for p in others})} other "
          f"speakers (none a take, none in the rehearsal pack)")
    with tempfile.TemporaryDirectory(prefix="bench-teach-") as tmp:
        run, times = teach_through_the_api(Path(tmp), args.word, takes, args.warm)
        print("from the request to the new version served: " +
              ", then ".join(f"{t:.1f} s" for t in times) + (" (fresh, then warm)" if args.warm else " (fresh)"))
        new, old = Classifier(run), Classifier(DEFAULT)
        words = dataset.list_clips(SPEECH / "words")[1]
        similar = sorted((SPEECH / "extra" / "_unknown_").glob(f"{args.similar}_*"))
        rows = [("the new word, other speakers", None, heard_as(new, others, args.word))]
        x, y, _ = dataset.load_arrays(words, new.labels)
        for name, clf in (("shipped", old), ("taught", new)):
            probs = clf.predict_batch(x)
            truth = [new.labels[i] for i in y]
            acc = np.mean([clf.labels[i] == t for i, t in zip(probs.argmax(1), truth)])
            rows.append((f"8 words, {name} (not held out)", None, float(acc)))
        rows.append((f"{args.similar} not taken for {args.word}", None,
                     1.0 - heard_as(new, similar, args.word)))
        for label, value in [(r[0], r[2]) for r in rows]:
            print(f"  {label:<40} {value:7.1%}")
        cache = Path(tmp) / "streams"
        cache.mkdir()
        seeds = bench_detect.seeds(args.seeds)
        for name, clf in (("shipped", old), ("taught", new)):
            t = continuous(clf, seeds, cache, args.word)
            print(f"  continuous, {len(seeds)} noisy recordings, {name:<8} hits {t['hit_rate']:.1%}, "
                  f"wrong {t['wrong_rate']:.1%}, {t['fa_per_min']:.2f} false alarms/min "
                  f"({t['other_fa_per_min']:.2f} without the {t['new_word']} {args.word!r} heard "
                  f"among the unlabelled words)")
        stick = guard.yardstick(Path(tmp) / "data" / "check")
        verdict = guard.compare(new, old, stick)
        print(f"  guard: {'ok' if verdict['ok'] else 'refused: ' + '; '.join(verdict['reasons'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

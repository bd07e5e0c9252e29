"""The detector's operating curve: commands heard against false alarms per hour of talk, music
and noise, at every threshold, with the run's sensitivity presets marked.

Window probabilities are computed once, as the detector computes them, for
- make_stream.py recordings of real speakers (bench/bench_detect.py's: noise on and off, by
  default the half of the speakers a run trained on half 0 never heard), and
- one part of ../shared/background (ml/negatives.py splits it by speaker and recording:
  `test` by default, never trained or tuned on; `dev` is where presets are chosen), per kind;
then the detector's decisions are replayed at each threshold (every other setting as the run
says). Every detection in background audio is a false alarm: it holds no isolated command.

`--choose` picks the three presets on the dev part: high, the lowest threshold with at most
1 false alarm a minute of each kind; medium, at most 6 an hour of talk and none in the dev
music and noise; low, none in any of it, and at least LOW_MARGIN above medium (the dev
minutes are few: an unseen hour has more surprises). `--write` then stores them, each with
what it measures on the test part, in the run's config.json `detector.sensitivity`;
`--write-to OTHER` stores them in another run's: the shipped model hears every speaker of
../shared/speech, so its presets are chosen and measured on the held-out run of its recipe
(trained without half 1), as its real_speech.json is.

Run:  PYTHONPATH=. .venv/bin/python bench/detector_curve.py [--model RUN] [--part test|dev]
          [--half tune|test|all] [--seeds 100-107] [--choose [--write | --write-to RUN]]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_detect import (  # noqa: E402
    MAKE_STREAM,
    SPEECH,
    TEST_SEEDS,
    half_dir,
    read_truth,
    recording,
    replay,
    score,
    seeds,
    total,
    window_probs,
)

from ml import runs  # noqa: E402
from ml.speakers import heard_speakers, speakers_in  # noqa: E402

BACKGROUND = ROOT.parent / "shared" / "background"
HOP_S = 0.05
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
HIGH_FA_PER_H = 60.0          # high: at most 1 a minute of each kind
MEDIUM_FA_PER_H = {"speech": 6.0, "music": 0.0, "noise": 0.0}
LOW_MARGIN = 0.1
FLOORS = ("floors (issue 26, medium): noisy hits >= 96%, wrong <= 2%, false alarms <= 12/h on "
          "speech and <= 6/h on music and noise; low: <= 2/h on each, hits >= 90%")


def background_windows(clf, part: str) -> dict[str, list]:
    """kind -> [(times, probs, energy, seconds)] of the part's recordings."""
    from ml.negatives import recordings

    out: dict[str, list] = {}
    for rec in recordings(BACKGROUND):
        if rec.part == part:
            out.setdefault(rec.kind, []).append(window_probs(clf, rec.path, round(HOP_S * 16000)))
    return out


def point(clf, config, served, streams, negatives) -> dict:
    """Hits and wrong labels on the recordings (noise on, off), false alarms per hour per kind."""
    row = {}
    for name, cached in streams.items():
        t = total([score(replay(clf.labels, served, config, *w[:3]), truth, w[3]) for w, truth in cached])
        row[name] = {"hits": round(t["hit_rate"], 4), "wrong": round(t["wrong_rate"], 4),
                     "commands": t["commands"]}
    row["false_alarms_per_hour"] = {}
    for kind, cached in negatives.items():
        fa = sum(len(replay(clf.labels, served, config, *w[:3])) for w in cached)
        hours = sum(w[3] for w in cached) / 3600
        row["false_alarms_per_hour"][kind] = round(fa / hours, 1)
    return row


def table(curve: dict[float, dict], marks: dict[float, str]) -> str:
    kinds = list(next(iter(curve.values()))["false_alarms_per_hour"])
    head = (f"{'threshold':>9} {'hits noisy':>10} {'hits clean':>10} {'wrong':>6} "
            + " ".join(f"{'FA/h ' + k:>12}" for k in kinds))
    lines = [head]
    for t, row in curve.items():
        wrong = (row["noise on"]["wrong"] + row["noise off"]["wrong"]) / 2
        lines.append(f"{t:>9.2f} {row['noise on']['hits']:>10.1%} {row['noise off']['hits']:>10.1%} "
                     f"{wrong:>6.1%} " + " ".join(f"{row['false_alarms_per_hour'][k]:>12.1f}" for k in kinds)
                     + (f"   <- {marks[t]}" if t in marks else ""))
    return "\n".join(lines)


def choose(curve: dict[float, dict]) -> dict[str, float]:
    """The presets' thresholds from a dev curve (see the module's docstring)."""
    def lowest(ok):
        passing = [t for t, row in curve.items() if ok(row["false_alarms_per_hour"])]
        return min(passing) if passing else max(curve)
    high = lowest(lambda fa: all(v <= HIGH_FA_PER_H for v in fa.values()))
    medium = lowest(lambda fa: all(fa.get(k, 0.0) <= v for k, v in MEDIUM_FA_PER_H.items()))
    low = lowest(lambda fa: all(v == 0 for v in fa.values()))
    low = min(max(low, medium + LOW_MARGIN), max(curve))
    return {"low": low, "medium": max(medium, high), "high": high}


def write_presets(model: Path, chosen: dict[str, float], measured: dict[str, dict], about: str) -> None:
    """The presets, with what each measures, into the run's config.json (atomically)."""
    path = model / "config.json"
    config = runs.read_json(path)
    config.setdefault("detector", {})["sensitivity"] = {
        name: {"threshold": chosen[name], "thresholds": {}, "measured": {**measured[name], "on": about}}
        for name in ("low", "medium", "high")}
    runs.write_json(path, config)


def marks(thresholds: dict[str, float]) -> dict[float, str]:
    """threshold -> the presets at it ("low", "medium/high"), for `table`."""
    return {t: "/".join(n for n in thresholds if thresholds[n] == t) for t in thresholds.values()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"), help="run directory")
    ap.add_argument("--part", choices=["test", "dev"], default="test",
                    help="which held-out part of the background folder (default test)")
    ap.add_argument("--half", choices=["tune", "test", "all"], default="test",
                    help="speakers of the recordings: half 0 (tune), half 1 (test, default), all")
    ap.add_argument("--seeds", default=TEST_SEEDS, help=f"make_stream.py seeds (default {TEST_SEEDS})")
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--choose", action="store_true", help="choose the presets on the dev part")
    ap.add_argument("--write", action="store_true",
                    help="with --choose: store them in the run's config.json")
    ap.add_argument("--write-to", metavar="RUN",
                    help="with --choose: store them in this run's config.json instead (a model of "
                         "the same recipe that heard the scored speakers)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "hark-detect-streams"))
    args = ap.parse_args()
    if not (SPEECH / "words").is_dir() or not MAKE_STREAM.is_file() or not BACKGROUND.is_dir():
        print(f"skipped: needs {SPEECH}, {MAKE_STREAM} and {BACKGROUND}")
        return 0
    from ml.classifier import Classifier
    from ml.detect import SENSITIVITIES, DetectorConfig

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model = Path(args.model)
    clf = Classifier(model, threads=1)
    served = float(clf.config.get("unknown_weight", 1.0) or 1.0)
    base = replace(DetectorConfig.for_run(clf.config), hop_s=HOP_S, thresholds={})
    half = {"tune": 0, "test": 1, "all": None}[args.half]
    people = speakers_in(half_dir(half, cache))
    heard = people & heard_speakers(model)
    print(f"model {clf.version} ({model}); recordings: half {args.half} of the speakers, seeds {args.seeds}"
          + (f" -- NOT HELD OUT: the model heard {len(heard)} of these {len(people)} speakers" if heard else ""))
    streams = {f"noise {'on' if noise else 'off'}": [
        (window_probs(clf, w, round(HOP_S * 16000)), read_truth(w))
        for w in (recording(cache, half, s, noise, args.words) for s in seeds(args.seeds))]
        for noise in (True, False)}

    negatives = {}

    def at(part, t):
        if part not in negatives:
            negatives[part] = background_windows(clf, part)
            minutes = {k: round(sum(w[3] for w in v) / 60, 1) for k, v in negatives[part].items()}
            print(f"background part {part!r} of {BACKGROUND}: minutes {minutes}")
        return point(clf, replace(base, threshold=t), served, streams, negatives[part])

    def curve_on(part, extra=()):
        return {t: at(part, t) for t in sorted({*THRESHOLDS, *extra})}

    current = {name: DetectorConfig.for_run(clf.config, sensitivity=name).threshold for name in SENSITIVITIES}
    if args.choose:
        dev = curve_on("dev")
        chosen = choose(dev)
        print(table(dev, marks(chosen)))
        print(f"chosen on dev: {json.dumps(chosen)}")
        current = chosen
    curve = curve_on(args.part, current.values())
    print(table(curve, marks(current)))
    for name, t in current.items():
        print(f"{name:>6} (threshold {t}): {json.dumps(curve[t])}")
    if args.choose and (args.write or args.write_to):
        target = Path(args.write_to or model)
        speakers = {"tune": "half 0 of", "test": "half 1 of", "all": "all of"}[args.half]
        about = (f"{'run ' + clf.version + ', the same recipe without the scored speakers: ' if args.write_to else ''}"
                 f"background part {args.part} of ../shared/background, make_stream.py recordings of "
                 f"{speakers} the speakers of ../shared/speech, seeds {args.seeds}"
                 + (" (speakers heard in training)" if heard else ""))
        write_presets(target, current, {n: curve[t] for n, t in current.items()}, about)
        print(f"wrote the presets into {target / 'config.json'}")
    print(FLOORS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a run's real-speech evaluation into RUN/real_speech.json, so it travels with the run.

The test-split accuracy of a model trained on the synthetic default set says how
it hears synthetic voices; pages show this file's figures beside it, labelled
"real speech" (webapp/versions/accuracy.py). The file holds the reports of
`python -m ml evaluate --model RUN --data FOLDER --json` for ../shared/speech/words
(the 8 commands) and ../shared/speech/extra (silence and other words), and how
they were measured (commands, date, clips, speakers, library versions). A run trained
on one half of those speakers (`python -m ml data speakers ... --half 0`) is evaluated
on the other half only: `--half 1`. A run trained on every one of those speakers cannot be
scored on them: `--measured-with OTHER` writes into its card the figures of OTHER, the same
recipe trained on one half, on the other half, and says so. Each set records how many of its
speakers the measured model heard in training (its split.json): 0 for a held-out figure.

Run: PYTHONPATH=. .venv/bin/python bench/real_speech_card.py --model RUN [--half 1] [--measured-with OTHER]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "speech"
SETS = (("words", "the 8 command words"), ("extra", "silence and words that are not commands"))


def shown(path: Path) -> str:
    """A folder as written in the card: relative to the checkout where it can be."""
    try:
        return os.path.relpath(path.resolve(), ROOT)
    except ValueError:
        return str(path)


def card(run_dir: Path, folders: dict[str, Path], half: int | None = None,
         measured_with: Path | None = None) -> dict:
    from ml import runs
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_folder
    from ml.speakers import heard_speakers, link_half, speakers_in

    measured = measured_with or run_dir
    classifier = Classifier(measured)
    config = runs.read_json(measured / "config.json")
    heard = heard_speakers(measured)
    sets = []
    for name, title in SETS:
        source = folders[name]
        with tempfile.TemporaryDirectory() as tmp:
            folder, data, command = source, shown(source), ""
            if half is not None:    # only the speakers of that half, linked
                folder = Path(tmp) / f"{name}-half{half}"
                link_half([source], half, folder)
                data = folder.name
                command = f"python -m ml data speakers {shown(source)} --half {half} --dest {data} && "
                title += (f", the half of the speakers (half {half}) that the same recipe trained "
                          f"on the other half never heard" if measured_with else
                          f", the half of the speakers it never heard (half {half})")
            started = time.perf_counter()
            report, _ = evaluate_folder(classifier, folder)
            people = speakers_in(folder)
            sets.append({"name": name, "title": title, "folder": shown(source), "half": half,
                         "speakers": len(people), "speakers_heard": len(people & heard),
                         "seconds": round(time.perf_counter() - started, 1),
                         "command": command + f"python -m ml evaluate --model {shown(measured)} "
                                              f"--data {data} --json",
                         "report": report})
    about = ("How this model hears real people: recordings of human speakers from Google's "
             "Speech Commands (CC BY 4.0), none of them in its training data. Each report is "
             "what the command beside it prints; the model is evaluated as served.")
    if measured_with:
        about = ("How this recipe hears real people it never heard: this model was trained on every "
                 "speaker of Google's Speech Commands clips here (CC BY 4.0), so the figures are "
                 f"those of {shown(measured)}, the same recipe trained on one half of them, on the "
                 "other half. Each report is what the command beside it prints, evaluated as served.")
    return {
        "about": about,
        "model": classifier.version,
        **({"measured_with": shown(measured)} if measured_with else {}),
        "served_unknown_weight": config.get("unknown_weight", 1.0),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "written_by": "bench/real_speech_card.py",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "sets": sets,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the run directory (e.g. models/default)")
    ap.add_argument("--words", default=str(SHARED / "words"), help="folder of the 8 command words")
    ap.add_argument("--extra", default=str(SHARED / "extra"), help="folder of _silence_ and _unknown_")
    ap.add_argument("--half", type=int, choices=(0, 1),
                    help="only this half of the speakers (ml/speakers.py): the run trained on the other")
    ap.add_argument("--measured-with", metavar="OTHER",
                    help="score OTHER (the same recipe trained on the other half; needs --half) and "
                         "write its figures into --model's card: for a run that heard every speaker")
    args = ap.parse_args(argv)
    folders = {"words": Path(args.words), "extra": Path(args.extra)}
    missing = [str(p) for p in folders.values() if not p.is_dir()]
    if missing:
        print(f"skipped: real speech not found at {', '.join(missing)}")
        return 0
    if args.measured_with and args.half is None:
        ap.error("--measured-with needs --half: the half OTHER never heard")
    run_dir = Path(args.model)
    result = card(run_dir, folders, args.half, args.measured_with and Path(args.measured_with))
    from ml import runs

    runs.write_json(run_dir / "real_speech.json", result)
    for entry in result["sets"]:
        r = entry["report"]
        print(f"{entry['name']:6} {r['accuracy']:.1%} on {r['n']:,} clips "
              f"({entry['speakers']} speakers, {entry['speakers_heard']} of them heard in training, "
              f"{entry['seconds']} s)")
    print(run_dir / "real_speech.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

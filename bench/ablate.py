"""What each TTS engine and the training-time augmentation add, measured on real speech.

Trains an architecture (kws by default; `--arch embed-mlp embed-conv` for the heads on
the pretrained speech embedding, `--arch ensemble` for the shipped recipe) on the default
data set with one engine left out at a time (and once without training-time
augmentation), then evaluates
every model on the real clips in ../shared/speech: accuracy on the 8 words,
and recall of _silence_ and _unknown_ on extra/. Prints one row per variant.
The figures are the raw network's (no served `_unknown_` weight): the subsets
carry no dataset.json, so what each part of the data adds is not hidden by it.

Run: PYTHONPATH=. .venv/bin/python bench/ablate.py [--data data/default] [--epochs 10]
         [--arch kws embed-mlp ...] [--variants all no-espeak ...]
Needs ../shared/speech (skips with a message without it). Long: one training
run per variant.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "speech"


def subset(data: Path, dest: Path, drop_engine: str | None) -> Path:
    """A symlinked view of `data` without the clips of one engine."""
    with open(data / "manifest.csv") as f:
        for row in csv.DictReader(f):
            if drop_engine and row["engine"] == drop_engine:
                continue
            target = dest / row["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to((data / row["file"]).resolve())
    return dest


def real_speech_figures(run_dir: Path) -> dict:
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_folder

    clf = Classifier(run_dir)
    words, _ = evaluate_folder(clf, SHARED / "words", log=lambda m: None)
    extra, _ = evaluate_folder(clf, SHARED / "extra", log=lambda m: None)
    return {"words": words["accuracy"],
            "silence_recall": extra["per_class"]["_silence_"]["recall"],
            "unknown_recall": extra["per_class"]["_unknown_"]["recall"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--variants", nargs="*", help="e.g. all no-espeak no-augment")
    ap.add_argument("--arch", nargs="+", default=["kws"], help="architectures to ablate (ml/config.py)")
    args = ap.parse_args()
    if not (SHARED / "words").is_dir():
        print(f"skipped: real speech not found at {SHARED}")
        return
    from ml.train import TrainConfig, train

    data = Path(args.data)
    engines = json.loads((data / "dataset.json").read_text())["engines"]
    variants = args.variants or ["all", *(f"no-{e}" for e in engines), "no-augment"]
    print(f"{'arch':10} {'variant':14} {'clips':>6} {'words acc':>9} {'silence R':>9} "
          f"{'unknown R':>9}", flush=True)
    for arch in args.arch:
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                drop = variant[3:] if variant.startswith("no-") and variant != "no-augment" else None
                view = subset(data, Path(tmp) / "data", drop)
                n = sum(1 for _ in view.glob("*/*.wav"))
                cfg = TrainConfig(data=str(view), arch=arch, epochs=args.epochs,
                                  runs=str(Path(tmp) / "runs"),
                                  augment=False if variant == "no-augment" else None)
                run = train(cfg, verbose=0, log=lambda m: None)
                r = real_speech_figures(run)
                print(f"{arch:10} {variant:14} {n:>6} {r['words']:>9.1%} {r['silence_recall']:>9.1%} "
                      f"{r['unknown_recall']:>9.1%}", flush=True)


if __name__ == "__main__":
    main()

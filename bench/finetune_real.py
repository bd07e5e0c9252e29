"""Fine-tune a model on real speech and measure it on real speakers it never heard (issue 15).

Builds one data set of ../shared/speech (words/ and extra/ together, as links: nothing is
copied), split by speaker (extra/'s `<word>_<speaker>_nohash_<n>` names are linked as
`<speaker>_nohash_<n>_<word>` so its speakers are split with the rest), then runs what
`python -m ml train --data SET --init MODEL --epochs E --lr LR` runs, and prints the
model's accuracy on that split's test speakers before and after: all clips, the 8 words,
_silence_ and _unknown_ recall, and how long the fine-tuning took. The run directory is
kept under --runs.

Run: PYTHONPATH=. .venv/bin/python bench/finetune_real.py [--model models/default] [--epochs 8]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "speech"
WORD_FIRST = re.compile(r"^([a-z]+)_([0-9a-f]{8}_nohash_[0-9]+)\.wav$")


def link_set(speech: Path, dest: Path) -> Path:
    """words/ and extra/ as one folder of links, every speaker named first."""
    for part in ("words", "extra"):
        for folder in sorted((speech / part).iterdir()):
            if not folder.is_dir():
                continue
            (dest / folder.name).mkdir(parents=True, exist_ok=True)
            for clip in sorted(folder.glob("*.wav")):
                match = WORD_FIRST.match(clip.name)
                name = f"{match.group(2)}_{match.group(1)}.wav" if match else clip.name
                os.symlink(clip.resolve(), dest / folder.name / name)
    return dest


def figures(clf, clips) -> dict:
    """Accuracy on all clips, on the 8 words, and _silence_ / _unknown_ recall."""
    import numpy as np

    from ml.config import SILENCE, UNKNOWN
    from ml.dataset import load_arrays

    x, y, _ = load_arrays(clips, clf.labels, log=lambda m: None)
    pred = clf.predict_batch(x).argmax(axis=1)
    truth = [clf.labels[i] for i in y]
    right = pred == y

    def share(which):
        mask = np.array([which(t) for t in truth])
        return float(right[mask].mean()) if mask.any() else float("nan"), int(mask.sum())
    return {"all": share(lambda t: True), "words": share(lambda t: t not in (SILENCE, UNKNOWN)),
            SILENCE: share(lambda t: t == SILENCE), UNKNOWN: share(lambda t: t == UNKNOWN)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "default"), help="the run to start from")
    p.add_argument("--speech", default=str(SHARED), help="the real speech folder (words/, extra/)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--runs", default=None, help="where the fine-tuned run goes (default: a temp folder)")
    args = p.parse_args(argv)
    speech = Path(args.speech)
    if not (speech / "words").is_dir():
        print(f"no real speech at {speech} (see ../shared/speech/README.md)", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ml.classifier import Classifier
    from ml.config import TrainConfig
    from ml.dataset import gather
    from ml.speakers import heard_speakers
    from ml.train import train

    work = Path(tempfile.mkdtemp(prefix="hark-finetune-"))
    data = link_set(speech, work / "speech")
    sets = gather([data], "speaker", 0, log=lambda m: None)
    test = sets.parts["test"]
    speakers = {c.speaker for c in test if c.speaker}
    print(f"{len(sets.clips):,} clips; test split: {len(test):,} clips of {len(speakers)} speakers "
          f"never trained on")
    heard = speakers & heard_speakers(args.model)
    if heard:
        print(f"NOT HELD OUT: {args.model} heard {len(heard)} of these {len(speakers)} speakers before "
              "fine-tuning (its split.json): 'before' is not a figure on new people")
    before = figures(Classifier(args.model), test)
    started = time.monotonic()
    run = train(TrainConfig(data=str(data), init=args.model, epochs=args.epochs,
                            learning_rate=args.lr, batch_size=args.batch_size,
                            runs=args.runs or str(work / "runs")),
                verbose=2, log=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.monotonic() - started
    after = figures(Classifier(run), test)
    print(f"\nfine-tuned {Path(args.model).name} -> {run} in {seconds / 60:.1f} min "
          f"({args.epochs} epochs, lr {args.lr:g}, batch {args.batch_size}, {os.cpu_count()} cores)")
    print(f"{'test speakers':<16}{'clips':>7}{'before':>9}{'after':>9}")
    for key, name in (("all", "all clips"), ("words", "8 words"), ("_silence_", "_silence_ R"),
                      ("_unknown_", "_unknown_ R")):
        print(f"{name:<16}{before[key][1]:>7}{before[key][0]:>9.1%}{after[key][0]:>9.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

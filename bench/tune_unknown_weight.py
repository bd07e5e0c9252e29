"""Choose the served weight of `_unknown_` on half of the real speakers, report on all.

The synthetic training set makes `_unknown_` a catch-all for voices unlike the
synthetic ones; a weight below 1 (ml/graph_layers.py LabelWeights) trades a little
`_unknown_` recall for command accuracy. This picks the weight on the speakers
of one half of ../shared/speech (split by speaker hash) and prints the figures
for the other half and for all speakers, for every weight tried. Never tune on a half the
run trained on: for the default (trained on half 0) that is done with a run of the same
recipe on half 1 and `--tune-half 0`.

Run: PYTHONPATH=. .venv/bin/python bench/tune_unknown_weight.py --model RUN_DIR
Then: python -m ml export --model RUN_DIR --unknown-weight W (and, for the default
set, UNKNOWN_WEIGHTS in ml/synth/generate.py, which its dataset.json hands to training)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "speech"
WEIGHTS = (1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05)


def load(clf, folder: Path):
    from ml import dataset
    from ml.graph_layers import label_weights
    from ml.speakers import speaker_half

    _, clips = dataset.list_clips(folder)
    x, y, kept = dataset.load_arrays(clips, clf.labels, lambda m: None)
    probs = clf.predict_batch(x)
    raw = probs / np.array(label_weights(clf.labels, clf.config.get("unknown_weight", 1.0)))
    raw /= raw.sum(axis=1, keepdims=True)   # undo the run's own weight
    half = np.array([speaker_half(c.path.name) for c in kept])
    return raw, y, half


def figures(data, labels, weight, part):
    u, s = labels.index("_unknown_"), labels.index("_silence_")
    out = {}
    for name, (probs, y, half) in data.items():
        keep = np.ones(len(y), bool) if part is None else half == part
        p = probs[keep].copy()
        p[:, u] *= weight
        pred, yy = p.argmax(1), y[keep]
        if name == "words":
            out["words"] = float(np.mean(pred == yy))
        else:
            out["silence"] = float(np.mean(pred[yy == s] == s))
            out["unknown"] = float(np.mean(pred[yy == u] == u))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--min-unknown", type=float, default=0.65, help="keep _unknown_ recall above this")
    ap.add_argument("--tune-half", type=int, choices=(0, 1), default=0,
                    help="the speakers' half the weight is chosen on (default 0): never one the run "
                         "trained on")
    args = ap.parse_args()
    if not (SHARED / "words").is_dir():
        print(f"skipped: real speech not found at {SHARED}")
        return
    from ml.classifier import Classifier

    clf = Classifier(args.model)
    data = {"words": load(clf, SHARED / "words"), "extra": load(clf, SHARED / "extra")}
    print(f"{'weight':>6} | tune half: words silence unknown | other half: words silence unknown"
          f" | all: words silence unknown")
    best = None
    for w in WEIGHTS:
        t, o, a = (figures(data, clf.labels, w, part) for part in (args.tune_half, 1 - args.tune_half, None))
        print(f"{w:>6} | " + " | ".join(f"{f['words']:.3f} {f['silence']:.3f} {f['unknown']:.3f}"
                                        for f in (t, o, a)))
        if t["unknown"] >= args.min_unknown and (
                best is None or t["words"] > best[1]):
            best = (w, t["words"])
    print(f"chosen on the tune half: --unknown-weight {best[0] if best else 1.0}")


if __name__ == "__main__":
    main()

"""Evaluating a served model (a Classifier) on arrays or on a whole data folder.

Evaluation runs the same LiteRT graphs the web app serves, so the figures
are those of the model users get. A folder is evaluated whole (`evaluate_folder`,
the CLI) or chunk by chunk (`evaluate_in_chunks`, the web app's evaluation jobs):
memory stays flat whatever the folder's size, progress is reported after every
chunk, a stop flag is asked before every clip, and at most CLIP_SECONDS of each
clip is decoded (a longer or heavier file is skipped, its reason logged).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ml import dataset, runs
from ml.audio import AudioError, decode, fit_clip, to_model_rate
from ml.cancel import Cancelled
from ml.classifier import Classifier
from ml.metrics import classification_report

CHUNK = 256               # clips read and classified between two progress reports
# Evaluation clips are one-second words: a file may hold up to this much audio (and the
# decoder's sample cap for it: 10 s at 384 kHz mono), decoded within CLIP_DECODE_S.
CLIP_SECONDS, CLIP_DECODE_S = 10.0, 2.0
SKIPS_LOGGED = 10         # clips skipped are named in the log up to this many, then counted


class Scorer(Protocol):
    """What evaluate_arrays reads: a Classifier, or an ensemble member's Keras model (ml/train.py)."""
    labels: list[str]

    def predict_batch(self, clips: np.ndarray) -> np.ndarray: ...


def evaluate_arrays(clf: Scorer, x, y, clips, root) -> tuple[dict, list[dict]]:
    """The report and one prediction row per clip (path relative to `root`)."""
    labels = clf.labels
    probs = clf.predict_batch(x)
    pred = probs.argmax(axis=1)
    report = classification_report(y, pred, labels)
    rows = [{"path": str(c.path.relative_to(root)), "true": labels[t], "pred": labels[p],
             "confidence": round(float(pr[p]), 4),
             "probabilities": {label: round(float(v), 4) for label, v in zip(labels, pr)}}
            for c, t, p, pr in zip(clips, y, pred, probs)]
    return report, rows


def evaluate_folder(clf: Classifier, data: Path, log=None) -> tuple[dict, list[dict]]:
    """Evaluate on every clip of a folder whose labels are a subset of the model's."""
    data = Path(data)
    clips = known_clips(data, clf.labels)
    x, y, kept = dataset.load_arrays(clips, clf.labels, log)
    return evaluate_arrays(clf, x, y, kept, data)


def known_clips(folder: Path, labels: list[str]) -> list[dataset.Clip]:
    """The folder's clips, when every one of its labels is one the model knows (DataError if not)."""
    found, clips = dataset.list_clips(folder)
    unknown = [label for label in found if label not in labels]
    if unknown:
        raise dataset.DataError(f"{folder}: label(s) {', '.join(unknown)} unknown to the model "
                                f"(it knows {', '.join(labels)})")
    return clips


def read_clip(path: Path) -> np.ndarray:
    """One evaluation clip as the model's input; AudioError past CLIP_SECONDS or its decode time."""
    wave, rate = decode(path, max_seconds=CLIP_SECONDS, time_limit_s=CLIP_DECODE_S)
    return fit_clip(to_model_rate(wave, rate))[0]


def evaluate_in_chunks(clf: Classifier, folder: Path, log: Callable[[str], None] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> tuple[dict, list[dict]]:
    """The report and prediction rows of `clf` on every clip of `folder`, CHUNK clips at a time.

    `progress(done, total)` is called after every chunk; `should_stop()` is asked before every
    clip and raises ml.cancel.Cancelled when it says so. DataError for labels the model does not
    know, or when none of the clips could be read."""
    log = log or (lambda msg: None)
    folder = Path(folder)
    labels = clf.labels
    clips = known_clips(folder, labels)
    index = {label: i for i, label in enumerate(labels)}
    rows, y_true, y_pred, skipped = [], [], [], 0
    for first in range(0, len(clips), CHUNK):
        waves, kept = [], []
        for clip in clips[first:first + CHUNK]:
            if should_stop is not None and should_stop():
                raise Cancelled("the evaluation was cancelled")
            try:
                waves.append(read_clip(clip.path))
                kept.append(clip)
            except AudioError as exc:
                skipped += 1
                if skipped <= SKIPS_LOGGED:
                    log(f"skipped {exc}")
        if kept:
            y = np.array([index[c.label] for c in kept], dtype=np.int32)
            _, chunk_rows = evaluate_arrays(clf, np.stack(waves), y, kept, folder)
            rows += chunk_rows
            y_true += y.tolist()
            y_pred += [index[r["pred"]] for r in chunk_rows]
        if progress is not None:
            progress(min(first + CHUNK, len(clips)), len(clips))
    if skipped:
        log(f"skipped {skipped:,} of {len(clips):,} clips in all (unreadable, or longer than "
            f"{CLIP_SECONDS:g} s)")
    if not rows:
        raise dataset.DataError(f"{folder}: none of its clips could be read")
    return classification_report(np.array(y_true), np.array(y_pred), labels), rows


def evaluate_test_split(run_dir: Path, root: Path | None = None, log=None) -> dict:
    """Evaluate a run's served graphs on its own test split; write metrics and predictions."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json")
    root = Path(root or config["data"])
    clf = Classifier(run_dir)
    clips = [dataset.Clip(root / path, Path(path).parent.name)
             for path in runs.read_json(run_dir / "split.json")["test"]]
    missing = [c for c in clips if not c.path.is_file()]
    if missing:
        raise dataset.DataError(f"{root}: {len(missing)} test clips of this run are missing "
                                f"(e.g. {missing[0].path.name}); is this the data it was trained on?")
    x, y, kept = dataset.load_arrays(clips, clf.labels, log)
    report, rows = evaluate_arrays(clf, x, y, kept, root)
    runs.write_json(run_dir / "metrics.json", report)
    runs.write_json(run_dir / "predictions.json", rows)
    return report

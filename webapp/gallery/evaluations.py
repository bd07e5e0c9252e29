"""Evaluating a model on another folder of clips, and keeping the result for the gallery.

`evaluate_and_store` is a plain function (paths in, a summary dict out, no Flask):
the queue consumer runs it as an "evaluate" job (webapp/training/runner.py) with a
progress callback and a stop flag; it reads the folder in chunks, so memory stays
flat whatever its size, and decodes at most CLIP_SECONDS of each clip (a longer or
heavier file is skipped, with its reason in the log). One evaluation is one JSON
file in the evaluations folder, written atomically: the report (like
metrics.json), one row per clip (like predictions.json), the folder, the model
and the time. The gallery lists those files as sources next to the test splits.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ml import runs
from ml.audio import AudioError, decode, fit_clip, to_model_rate
from ml.dataset import DataError, list_clips
from webapp.settings import ROOT
from webapp.training.jobs import server_path

ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{6}")   # fullmatch: `$` lets "x\n" in
CHUNK = 256               # clips read and classified between two progress reports
# Evaluation clips are one-second words: a file may hold up to this much audio (and the
# decoder's sample cap for it: 10 s at 384 kHz mono), decoded within CLIP_DECODE_S.
CLIP_SECONDS, CLIP_DECODE_S = 10.0, 2.0
SKIPS_LOGGED = 10         # clips skipped are named in the log up to this many, then counted


class Cancelled(Exception):
    """The evaluation was asked to stop (its job was cancelled, or the consumer is stopping)."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "folder"


def check_folder(folder: str | Path, base: Path = ROOT) -> Path:
    """The folder as an absolute path (a relative one is taken from `base`, the checkout),
    if it exists and has clips in label folders; DataError otherwise."""
    path = server_path(str(folder), base)
    try:
        path = path.resolve()
        if not path.is_dir():
            raise DataError(f"{path}: no such folder on the server")
        list_clips(path)     # raises DataError when there is no clip in <label>/ sub-folders
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return path


def read_clip(path: Path) -> np.ndarray:
    """One evaluation clip as the model's input; AudioError past CLIP_SECONDS or its decode time."""
    wave, rate = decode(path, max_seconds=CLIP_SECONDS, time_limit_s=CLIP_DECODE_S)
    return fit_clip(to_model_rate(wave, rate))[0]


def evaluate_and_store(model_dir: str | Path, folder: str | Path, store: str | Path,
                       log: Callable[[str], None] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> dict:
    """Evaluate the run `model_dir` on `folder` and store the result in `store`.

    `progress(done, total)` is called after every chunk of clips; `should_stop()` is
    asked before every clip and raises Cancelled when it says so (nothing is stored).
    Raises ml.dataset.DataError (a ValueError, message for people) for a missing
    folder, a folder not in the layout, or labels the model does not know.
    Returns {"id", "model", "folder", "created", "accuracy", "n", "file"}.
    """
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_arrays
    from ml.metrics import classification_report

    log = log or (lambda msg: None)
    folder = check_folder(folder)
    model_dir = Path(model_dir).resolve()
    try:
        classifier = Classifier(model_dir)
    except (OSError, ValueError) as exc:
        raise DataError(f"the model cannot be loaded: {exc}") from None
    labels = classifier.labels
    clips = _known_clips(folder, labels)
    started = time.time()
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
            _, chunk_rows = evaluate_arrays(classifier, np.stack(waves), y, kept, folder)
            rows += chunk_rows
            y_true += y.tolist()
            y_pred += [index[r["pred"]] for r in chunk_rows]
        if progress is not None:
            progress(min(first + CHUNK, len(clips)), len(clips))
    if skipped:
        log(f"skipped {skipped:,} of {len(clips):,} clips in all (unreadable, or longer than "
            f"{CLIP_SECONDS:g} s)")
    if not rows:
        raise DataError(f"{folder}: none of its clips could be read")
    report = classification_report(np.array(y_true), np.array(y_pred), labels)
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))
    digest = hashlib.sha1(f"{folder}|{model_dir}|{started}".encode()).hexdigest()[:6]
    eval_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}-{_slug(folder.name)}-{digest}"
    record = {"id": eval_id, "model": classifier.version, "model_dir": str(model_dir),
              "folder": str(folder), "created": created,
              "seconds": round(time.time() - started, 2), "report": report, "rows": rows}
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{eval_id}.json"
    runs.write_json(path, record)
    return {"id": eval_id, "model": classifier.version, "folder": str(folder), "created": created,
            "accuracy": report["accuracy"], "n": report["n"], "file": str(path)}


def _known_clips(folder: Path, labels: list[str]) -> list:
    """The folder's clips, when every one of its labels is one the model knows."""
    found, clips = list_clips(folder)
    unknown = [label for label in found if label not in labels]
    if unknown:
        raise DataError(f"{folder}: label(s) {', '.join(unknown)} unknown to the model "
                        f"(it knows {', '.join(labels)})")
    return clips


def list_evaluations(store: str | Path) -> list[Path]:
    """Stored evaluation files, newest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted((p for p in store.glob("*.json") if ID.fullmatch(p.stem)), reverse=True)

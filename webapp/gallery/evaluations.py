"""Evaluating a model on another folder of clips, and keeping the result for the gallery.

`evaluate_and_store` is a plain function (paths in, a summary dict out, no Flask),
so a request handler or a task-queue worker can call it alike. One evaluation is
one JSON file in the evaluations folder, written atomically: the report (like
metrics.json), one row per clip (like predictions.json), the folder, the model
and the time. The gallery lists those files as sources next to the test splits.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Callable

from ml import runs
from ml.dataset import DataError, list_clips
from webapp.settings import ROOT

ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{6}$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "folder"


def check_folder(folder: str | Path, base: Path = ROOT) -> Path:
    """The folder as an absolute path (a relative one is taken from `base`, the checkout),
    if it exists and has clips in label folders."""
    text = str(folder).strip()
    if not text:
        raise DataError("name a folder of clips (one sub-folder per label)")
    path = Path(text).expanduser()
    path = (path if path.is_absolute() else Path(base) / path).resolve()
    if not path.is_dir():
        raise DataError(f"{path}: no such folder on the server")
    list_clips(path)     # raises DataError when there is no clip in <label>/ sub-folders
    return path


def evaluate_and_store(model_dir: str | Path, folder: str | Path, store: str | Path,
                       log: Callable[[str], None] | None = None) -> dict:
    """Evaluate the run `model_dir` on `folder` and store the result in `store`.

    Raises ml.dataset.DataError (a ValueError, message for people) for a missing
    folder, a folder not in the layout, or labels the model does not know.
    Returns {"id", "model", "folder", "created", "accuracy", "n", "file"}.
    """
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_folder

    folder = check_folder(folder)
    model_dir = Path(model_dir).resolve()
    try:
        classifier = Classifier(model_dir)
    except (OSError, ValueError) as exc:
        raise DataError(f"the model cannot be loaded: {exc}") from None
    started = time.time()
    report, rows = evaluate_folder(classifier, folder, log=log or (lambda msg: None))
    if not rows:
        raise DataError(f"{folder}: none of its clips could be read")
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


def list_evaluations(store: str | Path) -> list[Path]:
    """Stored evaluation files, newest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted((p for p in store.glob("*.json") if ID.match(p.stem)), reverse=True)

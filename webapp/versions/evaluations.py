"""The evaluations stored of model versions: one JSON file each, kept for the gallery.

`evaluate_and_store` is a plain function (paths in, a summary dict out, no Flask):
the admin's evaluation job (webapp/admin/evaluations.py, run by the queue consumer)
calls it with a progress callback and a stop flag; ml.evaluate.evaluate_in_chunks
does the work chunk by chunk. One evaluation is one JSON file in the evaluations
folder, written atomically: the report (like metrics.json), one row per clip (like
predictions.json), the folder, the model and the time. The gallery lists those
files as sources next to the test splits; a version's accuracy figures
(accuracy.py) and its bundle's model card (downloads.py) quote them.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path

from flask import current_app

from ml import runs
from ml.dataset import DataError
from ml.folders import check_folder
from webapp.settings import ROOT

ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}-[0-9a-f]{6}")   # fullmatch: `$` lets "x\n" in


def folder() -> Path:
    """Where stored evaluations live (one JSON file each), in the instance folder."""
    app = current_app
    return Path(app.config.get("HARK_INSTANCE") or app.instance_path) / "evaluations"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "folder"


def evaluate_and_store(model_dir: str | Path, data: str | Path, store: str | Path,
                       log: Callable[[str], None] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> dict:
    """Evaluate the run `model_dir` on the folder `data` and store the result in `store`.

    `progress(done, total)` is called after every chunk of clips; `should_stop()` is
    asked before every clip and raises ml.cancel.Cancelled when it says so (nothing is
    stored). Raises ml.dataset.DataError (a ValueError, message for people) for a missing
    folder, a folder not in the layout, or labels the model does not know.
    Returns {"id", "model", "folder", "created", "accuracy", "n", "file"}.
    """
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_in_chunks

    data = check_folder(data, base=ROOT)
    model_dir = Path(model_dir).resolve()
    try:
        classifier = Classifier(model_dir)
    except (OSError, ValueError) as exc:
        raise DataError(f"the model cannot be loaded: {exc}") from None
    started = time.time()
    report, rows = evaluate_in_chunks(classifier, data, log, progress, should_stop)
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))
    digest = hashlib.sha1(f"{data}|{model_dir}|{started}".encode()).hexdigest()[:6]
    eval_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}-{_slug(data.name)}-{digest}"
    record = {"id": eval_id, "model": classifier.version, "model_dir": str(model_dir),
              "folder": str(data), "created": created,
              "seconds": round(time.time() - started, 2), "report": report, "rows": rows}
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{eval_id}.json"
    runs.write_json(path, record)
    return {"id": eval_id, "model": classifier.version, "folder": str(data), "created": created,
            "accuracy": report["accuracy"], "n": report["n"], "file": str(path)}


def list_evaluations(store: str | Path) -> list[Path]:
    """Stored evaluation files, newest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted((p for p in store.glob("*.json") if ID.fullmatch(p.stem)), reverse=True)

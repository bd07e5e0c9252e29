"""Classifiers for any model version the gallery shows, and their measured speed.

The active model comes from the ModelStore; another version is loaded on first
use (about 50 ms) and a few are kept per process. Latency is ml.measure's:
a registered version shows the figure recorded with it (the admin's table shows
the same), any other run is measured once per model file and cached on disk.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

from ml import runs
from ml.measure import CLIPS
from ml.measure import latency as measure_latency
from webapp.errors import ApiError
from webapp.versions import registry

KEEP = 3
_loaded: OrderedDict[tuple, object] = OrderedDict()
_lock = threading.Lock()


def _stamp(run_dir: Path) -> tuple:
    """Identity of a run's served model: its path and its serving files' times and sizes."""
    stats = [f.stat() for f in runs.serving_files(run_dir)]
    return str(run_dir.resolve()), *((st.st_mtime_ns, st.st_size) for st in stats)


def classifier_for(run_dir: Path | None, store=None):
    """A Classifier for `run_dir`, reusing the active one when it is that run."""
    if run_dir is None or not runs.is_complete(Path(run_dir)):
        raise ApiError(404, f"the model {Path(run_dir).name if run_dir else ''} is not on this "
                            "machine any more, so its clips cannot be classified again")
    run_dir = Path(run_dir)
    active = store.peek() if store is not None else None
    if active is not None and Path(active.run_dir).resolve() == run_dir.resolve():
        return active
    key = _stamp(run_dir)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
    from ml.classifier import Classifier

    try:
        classifier = Classifier(run_dir)
    except (OSError, ValueError) as exc:
        raise ApiError(404, f"the model {run_dir.name} cannot be loaded: {exc}") from None
    with _lock:
        _loaded[key] = classifier
        while len(_loaded) > KEEP:
            _loaded.popitem(last=False)
    return classifier


def latency(run_dir: Path, cache: Path, store=None) -> dict:
    """The version's recorded latency, else the cached one, measured now if never measured."""
    version = registry.find(run_dir)
    if version is not None and version.latency_ms is not None:
        return {"median_ms": version.latency_ms, "clips": CLIPS}
    key = hashlib.sha1("|".join(map(str, _stamp(run_dir))).encode()).hexdigest()
    path = cache / "latency" / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    result = measure_latency(classifier_for(run_dir, store))
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, result)
    return result

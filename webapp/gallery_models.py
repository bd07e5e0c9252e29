"""Classifiers for any model version the gallery shows, and their measured speed.

The active model comes from the ModelStore; another version is loaded on first
use (about 50 ms) and a few are kept per process. Inference latency is measured
once per model file and stored next to the thumbnails, so a page never waits
for it twice.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ml import runs
from ml.audio import CLIP_SAMPLES
from webapp.errors import ApiError

KEEP = 3
_loaded: OrderedDict[tuple, object] = OrderedDict()
_lock = threading.Lock()


def _stamp(run_dir: Path) -> tuple:
    body = run_dir / runs.BODY_FILE
    st = body.stat()
    return str(run_dir.resolve()), st.st_mtime_ns, st.st_size


def classifier_for(run_dir: Path | None, store=None):
    """A Classifier for `run_dir`, reusing the active one when it is that run."""
    if run_dir is None or not (Path(run_dir) / runs.BODY_FILE).is_file():
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


def model_size(run_dir: Path) -> dict:
    """Bytes on disk of what is served (the LiteRT export) and of the Keras model."""
    def size(name):
        path = run_dir / name
        return path.stat().st_size if path.is_file() else None

    served = [size(runs.FEATURES_FILE), size(runs.BODY_FILE)]
    return {"served_bytes": sum(s for s in served if s) if any(served) else None,
            "keras_bytes": size(runs.MODEL_FILE)}


def measure_latency(classifier, clips: int = 20, seed: int = 0) -> dict:
    """Median and 90th percentile of `classify` on one-second clips (noise with a tone)."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP_SAMPLES) / CLIP_SAMPLES
    waves = [(rng.normal(0, 0.05, CLIP_SAMPLES) + 0.3 * np.sin(2 * np.pi * 440 * (1 + i / 10) * t))
             .astype(np.float32) for i in range(clips)]
    for wave in waves[:3]:       # warm up: first calls allocate
        classifier.classify(wave)
    times = []
    for wave in waves:
        started = time.perf_counter()
        classifier.classify(wave)
        times.append((time.perf_counter() - started) * 1e3)
    return {"median_ms": round(float(np.median(times)), 3),
            "p90_ms": round(float(np.percentile(times, 90)), 3), "clips": clips,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def latency(run_dir: Path, cache: Path, store=None) -> dict:
    """The cached latency of a model, measured now if this model file was never measured."""
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

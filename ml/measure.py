"""How big and how fast a run is as served: the one measurement every page shows.

The model versions table records it when a run is registered and the gallery
shows the same figures, so two pages never disagree about one model.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ml.audio import CLIP_SAMPLES
from ml.runs import MODEL_FILE, serving_files

CLIPS = 20


def sizes(run_dir: Path) -> dict:
    """Bytes on disk of what is served (LiteRT graphs, an ensemble's members; the pretrained
    embedding's ONNX files, shared by every such model, not counted) and of the Keras model."""
    try:
        served = [f.stat().st_size for f in serving_files(run_dir)
                  if f.suffix == ".tflite" and f.is_file()]
    except (OSError, ValueError):
        served = []
    keras = Path(run_dir) / MODEL_FILE
    return {"served_bytes": sum(served) if served else None,
            "keras_bytes": keras.stat().st_size if keras.is_file() else None}


def latency(classifier, clips: int = CLIPS, seed: int = 0) -> dict:
    """Median and 90th percentile of `classify` on one-second clips (noise with a tone), 1 thread."""
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


def measure(run_dir: Path) -> dict:
    """{size_bytes, latency_ms} of a run, with a fresh one-thread Classifier."""
    from ml.classifier import Classifier

    return {"size_bytes": sizes(run_dir)["served_bytes"],
            "latency_ms": latency(Classifier(run_dir, threads=1))["median_ms"]}

"""Write the LiteRT files the Classifier serves: the run as one graph (ml/graph.py).

Serving needs only the LiteRT runtime, not TensorFlow or onnxruntime: a web worker
stays small and a clip takes a few milliseconds.
"""
from __future__ import annotations

from pathlib import Path

from ml.runs import SERVING_FILE, WINDOW_FILE


def export_serving(run_dir: Path) -> int:
    """Write `run_dir`'s model.tflite and window.tflite (ml/graph.py: the span graph and the
    one-window graph) from its trained models and config.json, its `_unknown_` weight
    included, each atomically; returns the size of model.tflite in bytes."""
    from ml.graph import serving_graph, to_litert

    sizes = []
    for name, one_window in ((WINDOW_FILE, True), (SERVING_FILE, False)):
        data = to_litert(serving_graph(run_dir, one_window))
        tmp = Path(run_dir) / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(Path(run_dir) / name)
        sizes.append(len(data))
    return sizes[-1]

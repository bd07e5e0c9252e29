"""Write the LiteRT file the Classifier serves: the run as one graph (ml/graph.py).

Serving needs only the LiteRT runtime, not TensorFlow or onnxruntime: a web worker
stays small and a clip takes a few milliseconds. Also holds LabelWeights, the
served graph's `_unknown_` re-weighting.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from ml.config import UNKNOWN
from ml.runs import SERVING_FILE, WINDOW_FILE


@keras.saving.register_keras_serializable("hark")
class LabelWeights(keras.layers.Layer):
    """Re-weight the output probabilities by fixed per-label factors, then renormalise.

    A prior correction applied only to the served graph: the synthetic training set
    makes `_unknown_` a catch-all for any voice unlike the synthetic ones, and a
    weight below 1 moves the decision threshold back (Saerens et al., 2002).
    """

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self.weights_ = [float(w) for w in weights]

    def call(self, probs):
        weighted = probs * tf.constant(self.weights_, probs.dtype)
        return weighted / tf.reduce_sum(weighted, axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "weights": self.weights_}


def label_weights(labels: list[str], unknown_weight: float) -> list[float]:
    return [unknown_weight if label == UNKNOWN else 1.0 for label in labels]


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

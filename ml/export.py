"""Export a trained Keras model to the LiteRT (TFLite) files the Classifier serves.

Two small graphs, cut from the same trained model: `features.tflite` (the
model's own feature layer: waveform -> time-frequency image) and
`body.tflite` (image -> probabilities). Serving needs only the LiteRT runtime,
not TensorFlow: a web worker stays near 100 MB and a clip takes about 1 ms.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from ml.audio import CLIP_SAMPLES
from ml.config import UNKNOWN
from ml.runs import BODY_FILE, FEATURES_FILE


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


def export_serving(model: keras.Model, run_dir: Path, weights: list[float] | None = None) -> None:
    """Write the LiteRT graphs: features.tflite and body.tflite for a waveform model, body.tflite
    alone for a head on the pretrained embedding; `weights` (per label) re-weight the served
    probabilities."""
    parts = []
    if any(layer.name == "features" for layer in model.layers):
        wave = keras.Input((CLIP_SAMPLES,))
        parts.append((FEATURES_FILE, keras.Model(wave, model.get_layer("features")(wave))))
        body = model.get_layer("body")
    else:
        body = model
    if weights and any(w != 1.0 for w in weights):
        image = keras.Input(body.input_shape[1:])
        body = keras.Model(image, LabelWeights(weights)(body(image)))
    parts.append((BODY_FILE, body))
    for name, part in parts:
        data = tf.lite.TFLiteConverter.from_keras_model(part).convert()
        tmp = Path(run_dir) / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(Path(run_dir) / name)

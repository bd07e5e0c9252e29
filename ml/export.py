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
from ml.runs import BODY_FILE, FEATURES_FILE


def export_serving(model: keras.Model, run_dir: Path) -> None:
    features, body = model.get_layer("features"), model.get_layer("body")
    wave = keras.Input((CLIP_SAMPLES,))
    feature_model = keras.Model(wave, features(wave))
    for name, part in ((FEATURES_FILE, feature_model), (BODY_FILE, body)):
        data = tf.lite.TFLiteConverter.from_keras_model(part).convert()
        tmp = Path(run_dir) / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(Path(run_dir) / name)

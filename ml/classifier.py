"""Serving: load a run once, classify raw audio of any rate and length in one call."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import ml.augment  # noqa: F401  registers the custom layers for loading
import ml.features  # noqa: F401
from ml import runs
from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_clip, to_model_rate
from ml.features import feature_axes


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    window_start_s: float          # where the classified second starts in the input
    clip: np.ndarray = field(repr=False)   # that second, 16 kHz
    timing_ms: dict[str, float] = field(default_factory=dict)


class Classifier:
    """A trained run ready to serve: compiled graph functions, never `model.predict`."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = runs.check_run(Path(run_dir))
        self.labels: list[str] = runs.labels_of(self.run_dir)
        config_file = self.run_dir / "config.json"
        self.config = runs.read_json(config_file) if config_file.exists() else {}
        self.version = self.run_dir.name
        self.model = keras.saving.load_model(self.run_dir / runs.MODEL_FILE, compile=False)
        self.feature_kind = self.config.get("features") or (
            "logmel" if type(self.model.get_layer("features")).__name__ == "LogMel" else "stft")
        features, body = self.model.get_layer("features"), self.model.get_layer("body")
        spec = [tf.TensorSpec([None, CLIP_SAMPLES], tf.float32)]
        self._features = tf.function(lambda x: features(x), input_signature=spec)
        self._body = tf.function(lambda f: body(f, training=False),
                                 input_signature=[tf.TensorSpec(features.compute_output_shape(
                                     (None, CLIP_SAMPLES)), tf.float32)])
        self._body(self._features(tf.zeros([1, CLIP_SAMPLES])))  # trace once, now

    def classify(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> Prediction:
        """Label one recording: resampled to 16 kHz, cut to its loudest second."""
        t0 = time.perf_counter()
        clip, start = fit_clip(to_model_rate(np.asarray(wave, np.float32), rate))
        t1 = time.perf_counter()
        feats = self._features(clip[np.newaxis])
        t2 = time.perf_counter()
        probs = self._body(feats).numpy()[0]
        t3 = time.perf_counter()
        best = int(probs.argmax())
        return Prediction(
            label=self.labels[best], confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(self.labels, probs)},
            window_start_s=start / SAMPLE_RATE, clip=clip,
            timing_ms={"resample": (t1 - t0) * 1e3, "features": (t2 - t1) * 1e3,
                       "model": (t3 - t2) * 1e3})

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities for a stack of one-second 16 kHz clips, shape (N, labels)."""
        return self._body(self._features(np.asarray(clips, np.float32))).numpy()

    def features(self, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's own input for a one-second clip, as (times s, freqs Hz, values[time, freq])."""
        values = self._features(np.asarray(clip, np.float32)[np.newaxis]).numpy()[0, ..., 0]
        times, freqs = feature_axes(self.feature_kind)
        return times, freqs, values

"""Serving: load a run once, classify raw audio of any rate and length in one call.

Runs the run's LiteRT export (see ml/export.py) and never imports TensorFlow,
so a serving process is small and a clip takes about a millisecond.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from ml import runs
from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_clip, to_model_rate
from ml.config import FeatureSpec
from ml.runs import BODY_FILE, FEATURES_FILE


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    window_start_s: float          # where the classified second starts in the input
    clip: np.ndarray = field(repr=False)   # that second, 16 kHz
    features: np.ndarray = field(repr=False)   # the model's input for it, values[time, freq]
    timing_ms: dict[str, float] = field(default_factory=dict)


class _Graph:
    """One LiteRT graph with a single input and output."""

    def __init__(self, path: Path, threads: int):
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


class Classifier:
    """A trained run ready to serve. Thread-safe; one clip at a time."""

    def __init__(self, run_dir: str | Path, threads: int = 1):
        self.run_dir = runs.check_run(Path(run_dir))
        missing = [f for f in (FEATURES_FILE, BODY_FILE) if not (self.run_dir / f).is_file()]
        if missing:
            raise runs.RunError(f"{self.run_dir}: no serving export ({', '.join(missing)}); "
                                f"make it with: python -m ml export --model {self.run_dir}")
        self.labels: list[str] = runs.labels_of(self.run_dir)
        self.config: dict = runs.read_json(self.run_dir / "config.json")
        self.version = self.config.get("run_id", self.run_dir.name)  # models/default keeps its id
        self.feature_kind = self.config["features"]
        # Runs made before specs were saved used the catalogue's framing of their kind.
        self.feature_spec = FeatureSpec.of(self.config.get("feature_params"), self.feature_kind)
        self._features = _Graph(self.run_dir / FEATURES_FILE, threads)
        self._body = _Graph(self.run_dir / BODY_FILE, threads)
        self._lock = threading.Lock()

    def classify(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> Prediction:
        """Label one recording: resampled to 16 kHz, cut to its loudest second."""
        t0 = time.perf_counter()
        clip, start = fit_clip(to_model_rate(np.asarray(wave, np.float32), rate))
        t1 = time.perf_counter()
        with self._lock:
            feats = self._features(clip[np.newaxis])
            t2 = time.perf_counter()
            probs = self._body(feats)[0].copy()
            feats = feats[0, ..., 0].copy()
        t3 = time.perf_counter()
        best = int(probs.argmax())
        return Prediction(
            label=self.labels[best], confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(self.labels, probs)},
            window_start_s=start / SAMPLE_RATE, clip=clip, features=feats,
            timing_ms={"resample": (t1 - t0) * 1e3, "features": (t2 - t1) * 1e3,
                       "model": (t3 - t2) * 1e3})

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities for a stack of one-second 16 kHz clips, shape (N, labels)."""
        clips = np.asarray(clips, np.float32).reshape(-1, CLIP_SAMPLES)
        with self._lock:
            return np.stack([self._body(self._features(c[np.newaxis]))[0].copy() for c in clips]) \
                if len(clips) else np.zeros((0, len(self.labels)), np.float32)

    def feature_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) of each frame and frequency (Hz) of each bin of `Prediction.features`."""
        return self.feature_spec.axes()

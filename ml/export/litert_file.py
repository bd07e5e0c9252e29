"""A one-file LiteRT model (waveform in, probabilities out): what `tflite` and `tflite-int8` exports are.

Used to check an export against the served model, to measure its accuracy and
latency, and by the tests; needs only the LiteRT runtime, like ml/classifier.py.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_clip, to_model_rate


class LiteRTModel:
    """Runs one exported .tflite file, one clip at a time (thread-safe)."""

    def __init__(self, model: str | Path | bytes, threads: int = 1):
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=threads)
        else:
            self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def probabilities(self, clip: np.ndarray) -> np.ndarray:
        """Probabilities for one one-second 16 kHz clip."""
        with self._lock:
            self.interpreter.set_tensor(self._input, np.asarray(clip, np.float32).reshape(1, CLIP_SAMPLES))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output)[0].copy()

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities for a stack of one-second 16 kHz clips, shape (N, labels)."""
        clips = np.asarray(clips, np.float32).reshape(-1, CLIP_SAMPLES)
        return np.stack([self.probabilities(c) for c in clips]) if len(clips) else np.zeros((0, 0))

    def classify(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
        """Probabilities for a recording of any rate and length (its loudest second), as served."""
        return self.probabilities(fit_clip(to_model_rate(np.asarray(wave, np.float32), rate))[0])


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float | None:
    """Share of clips whose most probable label is the true one (None for no clips)."""
    return float((model.predict_batch(x).argmax(axis=1) == y).mean()) if len(y) else None

"""Frame sizes, shapes and axes of the features, without TensorFlow.

The Keras feature layers (ml/features.py) read their settings from here, and
the TensorFlow-free serving side uses it to label chart axes.
"""
from __future__ import annotations

import numpy as np

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE

# kind -> STFT frame length, frame step, FFT length, output bins
GEOMETRY = {
    "stft": dict(frame_length=255, frame_step=128, fft_length=256, bins=129),
    "logmel": dict(frame_length=400, frame_step=160, fft_length=512, bins=40),
}
MEL_RANGE_HZ = (20.0, 7600.0)


def feature_shape(kind: str) -> tuple[int, int, int]:
    g = GEOMETRY[kind]
    return 1 + (CLIP_SAMPLES - g["frame_length"]) // g["frame_step"], g["bins"], 1


def feature_axes(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Centre time (s) of each frame and centre frequency (Hz) of each bin, for charts."""
    g = GEOMETRY[kind]
    frames, bins, _ = feature_shape(kind)
    times = (np.arange(frames) * g["frame_step"] + g["frame_length"] / 2) / SAMPLE_RATE
    if kind == "logmel":
        low, high = (1127.0 * np.log1p(hz / 700.0) for hz in MEL_RANGE_HZ)
        freqs = 700.0 * (np.exp(np.linspace(low, high, bins + 2)[1:-1] / 1127.0) - 1.0)
    else:
        freqs = np.arange(bins) * SAMPLE_RATE / g["fft_length"]
    return times, freqs

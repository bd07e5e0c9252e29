"""The one feature function: waveform -> time-frequency image, as Keras layers.

The layer is the first layer of every saved model, so the model itself turns a
raw 16 kHz waveform into its input. Training, evaluation and serving cannot
drift apart, and the web app draws the model's own input by calling the same
layer (see `Classifier.features`).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE


@keras.saving.register_keras_serializable("hark")
class Spectrogram(keras.layers.Layer):
    """The seed's feature: |STFT| with frame 255, step 128 -> 124x129x1."""

    frame_length, frame_step, fft_length = 255, 128, 256

    def call(self, wave):
        stft = tf.signal.stft(wave, self.frame_length, self.frame_step, self.fft_length)
        return tf.abs(stft)[..., tf.newaxis]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *feature_shape("stft"))


@keras.saving.register_keras_serializable("hark")
class LogMel(keras.layers.Layer):
    """Log-mel energies, 25 ms window, 10 ms hop, 40 bands (20-7600 Hz) -> 98x40x1."""

    frame_length, frame_step, fft_length, n_mels = 400, 160, 512, 40
    low_hz, high_hz = 20.0, 7600.0

    def build(self, input_shape):
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            self.n_mels, self.fft_length // 2 + 1, SAMPLE_RATE, self.low_hz, self.high_hz)

    def call(self, wave):
        stft = tf.signal.stft(wave, self.frame_length, self.frame_step, self.fft_length)
        power = tf.square(tf.abs(stft))
        mel = tf.tensordot(power, self._mel, 1)
        return tf.math.log(mel + 1e-6)[..., tf.newaxis]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *feature_shape("logmel"))


FEATURES = {"stft": Spectrogram, "logmel": LogMel}


def feature_shape(kind: str) -> tuple[int, int, int]:
    layer = FEATURES[kind]
    frames = 1 + (CLIP_SAMPLES - layer.frame_length) // layer.frame_step
    bins = layer.n_mels if kind == "logmel" else layer.fft_length // 2 + 1
    return frames, bins, 1


def feature_axes(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Centre time (s) of each frame and centre frequency (Hz) of each bin, for charts."""
    layer = FEATURES[kind]
    frames, bins, _ = feature_shape(kind)
    times = (np.arange(frames) * layer.frame_step + layer.frame_length / 2) / SAMPLE_RATE
    if kind == "logmel":
        mel = np.linspace(_hz_to_mel(layer.low_hz), _hz_to_mel(layer.high_hz), bins + 2)[1:-1]
        freqs = 700.0 * (np.exp(mel / 1127.0) - 1.0)
    else:
        freqs = np.arange(bins) * SAMPLE_RATE / layer.fft_length
    return times, freqs


def _hz_to_mel(hz: float) -> float:
    return 1127.0 * np.log1p(hz / 700.0)

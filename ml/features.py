"""The one feature function: waveform -> time-frequency image, as Keras layers.

The layer is part of every saved model (and of its LiteRT export), so the model
itself turns a raw 16 kHz waveform into its input. Training, evaluation and
serving cannot drift apart, and the web app draws the model's own input by
running the same exported layer (`Prediction.features`).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ml.audio import SAMPLE_RATE
from ml.feature_geometry import GEOMETRY, MEL_RANGE_HZ, feature_shape


def _magnitude(wave, kind):
    g = GEOMETRY[kind]
    return tf.abs(tf.signal.stft(wave, g["frame_length"], g["frame_step"], g["fft_length"]))


@keras.saving.register_keras_serializable("hark")
class Spectrogram(keras.layers.Layer):
    """The seed's feature: |STFT| with frame 255, step 128 -> 124x129x1."""

    def call(self, wave):
        return tf.expand_dims(_magnitude(wave, "stft"), -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *feature_shape("stft"))


@keras.saving.register_keras_serializable("hark")
class LogMel(keras.layers.Layer):
    """Log-mel energies, 25 ms window, 10 ms hop, 40 bands (20-7600 Hz) -> 98x40x1."""

    def build(self, input_shape):
        g = GEOMETRY["logmel"]
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            g["bins"], g["fft_length"] // 2 + 1, SAMPLE_RATE, *MEL_RANGE_HZ)

    def call(self, wave):
        mel = tf.tensordot(tf.square(_magnitude(wave, "logmel")), self._mel, 1)
        return tf.expand_dims(tf.math.log(mel + 1e-6), -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *feature_shape("logmel"))


FEATURES = {"stft": Spectrogram, "logmel": LogMel}

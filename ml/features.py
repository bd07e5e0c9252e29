"""The one feature function: waveform -> time-frequency image, as Keras layers.

The layer is part of every saved model (and of its LiteRT export), so the model
itself turns a raw 16 kHz waveform into its input. Training, evaluation and
serving cannot drift apart, and the web app draws the model's own input by
running the same exported layer (`Prediction.features`). Each layer saves its
framing (`get_config`), so a model keeps loading when the catalogue's
defaults (ml.config.FEATURES) change.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ml.audio import SAMPLE_RATE
from ml.config import FEATURES, FeatureSpec


class _Feature(keras.layers.Layer):
    """Holds a FeatureSpec; a model saved before specs were saved gets the catalogue's."""
    KIND = ""

    def __init__(self, frame_length=None, frame_step=None, fft_length=None, bins=None,
                 low_hz=None, high_hz=None, **kwargs):
        super().__init__(**kwargs)
        given = {"frame_length": frame_length, "frame_step": frame_step, "fft_length": fft_length,
                 "bins": bins, "low_hz": low_hz, "high_hz": high_hz}
        base = FEATURES[self.KIND].params()
        self.feature_spec = FeatureSpec(**{**base, **{k: v for k, v in given.items() if v is not None}})

    def magnitude(self, wave):
        s = self.feature_spec
        return tf.abs(tf.signal.stft(wave, s.frame_length, s.frame_step, s.fft_length))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.feature_spec.shape())

    def get_config(self):
        params = self.feature_spec.params()
        params.pop("kind")
        return {**super().get_config(), **params}


@keras.saving.register_keras_serializable("hark")
class Spectrogram(_Feature):
    """The seed's feature: |STFT| (frame 255, step 128 by default -> 124x129x1)."""
    KIND = "stft"

    def call(self, wave):
        return tf.expand_dims(self.magnitude(wave), -1)


@keras.saving.register_keras_serializable("hark")
class LogMel(_Feature):
    """Log-mel energies (25 ms window, 10 ms hop, 40 bands, 20-7600 Hz by default -> 98x40x1)."""
    KIND = "logmel"

    def build(self, input_shape):
        s = self.feature_spec
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            s.bins, s.fft_length // 2 + 1, SAMPLE_RATE, s.low_hz, s.high_hz)

    def call(self, wave):
        mel = tf.tensordot(tf.square(self.magnitude(wave)), self._mel, 1)
        return tf.expand_dims(tf.math.log(mel + 1e-6), -1)


@keras.saving.register_keras_serializable("hark")
class Wave(_Feature):
    """The raw waveform as a 16000x1x1 "image": a raw-waveform network's feature stage is the
    identity, so it keeps the features/body split that export and serving rely on."""
    KIND = "wave"

    def call(self, wave):
        return wave[:, :, tf.newaxis, tf.newaxis]


LAYERS = {"stft": Spectrogram, "logmel": LogMel, "wave": Wave}


def feature_layer(spec: FeatureSpec, name: str = "features") -> keras.layers.Layer:
    params = spec.params()
    return LAYERS[params.pop("kind")](name=name, **params)

"""Training-time augmentation: Keras layers that are identity at inference, and one
input-pipeline step.

Living inside the model keeps the input pipeline a plain cache of waveforms and
makes every epoch see freshly shifted, noised and masked clips. Real backgrounds
are data, not weights, so they are mixed in by the pipeline (`background_mixer`).
"""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable("hark")
class TimeShift(keras.layers.Layer):
    """Shift each waveform by up to `max_shift` samples either way, filling with zeros."""

    def __init__(self, max_shift: int = 1600, **kwargs):
        super().__init__(**kwargs)
        self.max_shift = max_shift

    def call(self, wave, training=None):
        if not training:
            return wave
        batch, length = tf.shape(wave)[0], tf.shape(wave)[1]
        shift = tf.random.uniform([batch, 1], -self.max_shift, self.max_shift + 1, tf.int32)
        index = tf.range(length)[tf.newaxis, :] - shift
        inside = tf.cast((index >= 0) & (index < length), wave.dtype)
        return tf.gather(wave, tf.clip_by_value(index, 0, length - 1), batch_dims=1) * inside

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift}


@keras.saving.register_keras_serializable("hark")
class NoiseMix(keras.layers.Layer):
    """Random loudness, then coloured noise (white to brown) at a random SNR.

    Real microphones are louder or quieter and never silent; the noise colour
    exponent is drawn per clip so the model meets hiss, rumble and everything
    between.
    """

    def __init__(self, probability=0.8, snr_db=(0.0, 30.0), gain_db=(-24.0, 6.0), **kwargs):
        super().__init__(**kwargs)
        self.probability, self.snr_db, self.gain_db = probability, tuple(snr_db), tuple(gain_db)

    def call(self, wave, training=None):
        if not training:
            return wave
        batch, length = tf.shape(wave)[0], tf.shape(wave)[1]
        gain = 10.0 ** (tf.random.uniform([batch, 1], *self.gain_db) / 20.0)
        wave = wave * gain
        white = tf.random.normal([batch, length])
        spectrum = tf.signal.rfft(white)
        bins = tf.cast(tf.range(1, tf.shape(spectrum)[1] + 1), tf.float32)[tf.newaxis, :]
        colour = tf.random.uniform([batch, 1], 0.0, 2.0)  # 0 white, 1 pink, 2 brown
        shaped = spectrum * tf.cast(bins ** (-colour / 2.0), tf.complex64)
        noise = tf.signal.irfft(shaped, fft_length=[length])
        noise /= tf.math.reduce_std(noise, axis=1, keepdims=True) + 1e-9
        signal_rms = tf.sqrt(tf.reduce_mean(wave ** 2, axis=1, keepdims=True))
        snr = tf.random.uniform([batch, 1], *self.snr_db)
        level = tf.maximum(signal_rms, 1e-3) * 10.0 ** (-snr / 20.0)
        on = tf.cast(tf.random.uniform([batch, 1]) < self.probability, tf.float32)
        return tf.clip_by_value(wave + on * level * noise, -1.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "probability": self.probability,
                "snr_db": self.snr_db, "gain_db": self.gain_db}


def background_mixer(backgrounds, share: float = 0.5, snr_db=(5.0, 25.0)):
    """A tf.data map over batches of (waves, labels): a share of the clips gets a random
    stretch of one of `backgrounds` (the data set's own `_silence_` clips: taps, fans,
    street) at a random SNR below the clip's level. Coloured noise (NoiseMix) is never
    the running tap or the dishes a microphone hears; digital silence stays silent."""
    bank = tf.constant(backgrounds, tf.float32)
    length = bank.shape[1]
    bank /= tf.sqrt(tf.reduce_mean(bank ** 2, axis=1, keepdims=True)) + 1e-9

    def mix(wave, label):
        n = tf.shape(wave)[0]
        pick = tf.gather(bank, tf.random.uniform([n], 0, tf.shape(bank)[0], tf.int32))
        roll = tf.random.uniform([n, 1], 0, length, tf.int32)
        noise = tf.gather(pick, (tf.range(length)[tf.newaxis, :] + roll) % length, batch_dims=1)
        level = tf.sqrt(tf.reduce_mean(wave ** 2, axis=1, keepdims=True))
        snr = tf.random.uniform([n, 1], *snr_db)
        on = tf.cast((tf.random.uniform([n, 1]) < share) & (level > 1e-5), tf.float32)
        return tf.clip_by_value(wave + on * level * 10.0 ** (-snr / 20.0) * noise, -1.0, 1.0), label
    return mix


@keras.saving.register_keras_serializable("hark")
class SpecAugment(keras.layers.Layer):
    """Mask random bands of time and frequency (Park et al., 2019) with the clip's mean."""

    def __init__(self, time_masks=2, max_time=12, freq_masks=2, max_freq=6, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.max_time = time_masks, max_time
        self.freq_masks, self.max_freq = freq_masks, max_freq

    def call(self, feats, training=None):
        if not training:
            return feats
        mean = tf.reduce_mean(feats, axis=[1, 2, 3], keepdims=True)
        keep = tf.ones_like(feats)
        for _ in range(self.time_masks):
            keep *= self._band(tf.shape(feats), axis=1, width=self.max_time)
        for _ in range(self.freq_masks):
            keep *= self._band(tf.shape(feats), axis=2, width=self.max_freq)
        return feats * keep + mean * (1.0 - keep)

    @staticmethod
    def _band(shape, axis, width):
        size = shape[axis]
        batch = shape[0]
        w = tf.random.uniform([batch, 1], 0, width + 1, tf.int32)
        room = tf.cast(tf.maximum(size - w, 1), tf.float32)
        start = tf.cast(tf.random.uniform([batch, 1]) * room, tf.int32)
        pos = tf.range(size)[tf.newaxis, :]
        band = tf.cast(~((pos >= start) & (pos < start + w)), tf.float32)
        return tf.reshape(band, [batch, -1, 1, 1] if axis == 1 else [batch, 1, -1, 1])

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "max_time": self.max_time,
                "freq_masks": self.freq_masks, "max_freq": self.max_freq}


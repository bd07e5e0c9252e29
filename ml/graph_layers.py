"""The layers the served graph (ml/graph.py) puts around a run's trained models.

Windows sliced from a span of audio, the clip heard alone in silence, the `_unknown_` label
weights and a taught version's gate: small, weightless, registered with Keras so a saved
model that holds them loads (ml.models.load_model).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ml.config import UNKNOWN


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


@keras.saving.register_keras_serializable("hark")
class Slices(keras.layers.Layer):
    """For each window start, `count` rows of source[0] from (start - shift) // step on,
    `stride` apart: a window's samples from the span, or its frames from a sequence."""

    def __init__(self, count: int, step: int = 1, stride: int = 1, shift: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.count, self.step, self.stride, self.shift = int(count), int(step), int(stride), int(shift)

    def call(self, source, starts):
        first = tf.math.floordiv(starts[0] - self.shift, self.step)
        rows = first[:, tf.newaxis] + self.stride * tf.range(self.count)[tf.newaxis]
        return tf.gather(source[0], rows)

    def get_config(self):
        return {**super().get_config(), "count": self.count, "step": self.step,
                "stride": self.stride, "shift": self.shift}


@keras.saving.register_keras_serializable("hark")
class Trim(keras.layers.Layer):
    """A span [1, L] without `samples` at each end: the windows' own audio without the context
    only the speech embedding hears (a network's spectrogram need not cover it)."""

    def __init__(self, samples: int, **kwargs):
        super().__init__(**kwargs)
        self.samples = int(samples)

    def call(self, audio):
        return audio[:, self.samples:tf.shape(audio)[1] - self.samples]

    def get_config(self):
        return {**super().get_config(), "samples": self.samples}


@keras.saving.register_keras_serializable("hark")
class GateCombine(keras.layers.Layer):
    """A taught version (ml/teach.py): (base probabilities, gate [none, word...]) -> every label:
    p(word) = gate(word), p(old label) = base(old label) x gate(none)."""

    def __init__(self, base_index: list[int], word_index: list[int], labels: int, **kwargs):
        super().__init__(**kwargs)
        self.base_index, self.word_index = [int(i) for i in base_index], [int(i) for i in word_index]
        self.labels = int(labels)

    def call(self, base, gate):
        to_base = np.eye(self.labels, dtype=np.float32)[self.base_index]
        to_word = np.eye(self.labels, dtype=np.float32)[self.word_index]
        return tf.matmul(base * gate[:, :1], to_base) + tf.matmul(gate[:, 1:], to_word)

    def get_config(self):
        return {**super().get_config(), "base_index": self.base_index,
                "word_index": self.word_index, "labels": self.labels}


@keras.saving.register_keras_serializable("hark")
class AloneInSilence(keras.layers.Layer):
    """One clip [1, 16000] -> the graph's inputs for it heard alone: (the clip with `context`
    samples of silence each side, its start, stream offset 0), as the Classifier serves it."""

    def __init__(self, context: int, **kwargs):
        super().__init__(**kwargs)
        self.context = int(context)

    def call(self, clip):
        audio = tf.pad(clip, [[0, 0], [self.context, self.context]])
        return audio, tf.constant([[self.context]], tf.int32), tf.constant([[0]], tf.int32)

    def get_config(self):
        return {**super().get_config(), "context": self.context}

"""The model builders: one per architecture of the catalogue (ml.config.ARCHS), by name.

Every model takes a raw one-second 16 kHz waveform and returns class
probabilities. Its layers are, in order: training-only waveform augmentation,
the feature layer (named "features"), training-only SpecAugment and the
architecture's own network (named "body").
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from ml.audio import CLIP_SAMPLES
from ml.augment import NoiseMix, SpecAugment, TimeShift
from ml.config import ARCHS, FEATURES
from ml.features import feature_layer


def _seed(shape, n):
    """Exactly the seed project's network."""
    return keras.Sequential([
        keras.Input(shape),
        layers.Conv2D(16, 3, activation="relu"),
        layers.Conv2D(16, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(n, activation="softmax"),
    ], name="body")


def _tutorial(shape, n):
    """TensorFlow's simple_audio CNN; its Normalization layer is adapted before training."""
    return keras.Sequential([
        keras.Input(shape),
        layers.Resizing(32, 32),
        layers.Normalization(name="normalization"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(n, activation="softmax"),
    ], name="body")


@keras.saving.register_keras_serializable("hark")
class MeanNormalize(layers.Layer):
    """Subtract each band's mean over the clip (cepstral mean normalisation).

    Removes what a microphone, a room or a voice adds to every frame alike. On
    the synthetic default set it lifted accuracy on real speakers from 81% to
    85-87%: it takes away cues that tell synthetic voices from people.
    """

    def call(self, feats):
        return feats - tf.reduce_mean(feats, axis=1, keepdims=True)


def _res_block(x, channels, stride=1):
    """Two 3x3 convolutions with batch norm and a (projected) residual connection."""
    y = layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.BatchNormalization()(layers.Conv2D(channels, 3, padding="same", use_bias=False)(y))
    if stride != 1 or x.shape[-1] != channels:
        x = layers.BatchNormalization()(layers.Conv2D(channels, 1, strides=stride, use_bias=False)(x))
    return layers.ReLU()(layers.Add()([x, y]))


def _kws(shape, n, widths=(32, 48, 64, 80)):
    """Small keyword-spotting ResNet: strided stem, one residual block per stage,
    each later stage halving time and frequency, then global average pooling.

    Plain 3x3 convolutions beat depthwise-separable ones here: oneDNN runs them
    3x faster on this CPU for the same accuracy budget.
    """
    inp = keras.Input(shape)
    x = MeanNormalize()(inp)
    x = layers.BatchNormalization()(x)  # learns the spread of log-mel inputs
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for i, channels in enumerate(widths):
        x = _res_block(x, channels, stride=2 if i else 1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inp, layers.Dense(n, activation="softmax")(x), name="body")


def _embed_mlp(shape, n):
    """A small MLP over the 16 speech-embedding vectors of a clip (ml/embedding.py)."""
    inp = keras.Input(shape)
    x = layers.Normalization(name="normalization")(inp)   # adapted to the training embeddings
    x = layers.GaussianNoise(0.2)(x)
    x = layers.Dropout(0.1)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inp, layers.Dense(n, activation="softmax")(x), name="body")


def _embed_conv(shape, n):
    """1D convolutions along the 16 embedding steps: the word may sit anywhere in them."""
    inp = keras.Input(shape)
    x = layers.Normalization(name="normalization")(inp)
    x = layers.GaussianNoise(0.2)(x)
    for width in (128, 128):
        x = layers.Conv1D(width, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Dropout(0.3)(layers.GlobalMaxPooling1D()(x))
    return keras.Model(inp, layers.Dense(n, activation="softmax")(x), name="body")


@keras.saving.register_keras_serializable("hark")
class RmsNormalize(layers.Layer):
    """Scale each clip to unit RMS (floored at -60 dBFS so silence is not blown up to speech).

    A log-mel network drops loudness with its logarithm and mean normalisation; a
    raw-waveform network would otherwise have to learn every gain it might meet.
    """

    def call(self, wave):
        rms = tf.sqrt(tf.reduce_mean(tf.square(wave), axis=1, keepdims=True))
        return wave / tf.maximum(rms, 1e-3)


def _rawwave(shape, n, widths=(64, 64, 128, 128)):
    """M5-style 1D CNN on the waveform (Dai et al., 2017): an 80-tap (5 ms) stride-4 first
    layer learns its own filter bank, then 3-tap convolutions, each stage pooling by 4
    (16000 -> 4000 -> 1000 -> 250 -> 62 -> 15 steps), then global average pooling."""
    inp = keras.Input(shape)                 # (16000, 1, 1): the wave feature
    x = RmsNormalize()(layers.Reshape((shape[0], 1))(inp))
    for i, channels in enumerate(widths):
        x = layers.Conv1D(channels, 80 if i == 0 else 3, strides=4 if i == 0 else 1,
                          padding="same", use_bias=False)(x)
        x = layers.MaxPooling1D(4)(layers.ReLU()(layers.BatchNormalization()(x)))
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inp, layers.Dense(n, activation="softmax")(x), name="body")


@keras.saving.register_keras_serializable("hark")
class PositionEmbedding(layers.Layer):
    """A learned vector per token position, added to the tokens."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=tuple(input_shape[1:]), name="positions",
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, tokens):
        return tokens + self.positions


def _attention(shape, n, dim=64, heads=4, blocks=2):
    """A small conv-transformer over log-mel frames: one strided 3x3 convolution turns
    98x40 into 49 tokens (20 ms each), two pre-norm transformer blocks relate them, and
    attention pooling (a learned score per token) weighs the frames that hold the word.

    The convolution in front gives the transformer local patterns it would otherwise need
    far more data than 11K clips to learn (a pure KWT trains poorly at this size).
    """
    inp = keras.Input(shape)
    x = layers.BatchNormalization()(MeanNormalize()(inp))
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = PositionEmbedding()(layers.Dense(dim)(x))
    for _ in range(blocks):
        y = layers.LayerNormalization(epsilon=1e-5)(x)
        y = layers.MultiHeadAttention(heads, dim // heads, dropout=0.1)(y, y)
        x = layers.Add()([x, layers.Dropout(0.1)(y)])
        y = layers.LayerNormalization(epsilon=1e-5)(x)
        y = layers.Dense(dim, kernel_initializer="he_normal")(
            layers.Dense(2 * dim, activation="relu")(y))
        x = layers.Add()([x, layers.Dropout(0.1)(y)])
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    weights = layers.Softmax(axis=1)(layers.Dense(1)(x))          # (tokens, 1)
    x = layers.Flatten()(layers.Dot(axes=1)([weights, x]))         # weighted mean of tokens
    x = layers.Dropout(0.2)(x)
    return keras.Model(inp, layers.Dense(n, activation="softmax")(x), name="body")


# name -> (feature shape, n labels) -> keras.Model named "body"; the same names as ARCHS
# (an ensemble has no builder of its own: it is made of other architectures' runs)
BUILDERS = {"kws": _kws, "tutorial": _tutorial, "seed": _seed,
            "embed-mlp": _embed_mlp, "embed-conv": _embed_conv,
            "rawwave": _rawwave, "attention": _attention}


def build_model(arch: str, n_labels: int, augment: bool | None = None) -> keras.Model:
    """Waveform-in, probabilities-out model for a catalogued architecture."""
    info = ARCHS[arch]
    features = FEATURES[info.features]
    augment = info.augment if augment is None else augment
    wave = keras.Input((CLIP_SAMPLES,), name="waveform")
    x = wave
    if augment:
        x = NoiseMix(name="noise_mix")(TimeShift(name="time_shift")(x))
    feats = feature_layer(features)(x)
    if augment and features.kind != "wave":     # no time-frequency image to mask
        feats = SpecAugment(name="spec_augment")(feats)
    body = BUILDERS[arch](features.shape(), n_labels)
    return keras.Model(wave, body(feats), name=arch)


def build_head(arch: str, n_labels: int) -> keras.Model:
    """Embeddings-in, probabilities-out head of an architecture on the pretrained embedding."""
    from ml.embedding import DIM, WINDOWS

    return BUILDERS[arch]((WINDOWS, DIM), n_labels)


def load_model(path) -> keras.Model:
    """Load a saved model; importing this module registered all of Hark's custom layers."""
    import ml.embedding_keras
    import ml.graph_layers  # noqa: F401  the served graph's (label weights, windows, gate)

    return keras.saving.load_model(path, compile=False)

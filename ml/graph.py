"""Every run served as one graph: a span of audio and window starts in, each window's
probabilities (and what the charts draw) out.

Why one graph: an ensemble used to be four graphs on two runtimes (the speech embedding's
mel and embedding networks on onnxruntime, its members' LiteRT graphs), combined in Python.
Built here from the run's trained Keras models, it is one LiteRT file (`model.tflite`,
which write_serving_graphs writes) that ml/classifier.py runs the same way for every kind of
run, that exports as one file and that a phone or a page can run.

Inputs (all with a batch of one; `context` is ml.embedding.context_samples: 0.5 s each side
for a run that hears the speech embedding, none for a network on its own spectrogram):
    audio   [1, L] float32   16 kHz samples: the windows and `context` samples around them
    starts  [1, K] int32     where each window begins in `audio` (>= context, and for a model
                             with a spectrogram or the speech embedding, whole 10 ms frames:
                             multiples of 160)
    offset  [1, 1] int32     where `audio` begins in its stream (the embedding's dither follows
                             the stream, so a window gets the same numbers in any span)
Outputs: probabilities [K, labels] and picture [K, time, freq] (the first member's input,
for the charts). A network member's spectrogram is computed once over the span and each
window takes its frames from it (a spectrogram is local); the speech embedding
runs once over the whole span at every 10 ms frame (ml/embedding_keras.py, `every_frame`)
and each window takes its 16 embeddings from it, heard in its real surroundings.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml import runs
from ml.audio import CLIP_SAMPLES, SAMPLE_RATE
from ml.config import FeatureSpec
from ml.embedding import FRAME_STEP, STRIDE, WINDOWS, EmbeddingSpec, chart_spec, context_samples
from ml.embedding_keras import MelFrames, StreamDither, embedding_network, mel_weights
from ml.graph_layers import AloneInSilence, GateCombine, LabelWeights, Slices, Trim, label_weights
from ml.models import load_model

EMBEDDING = "/speech_embedding_"      # the speech embedding's layers, in a graph's tensor names
NETWORKS = (EMBEDDING, "/body_")      # ... and the run's trained networks' (each member's body)


class _Builder:
    """Wires the run's trained models to the three inputs; the embedding is computed once
    per way of preparing it, whatever the number of heads on it."""

    def __init__(self, context: int, one_window: bool = False, clip: bool = False):
        self.one_window = one_window or clip
        self.context = context
        self._embeddings: dict[EmbeddingSpec, tuple] = {}
        self._members: list[str] = []
        if clip:        # one clip in, heard alone: the three inputs made from it
            self.inputs = [keras.Input((CLIP_SAMPLES,), batch_size=1, name="waveform")]
            self.audio, self.starts, self.offset = AloneInSilence(context, name="alone_in_silence")(self.inputs[0])
            return
        span, windows = (CLIP_SAMPLES + 2 * context, 1) if one_window else (None, None)
        self.audio = keras.Input((span,), batch_size=1, name="audio")
        self.starts = keras.Input((windows,), batch_size=1, dtype="int32", name="starts")
        self.offset = keras.Input((1,), batch_size=1, dtype="int32", name="offset")
        self.inputs = [self.audio, self.starts, self.offset]

    def embeddings(self, spec: EmbeddingSpec):
        """(each window's embeddings [K, 16, 96], each window's clip as mel frames for charts)."""
        if spec not in self._embeddings:
            n = len(self._embeddings)
            wave = StreamDither(spec.dither, spec.scale, name=f"dither_{n}")(self.audio, self.offset)
            layer = MelFrames(name=f"mel_frames_{n}")
            mel = layer(wave)
            layer.set_weights(list(mel_weights()))
            network = embedding_network(every_frame=not self.one_window)
            network.name = f"speech_embedding_{n}"
            sequence = network(mel)
            if self.one_window:         # the audio is one window and its context: 16 embeddings
                windows = sequence
            else:
                pad = int(spec.pad_s * SAMPLE_RATE)
                windows = Slices(WINDOWS, FRAME_STEP, STRIDE, pad, name=f"embeddings_{n}")(sequence, self.starts)
            frames = Slices(chart_spec().shape()[0], FRAME_STEP, name=f"clip_frames_{n}")(mel, self.starts)
            # the mel graph's values are dB/10 + 2; charts read natural-log power like LogMel's
            picture = keras.layers.Rescaling(np.log(10.0), -2.0 * np.log(10.0), name=f"picture_{n}")(frames)
            self._embeddings[spec] = (windows, picture)
        return self._embeddings[spec]

    def member(self, run_dir: Path, config: dict):
        """(probabilities [K, labels] of one trained run, unweighted; its features [K, T, F])."""
        model = load_model(run_dir / runs.MODEL_FILE)
        name = f"{len(self._members)}_{run_dir.name}"     # layer names must be unique
        self._members.append(name)
        if config["features"] == "embedding":
            windows, picture = self.embeddings(EmbeddingSpec(**config.get("embedding", {})))
            model.name = f"body_{name}"
            return model(windows), picture
        features, body = model.get_layer("features"), model.get_layer("body")
        features.name, body.name = f"features_{name}", f"body_{name}"
        spec = FeatureSpec.of(config.get("feature_params"), config["features"])
        if FRAME_STEP % spec.frame_step == 0 and not self.one_window:
            # frames are local: a window's are a slice of the windows' span's (one pass, not K,
            # and not over the context only the embedding hears); one window's are its own
            # samples' (the same frames)
            frames = features(Trim(self.context, name=f"span_{name}")(self.audio))
            image = Slices(spec.shape()[0], spec.frame_step, shift=self.context,
                           name=f"frames_{name}")(frames, self.starts)
        else:
            image = features(Slices(CLIP_SAMPLES, name=f"waves_{name}")(self.audio, self.starts))
        picture = keras.layers.Reshape(spec.shape()[:2], name=f"picture_{name}")(image)
        return body(image), picture


def serving_graph(run_dir: str | Path, one_window: bool = False, clip: bool = False) -> keras.Model:
    """The run as one Keras model: (audio, starts, offset) -> (probabilities, picture), with
    the run's `_unknown_` weight applied (an ensemble's once, over its members' average).
    `clip`: see clip_model.

    `one_window`: the same model for exactly one window, inputs of fixed shape (audio
    [1, 1 s + 2 x context], starts [[context]]): the embedding network at its own stride
    (16 outputs, not one per frame), 2.4x faster for one clip than the span graph; what
    `classify`, the export formats and the page's on-device mode run."""
    run_dir = runs.check_run(Path(run_dir))
    config = runs.read_json(run_dir / "config.json")
    labels = runs.labels_of(run_dir)
    build = _Builder(context_samples([runs.read_json(d / "config.json") for d in runs.parts_of(run_dir, config)]),
                     one_window, clip)
    members = runs.members_of(run_dir, config) or [run_dir]
    base = list(config.get("base_labels") or labels)
    for member in members:
        if runs.labels_of(member) != base:
            raise runs.RunError(f"{member}: its labels differ from the ensemble's")
    outputs = [build.member(m, runs.read_json(m / "config.json") if m != run_dir else config)
               for m in members]
    probs = outputs[0][0] if len(outputs) == 1 else keras.layers.Average(name="average")(
        [p for p, _ in outputs])
    weights = label_weights(base, config.get("unknown_weight", 1.0))
    if any(w != 1.0 for w in weights):
        probs = LabelWeights(weights, name="label_weights")(probs)
    gate = runs.gate_of(run_dir, config)
    if gate is not None:
        words = runs.labels_of(gate)[1:]
        if sorted(base + words) != labels:
            raise runs.RunError(f"{gate}: the gate's words and the members' labels are not the version's")
        gate_probs, _ = build.member(gate, runs.read_json(gate / "config.json"))
        probs = GateCombine([labels.index(b) for b in base], [labels.index(w) for w in words],
                            len(labels), name="gate")(probs, gate_probs)
    probs = keras.layers.Identity(name="probabilities")(probs)
    if clip:
        return keras.Model(build.inputs, probs, name="hark")
    picture = keras.layers.Identity(name="picture")(outputs[0][1])
    return keras.Model(build.inputs, [probs, picture], name="hark")


def clip_model(run_dir: str | Path) -> keras.Model:
    """The served model for one clip, what the export formats hold: waveform [1, 16000] in,
    probabilities [1, labels] out (the one-window graph, the clip heard alone: the numbers of
    the Classifier's classify)."""
    return serving_graph(run_dir, clip=True)


def with_named_outputs(model: keras.Model) -> keras.Model:
    """The model with its outputs named (probabilities, picture) in a LiteRT signature; its
    tensors' names are this model's, so name it so wherever names are matched (int8)."""
    return keras.Model(model.inputs, dict(zip(("probabilities", "picture"), model.outputs)), name="served")


def to_litert(model: keras.Model, int8: tuple[str, ...] = (EMBEDDING,)) -> bytes:
    """The graph as a LiteRT flatbuffer with builtin ops only (LiteRT.js runs it too), the
    weights of the convolutions in the layers `int8` names stored as int8 (weights_int8); its
    signature's inputs and outputs carry their names (audio, starts, offset -> probabilities,
    picture)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(with_named_outputs(model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with quiet_converter():
        return weights_int8(converter.convert(), int8)


@contextlib.contextmanager
def quiet_converter():
    """Keras prints the traced signatures on stdout while converting, and the converter warns
    at length: keep both off ours."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


HYBRID_CONV_VERSION = 5                     # CONV_2D's version for int8 weights on float inputs


def weights_int8(data: bytes, layers: tuple[str, ...] = (EMBEDDING,)) -> bytes:
    """The LiteRT graph with the weights of the convolutions whose tensor names hold one of
    `layers` stored as int8, one scale per output channel, activations still float: LiteRT
    runs such a convolution on int8 (its input quantised on the fly, one scale for what one
    call computes), 3.7-3.8x faster than float here. What the converter's dynamic-range mode
    does (`Optimize.DEFAULT`: the same int8 layout, and it too leaves kernels under 1,024
    weights float), but for the layers chosen, which the converter cannot do: it would
    quantise the mel front end's DFT too, and a probability then moves by up to 0.28.

    Which layers (write_serving_graphs): the one-window graph (a clip: classify, the export
    formats, the page) holds the speech embedding's alone, the fixed pretrained network,
    checked once against onnxruntime (its embeddings move by about 2% of their spread on
    average, tests/test_embedding_keras.py); Hark's own trained networks stay float there,
    so a clip gets the numbers its training measured. The span graph (streams: the detector,
    Live mode, 20 windows a second a listener) holds the trained networks' too (NETWORKS):
    a kws window 0.73 -> 0.20 ms, its probabilities within 0.017 of float on 292 real clips
    (mean 0.0006, the same labels)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    codes = model.operatorCodes
    conv = [i for i, c in enumerate(codes)
            if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.CONV_2D]
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex not in conv:
                continue
            kernel = graph.tensors[op.inputs[1]]
            buffer = model.buffers[kernel.buffer]
            if (not any(part in kernel.name.decode() for part in layers) or kernel.type != schema.TensorType.FLOAT32
                    or buffer.data is None or len(buffer.data) < 4 * 1024):
                continue
            weights = np.frombuffer(bytes(buffer.data), np.float32).reshape(kernel.shape)   # [out, kh, kw, in]
            scale = np.maximum(np.abs(weights).reshape(len(weights), -1).max(axis=1), 1e-12) / 127.0
            quantized = np.clip(np.round(weights / scale[:, None, None, None]), -127, 127).astype(np.int8)
            buffer.data = np.frombuffer(quantized.tobytes(), np.uint8)
            kernel.type = schema.TensorType.INT8
            kernel.quantization = schema.QuantizationParametersT()
            kernel.quantization.scale = scale.astype(np.float32).tolist()
            kernel.quantization.zeroPoint = [0] * len(scale)
            kernel.quantization.quantizedDimension = 0
            codes[op.opcodeIndex].version = max(codes[op.opcodeIndex].version, HYBRID_CONV_VERSION)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def write_serving_graphs(run_dir: str | Path) -> int:
    """Write `run_dir`'s model.tflite and window.tflite (the span graph and the one-window
    graph) from its trained models and config.json, its `_unknown_` weight included, each
    atomically; returns the size of model.tflite in bytes. Serving them needs only the LiteRT
    runtime, not TensorFlow or onnxruntime: a web worker stays small and a clip takes a few
    milliseconds."""
    sizes = []
    for name, one_window, int8 in ((runs.WINDOW_FILE, True, (EMBEDDING,)), (runs.SERVING_FILE, False, NETWORKS)):
        data = to_litert(serving_graph(run_dir, one_window), int8)
        tmp = Path(run_dir) / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(Path(run_dir) / name)
        sizes.append(len(data))
    return sizes[-1]

"""The speech embedding as Keras layers (ml/embedding_keras.py) agrees with onnxruntime.

Tolerance: max abs diff <= 1e-3 on the embeddings [16, 96] (values up to about 90), 1e-4 on
the mel frames (values about 0-8). Measured on 200 real clips (bench/embedding_parity.py):
8e-5 for Keras and 1e-4 for LiteRT, float32 rounding of a different but equal order of
operations (about 1e-6 of the values); 1e-3 leaves a margin of ten and is still a hundred
times below what moves a head's label (the shipped heads give the same top label on all
200 clips). A real error (a transposed kernel, a missed padding, the wrong floor) is off by
whole units.
"""
from __future__ import annotations

import numpy as np
import pytest

from ml.synth.tones import TONES, tone_clip
from tests.helpers import SHARED_SPEECH

EMBEDDING_TOL, MEL_TOL = 1e-3, 1e-4


def made_clips() -> np.ndarray:
    """Tones, white noise, digital silence (dither only) and a quiet tone: loud and quiet
    clips side by side, where the ONNX graph's batch-wide floor would show."""
    rng = np.random.default_rng(3)
    tones = [tone_clip(f, rng) for f in TONES.values()]
    noise = rng.normal(0.0, 0.1, 16000)
    return np.stack(tones + [noise, np.zeros(16000), 0.001 * tones[0]]).astype(np.float32)


def real_clips() -> np.ndarray:
    """The first clip of each word in ../shared/speech/words, or none without that folder."""
    from ml.audio import load_clip

    words = SHARED_SPEECH / "words"
    if not words.is_dir():
        return np.zeros((0, 16000), np.float32)
    return np.stack([load_clip(min(w.glob("*.wav")))
                     for w in sorted(p for p in words.iterdir() if p.is_dir())])


@pytest.fixture(scope="module")
def clips():
    return np.concatenate([made_clips(), real_clips()])


@pytest.fixture(scope="module")
def onnx_reference(clips):
    """(embeddings, mel frames) from onnxruntime, one clip at a time as the Classifier serves."""
    from ml.embedding import SpeechEmbedding

    embed = SpeechEmbedding()
    pairs = [embed(c[np.newaxis]) for c in clips]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


@pytest.fixture(scope="module")
def model():
    from ml.embedding_keras import speech_embedding_model

    return speech_embedding_model()


def test_keras_embedding_matches_onnxruntime(model, clips, onnx_reference):
    out = np.asarray(model(clips))
    assert out.shape == (len(clips), 16, 96)
    assert np.abs(out - onnx_reference[0]).max() <= EMBEDDING_TOL


def test_mel_frames_match_onnxruntime(clips, onnx_reference):
    from ml.embedding_keras import mel_model

    frames = np.asarray(mel_model()(clips))
    assert frames.shape == (len(clips), 197, 32)
    assert np.abs(frames - onnx_reference[1]).max() <= MEL_TOL


def test_a_clip_gets_the_same_embedding_whatever_its_batch(model, clips):
    """The floor is each clip's own maximum - 80 dB. The ONNX graph takes the batch's: there
    the quiet tone batched with the others moves by about 11 from its embedding alone."""
    quiet = len(made_clips()) - 1
    alone = np.asarray(model(clips[quiet:quiet + 1]))[0]
    assert np.abs(np.asarray(model(clips))[quiet] - alone).max() <= EMBEDDING_TOL


def test_litert_conversion_has_builtin_ops_only_and_matches(model, clips, onnx_reference):
    from ai_edge_litert.interpreter import Interpreter

    from ml.embedding_keras import to_litert

    interpreter = Interpreter(model_content=to_litert(model), num_threads=1)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, 16000] and list(out["shape"]) == [1, 16, 96]
    for i in (0, len(made_clips()) - 1, len(clips) - 1):       # a tone, the quiet one, the last
        interpreter.set_tensor(inp["index"], clips[i:i + 1])
        interpreter.invoke()
        got = interpreter.get_tensor(out["index"])[0]
        assert np.abs(got - onnx_reference[0][i]).max() <= EMBEDDING_TOL
    interpreter.resize_tensor_input(inp["index"], [len(clips), 16000])    # a batch (the detector)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], clips)
    interpreter.invoke()
    assert np.abs(interpreter.get_tensor(out["index"]) - onnx_reference[0]).max() <= EMBEDDING_TOL


def test_saved_model_loads_without_the_onnx_files(model, clips, tmp_path, monkeypatch):
    """Weights are saved with the model (model.keras): loading it reads no ONNX file."""
    import keras

    import ml.embedding_keras

    def no_wheel():
        raise AssertionError("the ONNX files were read")

    path = tmp_path / "embedding.keras"
    model.save(path)
    monkeypatch.setattr(ml.embedding_keras, "resources", no_wheel)
    again = keras.saving.load_model(path)
    assert np.array_equal(np.asarray(again(clips[:2])), np.asarray(model(clips[:2])))


def test_int8_weights_move_the_embedding_by_about_two_percent(model, clips):
    """Serving stores the embedding's convolution weights in int8 (ml.graph.weights_int8,
    3.8x faster): measured on these clips, the embeddings move by 2% of their spread on average
    and 15% at most (one value of the 96 x 16), and the shipped ensemble keeps 99.8% of its
    labels on real words. A wrong scale or channel axis moves them by whole spreads."""
    from ai_edge_litert.interpreter import Interpreter

    from ml.embedding_keras import to_litert
    from ml.graph import weights_int8

    def run(data: bytes) -> tuple[np.ndarray, list[str]]:
        interpreter = Interpreter(model_content=data, num_threads=1)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        got = []
        for clip in clips:
            interpreter.set_tensor(inp["index"], clip[np.newaxis])
            interpreter.invoke()
            got.append(interpreter.get_tensor(out["index"])[0].copy())
        kernels = [t["dtype"].__name__ for t in interpreter.get_tensor_details()
                   if t["name"].split(";")[0].endswith("/Conv2D")]
        return np.array(got), kernels

    exact, float_kernels = run(to_litert(model))
    served, served_kernels = run(weights_int8(to_litert(model)))
    assert float_kernels.count("int8") == 0
    assert served_kernels.count("int8") == 19 and len(served_kernels) == 20   # the first has 216 weights
    gap, spread = np.abs(served - exact), exact.std()
    assert gap.mean() <= 0.04 * spread and gap.max() <= 0.3 * spread

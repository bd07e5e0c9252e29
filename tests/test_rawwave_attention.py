"""The raw-waveform network (rawwave) and the attention network.

Each trains for real on the tone set, saves, loads, exports to LiteRT and serves
through the Classifier with the same probabilities as Keras; the admin form offers
both, and a raw-waveform model's result view still shows a readable spectrogram.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from ml.cli import main as cli
from ml.synth.tones import TONES, tone_clip
from tests.helpers import audio_bytes, login

NEW = ("rawwave", "attention")
FLOAT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def trained(tone_data, tmp_path_factory):
    """trained(arch) -> run dir: one real epoch on the tone set, trained once per module."""
    from ml.train import TrainConfig, train

    done = {}

    def get(arch):
        if arch not in done:
            cfg = TrainConfig(data=str(tone_data), arch=arch, epochs=1, batch_size=16,
                              runs=str(tmp_path_factory.mktemp(f"runs-{arch}")))
            done[arch] = train(cfg, verbose=0, log=lambda msg: None)
        return done[arch]
    return get


@pytest.fixture(params=NEW)
def new_run(request, trained):
    """(arch, run dir) for each new architecture."""
    return request.param, trained(request.param)


def _clips(n: int = 10) -> np.ndarray:
    rng = np.random.default_rng(11)
    freqs = list(TONES.values())
    return np.stack([tone_clip(freqs[i % len(freqs)], rng) for i in range(n)]).astype(np.float32)


def test_trains_saves_loads_and_serves_like_keras(new_run):
    from ml.classifier import Classifier
    from ml.models import load_model
    from ml.runs import read_json

    arch, run = new_run
    config = read_json(run / "config.json")
    assert config["arch"] == arch and len(read_json(run / "history.json")) == 1
    model = load_model(run / "model.keras")
    x = _clips()
    keras_probs = np.asarray(model.predict(x, verbose=0))
    served = Classifier(run).predict_batch(x)
    assert served.shape == keras_probs.shape == (len(x), len(config["labels"]))
    assert np.allclose(served, keras_probs, atol=FLOAT_TOLERANCE), np.abs(served - keras_probs).max()
    assert np.allclose(served.sum(axis=1), 1, atol=1e-4)


def test_exports_to_one_litert_file_that_agrees(new_run, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    from ml.classifier import Classifier
    from ml.export.formats import formats_of

    arch, run = new_run
    assert formats_of({"arch": arch}) == ("keras", "tflite", "tflite-int8", "bundle")
    out = tmp_path / "m.tflite"
    assert cli(["export", "--model", str(run), "--format", "tflite", "--out", str(out)]) == 0
    it = Interpreter(model_path=str(out), num_threads=1)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for clip in _clips():
        it.set_tensor(inp["index"], clip[None])
        it.invoke()
        rows.append(it.get_tensor(outp["index"])[0])
    served = Classifier(run).predict_batch(_clips())
    assert np.allclose(np.array(rows), served, atol=FLOAT_TOLERANCE)


def test_rawwave_reads_the_waveform_with_waveform_augmentation_only():
    from ml.config import FEATURES
    from ml.models import build_model

    model = build_model("rawwave", 10, augment=True)
    names = [layer.name for layer in model.layers]
    assert {"time_shift", "noise_mix", "features"} <= set(names) and "spec_augment" not in names
    assert model.get_layer("features").compute_output_shape((None, 16000)) == (None, 16000, 1, 1)
    assert FEATURES["wave"].shape() == (16000, 1, 1)
    wave = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
    feats = np.asarray(model.get_layer("features")(wave))
    assert np.array_equal(feats[..., 0, 0], wave)                 # the identity, reshaped
    assert "spec_augment" in [layer.name for layer in build_model("attention", 10, True).layers]


def test_a_rawwave_models_result_view_draws_a_logmel_of_the_clip(trained, app_factory):
    client = app_factory(HARK_DEFAULT_MODEL=str(trained("rawwave"))).test_client()
    r = client.post("/api/analyze", data={"file": (io.BytesIO(audio_bytes(1500)), "t.wav", "audio/wav")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    fig = r.get_json()["figures"]["spectrogram"]
    heat = fig["data"][0]
    assert len(heat["y"]) == 40 and len(heat["x"]) == 98             # 40 mel bands, 98 frames
    assert "raw waveform" in fig["layout"]["title"]["text"]
    loudest = int(np.argmax(np.mean(np.array(heat["z"]), axis=1)))   # the tone's band
    assert abs(heat["y"][loudest] - 1500) < 150, heat["y"][loudest]


def test_the_admin_form_offers_both(app):
    client = app.test_client()
    login(client)
    html = client.get("/admin").get_data(as_text=True)
    for arch in NEW:
        assert f'<option value="{arch}"' in html, arch

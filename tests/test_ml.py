"""Unit tests of the ml package on tiny data made in the test."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml import audio, dataset
from ml.cli import main as cli
from ml.synth.tones import TONES, make_tone_set, tone_clip
from tests.helpers import ROOT

# --- audio -----------------------------------------------------------------

# Decoding (formats, hostile files, caps) is tested in tests/test_audio_decode.py.


def _wav_bytes(wave, rate, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_fit_clip_pads_short_and_finds_the_loud_second():
    short, start = audio.fit_clip(np.ones(100, np.float32))
    assert short.shape == (16000,) and start == 0 and short[100:].sum() == 0
    long = np.zeros(48000, np.float32)
    long[30000:34000] = 1.0
    clip, start = audio.fit_clip(long)
    assert clip.shape == (16000,) and start <= 30000 and start + 16000 >= 34000


# --- data sets and splits ----------------------------------------------------

def test_list_clips_ignores_non_folders_and_sorts_labels(tone_data):
    labels, clips = dataset.list_clips(tone_data)
    assert labels == sorted(TONES)
    assert all(c.path.suffix == ".wav" for c in clips)


def test_speaker_split_keeps_each_speaker_in_one_split(tone_data):
    _, clips = dataset.list_clips(tone_data)
    parts = dataset.split_clips(clips, "speaker", seed=3)
    owners = {}
    for name, part in parts.items():
        for clip in part:
            assert owners.setdefault(clip.speaker, name) == name
    assert sum(map(len, parts.values())) == len(clips)
    assert parts == dataset.split_clips(clips, "speaker", seed=3)


def test_a_speakers_words_outside_the_vocabulary_go_to_the_split_of_their_commands():
    """Speech Commands' extra words put the word first (`on_<speaker>_nohash_0.wav`): the same
    voice, so the same split, or a test split would score people the model trained on."""
    people = [f"{i:08x}" for i in range(0xabc000, 0xabc000 + 40)]
    clips = [dataset.Clip(Path(f"{label}/{name}"), label) for p in people
             for label, name in (("go", f"{p}_nohash_0.wav"), ("_unknown_", f"on_{p}_nohash_1.wav"),
                                 ("_unknown_", f"Backward_{p.upper()}_nohash_0.wav"))]
    parts = dataset.split_clips(clips, "speaker", seed=0)
    for part in parts.values():
        assert {c.speaker for c in part if c.label == "go"} == {c.speaker for c in part}
    assert all(len(part) % 3 == 0 and part for part in parts.values())
    assert dataset.speaker_of("silence_12.wav") is None


def test_random_split_is_80_10_10_and_seeded(tone_data):
    _, clips = dataset.list_clips(tone_data)
    parts = dataset.split_clips(clips, "random", seed=1)
    assert [len(parts[k]) for k in dataset.SPLITS] == [64, 8, 8]
    assert parts != dataset.split_clips(clips, "random", seed=2)


def test_unreadable_file_is_named_and_skipped(tmp_path, capsys):
    root = make_tone_set(tmp_path / "d", speakers=2, per_speaker=1)
    (root / "go" / "broken.wav").write_bytes(b"RIFF not really")
    labels, clips = dataset.list_clips(root)
    messages = []
    x, _, kept = dataset.load_arrays(clips, labels, messages.append)
    assert len(kept) == len(clips) - 1 and x.shape == (len(kept), 16000)
    assert any("broken.wav" in m for m in messages)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(dataset.DataError, match="no such data folder"):
        dataset.list_clips(tmp_path / "nope")
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(dataset.DataError, match="no audio files"):
        dataset.list_clips(tmp_path / "empty")


# --- models and features ------------------------------------------------------

@pytest.mark.parametrize("arch, shape", [("kws", (98, 40, 1)), ("tutorial", (124, 129, 1)),
                                         ("seed", (124, 129, 1))])
def test_every_architecture_maps_a_waveform_to_probabilities(arch, shape):
    from ml.models import build_model

    model = build_model(arch, 5)
    assert tuple(model.get_layer("features").compute_output_shape((None, 16000))[1:]) == shape
    probs = np.asarray(model(np.zeros((2, 16000), np.float32)))
    assert probs.shape == (2, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_background_mixer_adds_real_backgrounds_to_a_share_of_clips_within_its_snr():
    import tensorflow as tf

    from ml.augment import background_mixer

    rng = np.random.default_rng(0)
    backgrounds = rng.normal(0.0, 0.05, (20, 16000)).astype(np.float32)
    waves = np.zeros((400, 16000), np.float32)
    waves[:300] = 0.3 * np.sin(np.arange(16000) / 5.0)     # 100 digitally silent clips after them
    mix = background_mixer(backgrounds, share=0.5, snr_db=(5.0, 25.0))
    out = np.concatenate([w.numpy() for w, _ in tf.data.Dataset.from_tensor_slices(
        (waves, np.zeros(400, np.int32))).batch(50).map(mix)])
    added = out - waves
    mixed = np.abs(added[:300]).max(axis=1) > 1e-6
    assert 0.35 < mixed.mean() < 0.65 and not added[300:].any()
    snr = 20 * np.log10(np.sqrt((waves[:300][mixed] ** 2).mean(axis=1))
                        / np.sqrt((added[:300][mixed] ** 2).mean(axis=1)))
    assert snr.min() > 4.9 and snr.max() < 25.1


def test_default_model_is_small():
    from ml.config import ARCHS, DEFAULT_ARCH
    from ml.models import build_head, build_model

    members = ARCHS[DEFAULT_ARCH].members or (DEFAULT_ARCH,)
    sizes = {a: (build_head(a, 10) if ARCHS[a].features == "embedding" else build_model(a, 10))
             .count_params() for a in members}
    assert sum(sizes.values()) < 600_000 and sizes["kws"] < 300_000


# --- training, run directory, evaluate and predict --------------------------

def test_run_directory_holds_everything(tiny_run, tone_data):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"model.keras", "labels.json", "config.json", "split.json", "history.json",
            "metrics.json", "predictions.json"} <= names
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["arch"] == "kws" and config["split"] == "speaker" and len(config["data_hash"]) == 64
    assert config["versions"]["tensorflow"]
    history = json.loads((tiny_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, config["epochs"] + 1))
    assert {"loss", "accuracy", "elapsed_s", "eta_s"} <= set(history[0])
    split = json.loads((tiny_run / "split.json").read_text())
    predictions = json.loads((tiny_run / "predictions.json").read_text())
    assert sorted(p["path"] for p in predictions) == sorted(split["test"])
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["n"] == len(predictions)
    assert not any(p.name.startswith(".tmp") for p in tiny_run.parent.iterdir())


def test_a_data_set_names_the_served_unknown_weight_of_its_models(tone_data, tmp_path):
    import shutil

    from ml.dataset import DataError, served_unknown_weight
    from ml.train import TrainConfig, train

    data = tmp_path / "data"
    shutil.copytree(tone_data, data)
    assert served_unknown_weight(data) == 1.0  # no dataset.json
    (data / "dataset.json").write_text('{"unknown_weight": "heavy"}')
    assert served_unknown_weight(data) == 1.0
    cfg = TrainConfig(data=str(data), arch="kws", epochs=1, batch_size=16, runs=str(tmp_path / "runs"))
    (data / "dataset.json").write_text('{"unknown_weight": 2}')
    with pytest.raises(DataError, match=r"unknown_weight in .*dataset.json must be in \(0, 1\]"):
        train(cfg, verbose=0, log=lambda m: None)
    (data / "dataset.json").write_text('{"unknown_weight": 0.25}')
    run = train(cfg, verbose=0, log=lambda m: None)
    assert json.loads((run / "config.json").read_text())["unknown_weight"] == 0.25
    assert cfg.unknown_weight is None  # the caller's config is left as it was


def test_progress_callback_and_stop_request(tone_data, tmp_path):
    from ml.train import Cancelled, TrainConfig, train

    rows = []
    with pytest.raises(Cancelled):
        train(TrainConfig(data=str(tone_data), arch="kws", epochs=3, batch_size=16, runs=str(tmp_path)),
              on_epoch=rows.append, should_stop=lambda: len(rows) >= 1, verbose=0, log=lambda m: None)
    assert len(rows) == 1 and {"epoch", "loss", "elapsed_s", "eta_s"} <= set(rows[0])
    assert list(tmp_path.iterdir()) == []  # a cancelled run leaves nothing behind


def test_classifier_serves_any_rate_and_length(tiny_run):
    from ml.classifier import Classifier

    clf = Classifier(tiny_run)
    rng = np.random.default_rng(5)
    long_clip = np.concatenate([np.zeros(32000, np.float32), tone_clip(1500.0, rng)])
    pred = clf.classify(audio.to_model_rate(long_clip, 16000)[::2], 8000)
    assert pred.label in clf.labels and abs(sum(pred.probabilities.values()) - 1) < 1e-4
    assert pred.clip.shape == (16000,) and pred.window_start_s > 0.5
    assert set(pred.timing_ms) == {"resample", "model"}
    times, freqs = clf.feature_axes()
    values = pred.features
    assert values.shape == (len(times), len(freqs)) == (98, 40)


def test_served_graphs_match_the_keras_model(tiny_run, tone_data):
    from ml.classifier import Classifier
    from ml.models import load_model

    model = load_model(tiny_run / "model.keras")
    x = np.stack([tone_clip(f, np.random.default_rng(i)) for i, f in enumerate([300.0, 1500.0, None])])
    assert np.allclose(Classifier(tiny_run).predict_batch(x), np.asarray(model(x)), atol=1e-5)
    assert "tensorflow" not in __import__("ml.classifier").classifier.__dict__


def test_windows_of_a_span_are_its_clips_one_at_a_time(tiny_run, tmp_path):
    """predict_windows runs the graph once over the span: the same numbers as a clip at a time
    (exactly with the span graph in float; the served one holds the network's weights in int8,
    ml.graph.weights_int8: within 0.02, 4e-4 measured); windows start on whole 10 ms frames."""
    import shutil

    from ml.classifier import Classifier
    from ml.graph import serving_graph, to_litert

    clf = Classifier(tiny_run)
    assert clf.context == 0
    float_run = shutil.copytree(tiny_run, tmp_path / "float")
    (float_run / "model.tflite").write_bytes(to_litert(serving_graph(tiny_run), int8=()))
    exact = Classifier(float_run)
    wave = np.random.default_rng(5).normal(0, 0.1, 3 * 16000).astype(np.float32)
    view = np.lib.stride_tricks.sliding_window_view(wave, 16000)
    for starts in (np.arange(0, 2 * 16000 + 1, 800), np.arange(160, 2 * 16000, 1120)):
        alone = clf.predict_batch(view[starts])
        assert np.allclose(exact.predict_windows(wave, starts), alone, atol=1e-6)
        assert np.allclose(clf.predict_windows(wave, starts), alone, atol=0.02)
    assert clf.predict_windows(wave, []).shape == (0, len(clf.labels))
    with pytest.raises(ValueError, match="whole 10 ms frames"):
        clf.predict_windows(wave, np.arange(7, 2 * 16000, 1111))


def test_export_command_rewrites_serving_files(tiny_run, capsys):
    from ml.classifier import Classifier

    x = tone_clip(700.0, np.random.default_rng(1))[np.newaxis]
    before = Classifier(tiny_run).predict_batch(x)
    (tiny_run / "model.tflite").unlink()
    with pytest.raises(ValueError, match="python -m ml export"):
        Classifier(tiny_run)
    assert cli(["export", "--model", str(tiny_run)]) == 0
    assert np.allclose(Classifier(tiny_run).predict_batch(x), before, atol=1e-6)


def test_cli_evaluate_and_predict_round_trip(tiny_run, tone_data, capsys):
    assert cli(["evaluate", "--model", str(tiny_run), "--data", str(tone_data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 80 and set(report["per_class"]) == set(TONES)
    assert np.array(report["confusion"]).sum() == 80

    files = [str(p) for p in sorted((tone_data / "yes").iterdir())[:2]]
    assert cli(["predict", "--model", str(tiny_run), *files, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == files and all(r["label"] in TONES for r in rows)


def test_evaluate_accepts_a_subset_and_refuses_unknown_labels(tiny_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "sub" / "_silence_").mkdir(parents=True)
    sf.write(tmp_path / "sub" / "_silence_" / "a.wav", tone_clip(None, rng), 16000)
    assert cli(["evaluate", "--model", str(tiny_run), "--data", str(tmp_path / "sub")]) == 0
    assert "accuracy" in capsys.readouterr().out
    (tmp_path / "sub" / "banana").mkdir()
    sf.write(tmp_path / "sub" / "banana" / "b.wav", tone_clip(None, rng), 16000)
    assert cli(["evaluate", "--model", str(tiny_run), "--data", str(tmp_path / "sub")]) == 2
    assert "banana unknown to the model" in capsys.readouterr().err


def test_cli_bad_input_messages(tmp_path, capsys):
    assert cli(["evaluate", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert cli(["train", "--data", str(tmp_path / "missing")]) == 2
    assert "no such data folder" in capsys.readouterr().err


def test_predict_reports_unreadable_files(tiny_run, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"<html>hi</html>")
    assert cli(["predict", "--model", str(tiny_run), str(bad)]) == 1
    assert "bad.wav: not a readable audio file" in capsys.readouterr().err


# --- download ---------------------------------------------------------------

def test_download_extracts_a_local_zip_once(tmp_path):
    from ml.download import download

    archive = tmp_path / "mini_speech_commands.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("mini_speech_commands/yes/a_nohash_0.wav", _wav_bytes(np.zeros(160), 16000))
        zf.writestr("mini_speech_commands/README.md", "readme")
    target = download(tmp_path / "data", f"file://{archive}")
    assert (target / "yes" / "a_nohash_0.wav").is_file()
    assert dataset.list_labels(target) == ["yes"]
    archive.unlink()
    assert download(tmp_path / "data", str(archive)) == target  # cached: no second extraction


def test_download_refuses_unsafe_and_non_zip(tmp_path):
    from ml.download import download

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(dataset.DataError, match="unsafe path"):
        download(tmp_path / "d1", str(evil))
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    with pytest.raises(dataset.DataError, match="not a zip"):
        download(tmp_path / "d2", str(junk))


def test_download_offline_names_the_fix(tmp_path, capsys):
    assert cli(["data", "download", "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "python -m ml data default" in err and "--from PATH" in err


def test_label_weights_move_probability_away_from_unknown():
    from ml.graph_layers import LabelWeights, label_weights

    weights = label_weights(["_silence_", "_unknown_", "yes"], 0.25)
    assert weights == [1.0, 0.25, 1.0]
    out = np.asarray(LabelWeights(weights)(np.array([[0.2, 0.6, 0.2]], np.float32)))
    assert np.allclose(out, [[0.2 / 0.55, 0.15 / 0.55, 0.2 / 0.55]], atol=1e-6)


def test_export_with_weights_changes_the_served_graph(tiny_run, tmp_path, capsys):
    """The `_unknown_` weight is part of the graph: rewriting it rewrites model.tflite."""
    import shutil

    from ml.classifier import Classifier

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    labels = ["_silence_", "down", "go", "_unknown_"]            # its "yes" heard as _unknown_
    (run / "labels.json").write_text(json.dumps(labels))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "labels": labels, "unknown_weight": 1.0,
                                                 "data": str(tmp_path / "elsewhere")}))   # no test split
    x = np.stack([tone_clip(f, np.random.default_rng(2)) for f in (300.0, 700.0)])
    before = Classifier(run).predict_batch(x)
    assert cli(["export", "--model", str(run), "--unknown-weight", "0"]) == 2
    assert "--unknown-weight must be in (0, 1]" in capsys.readouterr().err
    assert cli(["export", "--model", str(run), "--unknown-weight", "0.1"]) == 0
    assert json.loads((run / "config.json").read_text())["unknown_weight"] == 0.1
    after = Classifier(run).predict_batch(x)
    expected = before * [1, 1, 1, 0.1]
    assert np.allclose(after, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


def test_feature_layers_keep_their_framing_when_the_defaults_change(monkeypatch, tmp_path):
    """A saved model carries its feature parameters: changing the catalogue's defaults
    neither breaks loading the shipped model nor changes what it hears."""
    import dataclasses

    from ml import config
    from ml.features import LogMel
    from ml.models import load_model

    shipped = ROOT / "models" / "default" / "members" / "kws" / "model.keras"
    x = np.stack([tone_clip(f, np.random.default_rng(7)) for f in (300.0, 1500.0)])
    before = np.asarray(load_model(shipped)(x))
    wider = dataclasses.replace(config.FEATURES["logmel"], frame_step=320, bins=64)
    monkeypatch.setitem(config.FEATURES, "logmel", wider)
    model = load_model(shipped)
    assert model.get_layer("features").feature_spec.bins == 40
    assert np.allclose(np.asarray(model(x)), before, atol=1e-6)
    # a layer built with the new defaults says so in its config, and keeps it through a save
    layer = LogMel()
    assert layer.get_config()["bins"] == 64 and layer.feature_spec.shape() == (49, 64, 1)
    assert LogMel.from_config(layer.get_config()).feature_spec == wider

"""The pretrained speech embedding, heads trained on it, and ensembles (real models, tiny data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ml.synth.tones import TONES, tone_clip


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(3)
    return np.stack([tone_clip(f, rng) for f in TONES.values()])


def test_embedding_shapes_and_batching(clips):
    from ml.embedding import DIM, WINDOWS, SpeechEmbedding

    emb = SpeechEmbedding()
    together, mel = emb(clips)
    assert together.shape == (len(clips), WINDOWS, DIM) and mel.shape == (len(clips), 197, 32)
    one = emb(clips[1:2])[0]
    assert np.allclose(one[0], together[1], atol=1e-5)      # a batch is many single calls
    assert not np.allclose(together[0], together[2], atol=1e-2)   # different sounds differ


@pytest.fixture(scope="module")
def head_run(tone_data, tmp_path_factory):
    from ml.train import TrainConfig, train

    runs = tmp_path_factory.mktemp("embed-runs")
    logs = []
    run = train(TrainConfig(data=str(tone_data), arch="embed-mlp", epochs=3, batch_size=16,
                            runs=str(runs)), verbose=0, log=logs.append)
    return run, logs


def test_a_head_on_the_embedding_is_a_run_served_like_any_other(head_run, clips):
    from ml.classifier import Classifier
    from ml.embedding import SpeechEmbedding
    from ml.models import load_model

    run, _ = head_run
    config = json.loads((run / "config.json").read_text())
    assert config["features"] == "embedding" and config["embedding"]["pad_s"] == 0.5
    assert (run / "model.tflite").is_file() and (run / "window.tflite").is_file()     # one graph
    clf = Classifier(run)
    served = clf.predict_batch(clips)
    # the served graph's embedding agrees with onnxruntime's, one clip at a time, up to its
    # int8 weights (ml.graph.weights_int8: 0.017 measured here; float was 1e-4)
    embedding = SpeechEmbedding()
    keras_probs = np.concatenate([np.asarray(load_model(run / "model.keras")(embedding(c[None])[0]))
                                  for c in clips])
    assert np.allclose(served, keras_probs, atol=0.05)
    assert (served.argmax(axis=1) == keras_probs.argmax(axis=1)).all()
    pred = clf.classify(clips[0])
    times, freqs = clf.feature_axes()
    assert pred.features.shape == (len(times), len(freqs)) == (97, 32)
    assert json.loads((run / "metrics.json").read_text())["n"] > 0


def test_a_second_training_on_the_same_data_reads_the_embeddings_from_the_cache(head_run, tone_data):
    from ml.train import TrainConfig, train

    run, first_logs = head_run
    assert not any("from the cache" in line for line in first_logs)
    logs = []
    train(TrainConfig(data=str(tone_data), arch="embed-conv", epochs=1, batch_size=16,
                      runs=str(run.parent)), verbose=0, log=logs.append)
    assert sum("from the cache" in line for line in logs) == 2     # train (with variants) and val


def test_an_ensemble_averages_its_members_and_weights_unknown_once(tone_data, tmp_path, clips):
    import shutil

    from ml.classifier import Classifier
    from ml.config import TrainConfig
    from ml.graph import write_serving_graphs
    from ml.train import train

    data = tmp_path / "data"
    shutil.copytree(tone_data, data)
    (data / "go").rename(data / "_unknown_")      # the 700 Hz tone plays "not a command"
    rows = []
    run = train(TrainConfig(data=str(data), arch="ensemble", epochs=1, batch_size=16,
                            runs=str(tmp_path / "runs"), unknown_weight=0.5), on_epoch=rows.append,
                verbose=0, log=lambda m: None)
    config = json.loads((run / "config.json").read_text())
    assert config["members"] == ["members/kws", "members/embed-mlp", "members/embed-conv"]
    # kws 1 epoch, each head twice the job's epochs (ml.config.HEAD_RECIPE)
    epochs = [r for r in rows if "epoch" in r]     # the others name a stage (embedding clips)
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5] and {r["epochs"] for r in epochs} == {5}
    assert not list((run / "members").glob("*/*.tflite"))     # members are not served alone
    for m in config["members"]:
        write_serving_graphs(run / m)
    members = [Classifier(run / m) for m in config["members"]]
    assert all(m.config["unknown_weight"] == 1.0 for m in members)
    mean = np.mean([m.predict_batch(clips) for m in members], axis=0)
    clf = Classifier(run)
    assert clf.labels == members[0].labels
    mean[:, clf.labels.index("_unknown_")] *= 0.5
    assert np.allclose(clf.predict_batch(clips), mean / mean.sum(axis=1, keepdims=True), atol=1e-5)
    assert clf.classify(clips[0]).features.shape == (98, 40)     # the kws member's log-mel


def test_the_whole_sequence_graph_equals_sixteen_windows_of_the_original(clips):
    """The edited graph (one pass over all frames) gives what the shipped graph gives per window."""
    import onnxruntime as ort

    from ml.embedding import STRIDE, WINDOW, WINDOWS, SpeechEmbedding, resources

    emb = SpeechEmbedding()
    fast, mel = emb(clips)
    original = ort.InferenceSession(str(resources() / "embedding_model.onnx"),
                                    providers=["CPUExecutionProvider"])
    windows = np.stack([mel[:, s:s + WINDOW] for s in np.arange(WINDOWS) * STRIDE], axis=1)
    slow = original.run(None, {original.get_inputs()[0].name:
                               windows.reshape(-1, WINDOW, mel.shape[2], 1)})[0]
    assert np.allclose(fast, slow.reshape(fast.shape), atol=1e-4)


def test_a_window_in_a_stream_hears_its_surroundings(clips):
    """in_context: silence around a clip gives the clip's own embeddings; a clip between
    others hears them at its edges and matches in its middle; one pass per phase of the
    starts gives what a pass per window gives."""
    from ml.embedding import SpeechEmbedding

    emb, pad, n = SpeechEmbedding(), 8000, 16000
    alone = np.concatenate([np.zeros(pad), clips[1], np.zeros(pad)]).astype(np.float32)
    assert np.allclose(emb.in_context(alone, [pad])[0], emb(clips[1:2])[0][0], atol=1e-5)
    stream = np.concatenate([np.zeros(pad), *clips[:3], np.zeros(pad)]).astype(np.float32)
    middle = emb.in_context(stream, [pad + n])[0]
    own = emb(clips[1:2])[0][0]
    change = np.linalg.norm(middle - own, axis=1) / np.linalg.norm(own, axis=1)
    assert change[0] > 0.1 and change[-1] > 0.1     # its first and last 0.76 s hear clips 0 and 2
    assert change[6:10].max() < 0.02               # 0.76 s inside the clip: itself (the dither differs)
    starts = pad + np.arange(0, 2 * n + 1, 800)                  # 5 frames apart: every phase
    together = emb.in_context(stream, starts)
    apart = np.stack([emb.in_context(stream, [s])[0] for s in starts])
    assert np.allclose(together, apart, rtol=1e-4, atol=5e-3)
    for bad in ([pad - 160], [pad + 80], [len(stream) - n - pad + 160]):
        with pytest.raises(ValueError, match="context inside the audio"):
            emb.in_context(stream, bad)


def test_the_shipped_ensemble_serves_windows_of_a_stream(clips):
    """A window with silence around it is the clip alone; one call for many windows gives
    what a call per window gives. Not to the last digit as in float: the int8 weights meet
    activations quantised with the largest value of what one pass computes (a window, or a
    span of them), and the span graph holds the kws network in int8 too, the one-window graph
    in float (ml.graph.weights_int8): 0.012 apart alone, 0.040 in a stream, measured here."""
    from ml.classifier import Classifier
    from tests.helpers import ROOT

    clf = Classifier(ROOT / "models" / "default")
    pad = clf.context
    assert pad == 8000
    alone = [np.concatenate([np.zeros(pad), c, np.zeros(pad)]).astype(np.float32) for c in clips[:2]]
    got = np.concatenate([clf.predict_windows(a, [pad]) for a in alone])
    assert np.allclose(got, clf.predict_batch(clips[:2]), atol=0.03)
    stream = np.concatenate([np.zeros(pad), *clips[:3], np.zeros(pad)]).astype(np.float32)
    starts = pad + np.arange(0, 2 * 16000 + 1, 1600)
    one_by_one = np.concatenate([clf.predict_windows(stream, [s]) for s in starts])
    assert np.allclose(clf.predict_windows(stream, starts), one_by_one, atol=0.08)


def test_training_copies_are_heard_alone_or_as_in_a_stream(clips):
    """ml/embed_train.variant: a copy with silence around it embeds as the one-second clip
    does (what a single clip gets); the others carry noise, and some a neighbouring clip,
    in the half second either side (what a window of a stream gets)."""
    from ml.embed_train import backgrounds_of, variant
    from ml.embedding import SpeechEmbedding

    rng, pad = np.random.default_rng(0), 8000
    labels = ["_silence_", "down", "go", "yes"]
    y = np.arange(len(clips)) % len(labels)
    backgrounds = backgrounds_of(clips, y, labels)
    assert backgrounds is not None and len(backgrounds) == 1
    copies = np.stack([variant(clips[i % len(clips)], rng, backgrounds, clips, pad) for i in range(40)])
    assert copies.shape == (40, 16000 + 2 * pad)
    around = np.abs(np.concatenate([copies[:, :pad], copies[:, -pad:]], axis=1)).max(axis=1)
    alone, streamed = copies[around == 0], copies[around > 0]
    assert len(alone) >= 8 and len(streamed) >= 8
    loud = (np.abs(copies[:, :pad]).max(axis=1) > 0.1) | (np.abs(copies[:, -pad:]).max(axis=1) > 0.1)
    assert loud.sum() >= 2                         # a neighbouring clip, not just noise
    emb = SpeechEmbedding()
    assert np.allclose(emb.embed_batches(alone[:4]),
                       emb.embed_batches(np.ascontiguousarray(alone[:4, pad:-pad])), atol=1e-5)
    assert backgrounds_of(clips, y, ["down", "go", "yes", "up"]) is None


def test_backgrounds_are_the_audible_silence_clips_and_a_bounded_number_of_them(monkeypatch):
    from ml import embed_train

    x = np.zeros((12, 16000), np.float32)
    x[:10] = np.arange(1, 11)[:, None] * 0.01         # ten audible clips, then two digitally silent
    y = np.zeros(12, int)
    y[5] = 1                                           # one of them is a word, not a background
    labels = ["_silence_", "go"]

    def levels(backgrounds):
        return sorted(np.round(backgrounds[:, 0] * 100).astype(int).tolist())

    assert levels(embed_train.backgrounds_of(x, y, labels)) == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    monkeypatch.setattr(embed_train, "MAX_BACKGROUNDS", 3)
    assert levels(embed_train.backgrounds_of(x, y, labels)) == [1, 5, 10]   # first, middle, last

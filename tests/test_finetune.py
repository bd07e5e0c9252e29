"""Training on several data sets at once, and fine-tuning from an existing run.

Real models on tone data: a second data set brings a new label and a single speaker; a
run started from another keeps its labels, adds the new one and starts from its skill.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.config import ConfigError, TrainConfig
from ml.dataset import DataError, common_root, gather
from ml.synth.tones import tone_clip

HI = 2500.0      # the new label's tone


def quiet(msg):
    pass


@pytest.fixture(scope="module")
def voice_set(tmp_path_factory):
    """A user's data set: one speaker, a label of its own ("hi") and one shared ("yes")."""
    root = tmp_path_factory.mktemp("sets") / "voice"
    rng = np.random.default_rng(11)
    for label, freq in (("hi", HI), ("yes", 1500.0)):
        (root / label).mkdir(parents=True)
        for n in range(10):
            sf.write(root / label / f"0a1b2c3d_nohash_{n}.wav", tone_clip(freq, rng), 16000,
                     subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def joint_run(tone_data, voice_set, tmp_path_factory):
    from ml.train import train

    cfg = TrainConfig(data=[str(tone_data), str(voice_set)], arch="kws", epochs=2, batch_size=16,
                      runs=str(tmp_path_factory.mktemp("joint-runs")))
    logs = []
    return train(cfg, verbose=0, log=logs.append), logs


def test_several_data_sets_are_split_each_on_its_own_and_their_labels_joined(tone_data, voice_set):
    logs = []
    sets = gather([tone_data, voice_set], "speaker", 0, log=logs.append)
    assert sets.labels == ["_silence_", "down", "go", "hi", "yes"]
    assert sets.root == common_root([tone_data, voice_set])[0]
    tones, voice = sets.records
    assert tones["split"] == "speaker" and voice["split"] == "random"   # one speaker: by clip
    assert any("1 speaker(s) only" in line for line in logs)
    assert voice["labels"] == {"hi": 10, "yes": 10} and voice["clips"] == 20
    in_train = [c for c in sets.parts["train"] if c.path.is_relative_to(voice_set)]
    assert 12 <= len(in_train) < 20            # the one voice is in training, not all in test
    by_speaker = {}
    for name, part in sets.parts.items():      # the tone set's speakers stay in one split each
        for clip in part:
            if clip.path.is_relative_to(tone_data):
                by_speaker.setdefault(clip.speaker, set()).add(name)
    assert by_speaker and all(len(splits) == 1 for splits in by_speaker.values())
    single = gather([tone_data], "speaker", 0, log=quiet)
    assert single.root == tone_data and single.data_hash == single.records[0]["data_hash"]


def test_data_folders_that_overlap_or_repeat_are_refused(tone_data, tmp_path):
    with pytest.raises(DataError, match="overlap"):
        common_root([tone_data, tone_data / "yes"])
    with pytest.raises(ConfigError, match="given twice"):
        TrainConfig(data=[str(tone_data), str(tone_data)]).check()
    with pytest.raises(ConfigError, match="one or more folders"):
        TrainConfig(data=[]).check()
    base, roots = common_root(["data/a", "data/b/"])     # relative folders stay relative
    assert str(base) == "data" and [str(r) for r in roots] == ["data/a", "data/b"]


def test_a_run_on_two_data_sets_records_both_and_its_files_work_as_one(joint_run, tone_data, voice_set):
    from ml.evaluate import evaluate_test_split

    run, _ = joint_run
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == ["_silence_", "down", "go", "hi", "yes"]
    assert [d["path"] for d in config["datasets"]] == [str(tone_data), str(voice_set)]
    assert config["data"] == str(common_root([tone_data, voice_set])[0])
    split = json.loads((run / "split.json").read_text())
    base = common_root([tone_data, voice_set])[0]
    prefixes = {str(tone_data.relative_to(base)), str(voice_set.relative_to(base))}
    assert {str(Path(p).parent.parent) for part in split.values() for p in part} == prefixes
    assert "init_from" not in config
    report = evaluate_test_split(run)     # what the gallery and the exporters read
    assert report["n"] == sum(len(v) for v in [split["test"]])


def test_fine_tuning_starts_from_the_runs_skill_and_adds_new_labels(tiny_run, tone_data, voice_set,
                                                                    tmp_path):
    from ml.classifier import Classifier
    from ml.train import train

    before = json.loads((tiny_run / "metrics.json").read_text())["accuracy"]
    common = {"epochs": 1, "batch_size": 16, "learning_rate": 1e-6, "runs": str(tmp_path), "arch": "kws"}
    tuned = train(TrainConfig(data=[str(tone_data), str(voice_set)], init=str(tiny_run), **common),
                  verbose=0, log=quiet)
    scratch = train(TrainConfig(data=[str(tone_data), str(voice_set)], **common), verbose=0, log=quiet)
    config = json.loads((tuned / "config.json").read_text())
    assert config["labels"] == ["_silence_", "down", "go", "hi", "yes"]
    assert config["init"] == str(tiny_run)
    assert config["init_from"]["run_id"] == tiny_run.name and config["init_from"]["added_labels"] == ["hi"]
    # A learning rate too small to learn anything: the fine-tuned run hears what its init
    # heard (the tones of the old labels); the same training from scratch is lost.
    rng = np.random.default_rng(99)
    old = {"down": 300.0, "go": 700.0, "yes": 1500.0}
    clips = np.stack([tone_clip(f, rng) for f in old.values() for _ in range(5)])
    truth = [label for label in old for _ in range(5)]
    tuned_clf, scratch_clf = Classifier(tuned), Classifier(scratch)

    def accuracy(clf):
        probs = clf.predict_batch(clips)
        return np.mean([clf.labels[i] == t for i, t in zip(probs.argmax(1), truth)])

    assert before > 0.5
    assert accuracy(tuned_clf) >= 0.8
    assert accuracy(scratch_clf) < accuracy(tuned_clf)


def test_the_output_units_follow_their_labels(tmp_path):
    from ml.models import build_model
    from ml.warm_start import transfer

    old = build_model("kws", 3, augment=False).get_layer("body")
    new = build_model("kws", 4, augment=False).get_layer("body")
    kernel, bias = old.layers[-1].get_weights()
    transfer(old, new, ["b", "c", "d"], ["a", "b", "c", "d"])     # "a" is new, first by name
    new_kernel, new_bias = new.layers[-1].get_weights()
    assert np.allclose(new_kernel[:, 1:], kernel) and np.allclose(new_bias[1:], bias)
    first = [next(layer for layer in model.layers if layer.weights) for model in (old, new)]
    assert np.allclose(first[1].get_weights()[0], first[0].get_weights()[0])


def test_a_run_to_start_from_must_be_one_and_of_the_same_architecture(tiny_run, tone_data, tmp_path):
    from ml.train import train

    base = {"data": str(tone_data), "epochs": 1, "batch_size": 16, "runs": str(tmp_path)}
    with pytest.raises(ConfigError, match="is a kws model"):
        train(TrainConfig(arch="tutorial", init=str(tiny_run), **base), verbose=0, log=quiet)
    with pytest.raises(DataError, match="not a run directory"):
        train(TrainConfig(init=str(tmp_path), **base), verbose=0, log=quiet)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "model.keras").unlink()
    with pytest.raises(DataError, match="no trained weights"):
        train(TrainConfig(init=str(broken), **base), verbose=0, log=quiet)
    assert [p.name for p in tmp_path.iterdir()] == ["broken"]     # no run was started


def test_an_ensemble_fine_tunes_each_member_from_its_own(tone_data, voice_set, tmp_path):
    from ml.classifier import Classifier
    from ml.train import train

    first = train(TrainConfig(data=str(tone_data), arch="ensemble", epochs=1, batch_size=16,
                              runs=str(tmp_path)), verbose=0, log=quiet)
    logs = []
    tuned = train(TrainConfig(data=str(voice_set), init=str(first), epochs=1, batch_size=16,
                              runs=str(tmp_path)), verbose=0, log=logs.append)
    config = json.loads((tuned / "config.json").read_text())
    assert config["arch"] == "ensemble" and config["init_from"]["added_labels"] == ["hi"]
    assert Classifier(tuned).labels == ["_silence_", "down", "go", "hi", "yes"]
    for member in ("kws", "embed-mlp", "embed-conv"):
        member_config = json.loads((tuned / "members" / member / "config.json").read_text())
        assert member_config["init_from"]["run_id"] == f"{first.name}/{member}"


def test_the_command_line_takes_several_data_folders_and_a_run_to_start_from(tone_data, capsys):
    from ml.cli import main, parser

    args = parser().parse_args(["train", "--data", "a", "--data", "b", "--init", "runs/x"])
    assert args.data == ["a", "b"] and args.init == "runs/x"
    assert main(["train", "--data", str(tone_data), "--data", str(tone_data)]) == 2
    assert "given twice" in capsys.readouterr().err

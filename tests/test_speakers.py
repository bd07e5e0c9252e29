"""Halves of real speakers (ml/speakers.py, `python -m ml data speakers`): each person in
exactly one half, every clip of the half linked under its label, bad requests refused."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ml.cli import main
from ml.dataset import DataError, gather, list_clips
from ml.speakers import link_half, speaker_half

SPEAKERS = [f"{i:08x}" for i in range(0x1a2b3c00, 0x1a2b3c00 + 24)]


@pytest.fixture
def speech(tmp_path):
    """A Speech Commands-like tree: words/<word>/<speaker>_nohash_<n>.wav and
    extra/_unknown_/<word>_<speaker>_nohash_0.wav, extra/_silence_/silence_<n>.wav."""
    root = tmp_path / "speech"
    wave = np.zeros(1600, np.float32)
    for word in ("go", "no"):
        for speaker in SPEAKERS:
            for n in range(2):
                path = root / "words" / word / f"{speaker}_nohash_{n}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, wave, 16000)
    for i, speaker in enumerate(SPEAKERS):
        for name in (f"_unknown_/on_{speaker}_nohash_0.wav", f"_silence_/silence_{i}.wav"):
            path = root / "extra" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave, 16000)
    return root


def test_a_speaker_is_in_one_half_whatever_the_word_or_take():
    halves = {speaker_half(f"{s}_nohash_0.wav") for s in SPEAKERS}
    assert halves == {0, 1}          # 24 speakers land in both halves
    for s in SPEAKERS:
        names = [f"{s}_nohash_0.wav", f"{s.upper()}_nohash_3.wav", f"backward_{s}_nohash_1.wav"]
        assert len({speaker_half(n) for n in names}) == 1
    assert {speaker_half(f"silence_{i}.wav") for i in range(20)} == {0, 1}


def test_the_two_halves_share_no_speaker_and_miss_no_clip(speech, tmp_path):
    sources = [speech / "words", speech / "extra"]
    counts = [link_half(sources, half, tmp_path / f"half{half}") for half in (0, 1)]
    listed = [list_clips(tmp_path / f"half{half}")[1] for half in (0, 1)]
    heard = [{c.path.name.split("_nohash_")[0].rsplit("_", 1)[-1] for c in clips
              if "_nohash_" in c.path.name} for clips in listed]
    assert heard[0] and heard[1] and not heard[0] & heard[1]
    everything = Counter(c.label for source in sources for c in list_clips(source)[1])
    assert Counter(counts[0]) + Counter(counts[1]) == everything
    for clip in listed[0]:
        assert clip.path.is_symlink() and clip.path.resolve().parent.name == clip.label
    data = gather([tmp_path / "half0"])             # a data folder training can use
    assert data.labels == ["_silence_", "_unknown_", "go", "no"]


def test_the_command_links_a_half_and_refuses_what_it_cannot_do(speech, tmp_path, capsys):
    dest = tmp_path / "real"
    assert main(["data", "speakers", str(speech / "words"), "--half", "1", "--dest", str(dest)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["half"] == 1 and sum(printed["clips"].values()) == len(list_clips(dest)[1])
    assert main(["data", "speakers", str(speech / "words"), "--half", "1", "--dest", str(dest)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "speakers", str(tmp_path / "none"), "--half", "0", "--dest",
                 str(tmp_path / "x")]) == 2
    assert "no such data folder" in capsys.readouterr().err
    with pytest.raises(DataError, match="more than one source"):
        link_half([speech / "words", speech / "words"], 0, tmp_path / "twice")


def test_a_repeated_half_is_heard_repeat_times_in_training_and_once_in_val_and_test(speech, tmp_path):
    once, thrice = tmp_path / "once", tmp_path / "thrice"
    link_half([speech / "words", speech / "extra"], 0, once)
    assert main(["data", "speakers", str(speech / "words"), str(speech / "extra"), "--half", "0",
                 "--repeat", "3", "--dest", str(thrice)]) == 0
    assert json.loads((thrice / "dataset.json").read_text())["train_repeat"] == 3
    plain, repeated = gather([once]), gather([thrice])
    names = {name: Counter(f"{c.label}/{c.path.name}" for c in part)
             for name, part in repeated.parts.items()}
    assert set(names["train"].values()) == {3}
    assert sorted(names["train"]) == sorted(f"{c.label}/{c.path.name}" for c in plain.parts["train"])
    for name in ("val", "test"):
        assert names[name] == Counter(f"{c.label}/{c.path.name}" for c in plain.parts[name])
    assert repeated.records[0]["train_repeat"] == 3 and "train_repeat" not in plain.records[0]
    assert repeated.data_hash == plain.data_hash      # the same clips


@pytest.mark.parametrize("bad", ["0", "21", "2.5", '"3"', "true"])
def test_a_bad_train_repeat_is_refused_with_its_file_named(speech, tmp_path, bad):
    dest = tmp_path / "half"
    link_half([speech / "words"], 1, dest)
    (dest / "dataset.json").write_text('{"train_repeat": ' + bad + "}")
    with pytest.raises(DataError, match=r"dataset.json: train_repeat must be a whole number from 1 to 20"):
        gather([dest])
    with pytest.raises(DataError, match="repeat must be a whole number from 1 to 20, not 0"):
        link_half([speech / "words"], 1, tmp_path / "other", repeat=0)


def test_the_speakers_a_run_heard_are_those_of_its_train_and_val_clips(speech, tmp_path):
    from ml.speakers import heard_speakers, speakers_in

    assert speakers_in(speech) == set(SPEAKERS)                 # `_silence_` names hold nobody
    run = tmp_path / "run"
    run.mkdir()
    a, b, c = SPEAKERS[:3]
    (run / "split.json").write_text(json.dumps({
        "train": [f"real/go/{a.upper()}_nohash_0.wav", "real/_silence_/silence_3.wav"],
        "val": [f"real/_unknown_/on_{b}_nohash_1.wav"],
        "test": [f"real/no/{c}_nohash_0.wav"]}))                # scored, not heard
    assert heard_speakers(run) == {a, b}

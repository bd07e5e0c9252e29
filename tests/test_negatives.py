"""Real negatives (ml/negatives.py): a background folder split into parts by group, cut into
training windows, and mined with a model's detector; `python -m ml data negatives`."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ml.audio import SAMPLE_RATE
from ml.cli import main as cli
from ml.config import SILENCE, UNKNOWN
from ml.dataset import DataError, list_clips, speaker_of, split_clips
from ml.negatives import build, recordings
from ml.rehearsal import word_of
from ml.synth.tones import TONES


def babble(seconds: float, seed: int, pause_s: float = 0.0) -> np.ndarray:
    """Loud noise standing in for talk, with `pause_s` of near silence in the middle."""
    rng = np.random.default_rng(seed)
    wave = rng.normal(0, 0.1, int(seconds * SAMPLE_RATE))
    if pause_s:
        mid = len(wave) // 2
        wave[mid - int(pause_s * SAMPLE_RATE / 2):mid + int(pause_s * SAMPLE_RATE / 2)] *= 0.001
    return wave.astype(np.float32)


def tones(seconds: float, freq: float) -> np.ndarray:
    """0.4 s bursts of one tone every 1.5 s: the tone model hears a word in each."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t) * ((t % 1.5) < 0.4)).astype(np.float32)


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    """20 recordings of each kind, 4 s each; speech has a pause, one music piece is in parts."""
    root = tmp_path_factory.mktemp("background")
    for kind in ("speech", "music", "noise"):
        (root / kind).mkdir()
        for i in range(20):
            wave = (babble(4, i, pause_s=1.5) if kind == "speech" else
                    tones(4, TONES["yes"]) if kind == "music" else babble(4, 100 + i) * 0.2)
            name = f"{kind}{i}" if (kind, i) != ("music", 0) else "piece_part1"
            sf.write(root / kind / f"{name}.flac", wave, SAMPLE_RATE)
    sf.write(root / "music" / "piece_part2.flac", tones(4, 900.0), SAMPLE_RATE)
    return root


def test_recordings_fall_in_parts_by_group_with_each_kind_s_shares(background):
    found = recordings(background)
    assert found == recordings(background)                      # the same every time
    assert len(found) == 61 and {r.kind for r in found} == {"speech", "music", "noise"}
    for kind in ("speech", "noise"):
        parts = Counter(r.part for r in found if r.kind == kind)
        assert parts == {"train": 12, "dev": 4, "test": 4}
    pieces = [r for r in found if r.path.stem.startswith("piece_part")]
    assert len({r.group for r in pieces}) == 1 and len({r.part for r in pieces}) == 1
    with pytest.raises(DataError, match="no such background folder"):
        recordings(background / "missing")


def test_build_cuts_windows_labelled_by_kind_with_pauses_as_silence(background, tmp_path):
    about = build(background, tmp_path / "neg", "test", hop_s=0.5, log=lambda m: None)
    chosen = [r for r in recordings(background) if r.part == "test"]
    labels, clips = list_clips(tmp_path / "neg")
    assert set(labels) == {SILENCE, UNKNOWN}
    assert about["clips"] == len(clips) == 7 * len(chosen)      # windows at 0, 0.5, ... 3 s of 4 s
    speech = [c for c in clips if c.path.name.startswith("speech_")]
    assert Counter(c.label for c in speech)[SILENCE] >= 1       # the pause in the middle
    assert all(c.label == SILENCE for c in clips if not c.path.name.startswith("speech_"))
    assert {word_of(c, {}) for c in speech if c.label == UNKNOWN} == {"speech"}   # as a pack files it
    assert sf.info(str(clips[0].path)).frames == SAMPLE_RATE
    # a recording's windows share a speaker tag, so a speaker split keeps them together
    by_recording = {}
    for c in clips:
        by_recording.setdefault(c.path.name.split("_nohash_")[0], set()).add(speaker_of(c.path.name))
    assert len(by_recording) == len(chosen)
    assert all(len(tags) == 1 and None not in tags for tags in by_recording.values())
    parts = split_clips(clips, "speaker")
    for name in by_recording:
        assert sum(any(c.path.name.startswith(name + "_nohash_") for c in p) for p in parts.values()) == 1
    stored = json.loads((tmp_path / "neg" / "dataset.json").read_text())
    assert stored["part"] == "test" and stored["labels"] == about["labels"] and "mined_with" not in stored
    with pytest.raises(DataError, match="not empty"):
        build(background, tmp_path / "neg", "test")
    with pytest.raises(DataError, match="unknown part"):
        build(background, tmp_path / "other", "holdout")


def test_mining_adds_the_windows_a_model_wrongly_fires_on(background, tiny_run, tmp_path):
    """The tone model hears "yes" in the music made of its tone: those are its false alarms."""
    about = build(background, tmp_path / "mined", "train", hop_s=1.0, mine_with=tiny_run,
                  log=lambda m: None)
    mined = about["mined_with"]
    assert mined["model"] == tiny_run.name and mined["false_alarms"]["music"] >= 10
    _, clips = list_clips(tmp_path / "mined")
    hard = [c for c in clips if "_nohash_m" in c.path.name]
    assert len(hard) == 3 * sum(mined["false_alarms"].values())
    assert {c.label for c in hard if c.path.name.startswith("music_")} == {SILENCE}


def test_cli_data_negatives(background, tmp_path, capsys):
    assert cli(["data", "negatives", str(background), "--dest", str(tmp_path / "n"), "--part", "dev"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["part"] == "dev" and out["clips"] > 0 and (tmp_path / "n" / "dataset.json").is_file()
    assert cli(["data", "negatives", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "m")]) == 2
    assert "no such background folder" in capsys.readouterr().err
    assert cli(["data", "negatives", str(background), "--dest", str(tmp_path / "m"), "--hop", "0"]) == 2
    assert "--hop must be" in capsys.readouterr().err

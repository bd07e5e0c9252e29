"""The offline synthetic data set generator (ml.synth): layout, format, determinism, resume."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.synth import effects, engines
from ml.synth.generate import DEFAULT_PER_WORD, DEFAULT_SEED, UNKNOWN_WEIGHTS, generate, make_plan
from ml.synth.words import COMMANDS, LABELS, SILENCE, UNKNOWN, UNKNOWN_DRAWS, UNKNOWN_WORDS

PER_WORD = 3
NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("*/*.wav"))}


@pytest.fixture(scope="module")
def parallel_set(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("synth") / "default"
    return dest, generate(dest, per_word=PER_WORD, seed=7, workers=2, progress=False)


@pytest.fixture(scope="module")
def serial_set(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("synth_serial") / "default"
    return dest, generate(dest, per_word=PER_WORD, seed=7, workers=1, progress=False)


def test_public_api():
    assert DEFAULT_PER_WORD > 0 and isinstance(DEFAULT_SEED, int)
    found = engines.available_engines()
    assert "espeak" in found and set(found) <= set(engines.ORDER)


def test_layout_and_counts(parallel_set):
    dest, summary = parallel_set
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == sorted(LABELS)
    counts = {label: len(list((dest / label).glob("*.wav"))) for label in LABELS}
    assert all(counts[w] == PER_WORD for w in COMMANDS)
    assert counts[UNKNOWN] == PER_WORD and counts[SILENCE] == round(PER_WORD / 2)
    assert summary["counts"] == counts and summary["clips"] == sum(counts.values())
    assert "espeak" in summary["engines"]
    names = [p.name for p in dest.glob("*/*.wav")]
    assert all(NAME.match(n) for n in names), names
    assert not list(dest.rglob("*.tmp"))
    readme = (dest / "README.md").read_text()
    assert "GPL-3.0" in readme
    assert summary["unknown_weight"] == UNKNOWN_WEIGHTS and all(0 < w <= 1 for w in UNKNOWN_WEIGHTS.values())


def test_unknown_words_are_drawn_by_their_weights():
    words = Counter(t["word"] for t in make_plan(DEFAULT_PER_WORD, DEFAULT_SEED, ["espeak"])
                    if t["label"] == UNKNOWN)
    assert set(words) == set(UNKNOWN_WORDS)
    ordinary = np.median([n for w, n in words.items() if w not in UNKNOWN_DRAWS])
    for word, draws in UNKNOWN_DRAWS.items():
        assert words[word] == pytest.approx(draws * ordinary, rel=0.2)


def test_clip_format(parallel_set):
    dest, _ = parallel_set
    for path in dest.glob("*/*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16"), path


def test_manifest_matches_files(parallel_set):
    dest, summary = parallel_set
    with open(dest / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["file"] for r in rows} == {str(p.relative_to(dest)) for p in dest.glob("*/*.wav")}
    for r in rows:
        label, name = r["file"].split("/")
        assert r["label"] == label and name.startswith(r["speaker"] + "_nohash_")
        json.loads(r["params"]), json.loads(r["augment"])
        if label != SILENCE:
            assert r["engine"] in summary["engines"] and r["text"].rstrip(".!?") == r["word"]
        if label in COMMANDS:
            assert r["word"] == label
    words = {r["word"] for r in rows if r["label"] == UNKNOWN}
    assert not words & set(COMMANDS)


def test_transients_are_short_loud_events():
    from ml.synth import noise

    for seed in range(20):
        x = noise.transients(16000, np.random.default_rng(seed), 2)
        assert x.shape == (16000,) and np.isclose(np.abs(x).max(), 1.0)
        frames = np.sort((x.reshape(100, 160).astype(np.float64) ** 2).sum(axis=1))[::-1]
        assert frames[:25].sum() > 0.95 * frames.sum()  # all within a quarter of the second


def test_silence_is_quiet_and_speech_is_not(parallel_set):
    dest, _ = parallel_set
    for path in (dest / SILENCE).glob("*.wav"):
        x, _ = sf.read(str(path))
        assert np.sqrt(np.mean(x**2)) < 0.05, path
    for label in COMMANDS:
        for path in (dest / label).glob("*.wav"):
            x, _ = sf.read(str(path))
            assert np.max(np.abs(x)) > 0.04, path


def test_same_seed_same_bytes_whatever_the_workers(parallel_set, serial_set):
    assert digest(parallel_set[0]) == digest(serial_set[0])


def test_other_seed_differs(serial_set, tmp_path):
    other = generate(tmp_path / "other", per_word=PER_WORD, seed=8, workers=1, progress=False)
    assert other["clips"] == serial_set[1]["clips"]
    a, b = digest(serial_set[0]), digest(tmp_path / "other")
    assert set(a.values()).isdisjoint(b.values())


def test_second_call_does_nothing(serial_set):
    dest, summary = serial_set
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    start = time.monotonic()
    again = generate(dest, per_word=PER_WORD, seed=7, workers=1, progress=False)
    assert time.monotonic() - start < 1.0
    assert again == summary
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == before


def test_interrupted_run_resumes_to_the_same_bytes(serial_set, tmp_path):
    dest, _ = serial_set
    copy = tmp_path / "copy"
    expected = digest(dest)
    generate(copy, per_word=PER_WORD, seed=7, workers=1, progress=False)
    (copy / "dataset.json").unlink()  # as if the run had stopped before the end
    lost = sorted(copy.glob("*/*.wav"))[::3]
    for p in lost:
        p.unlink()
    (copy / "yes" / "junk.wav.123.tmp").write_bytes(b"partial")
    generate(copy, per_word=PER_WORD, seed=7, workers=1, progress=False)
    assert digest(copy) == expected
    assert not list(copy.rglob("*.tmp"))


def test_refuses_a_folder_of_foreign_wavs(tmp_path):
    (tmp_path / "yes").mkdir()
    sf.write(str(tmp_path / "yes" / "0000abcd_nohash_0.wav"), np.zeros(16000), 16000, subtype="PCM_16")
    with pytest.raises(RuntimeError):
        generate(tmp_path, per_word=1, seed=1, workers=1, progress=False)


@pytest.mark.parametrize("seconds", [0.5, 0.9])
def test_render_keeps_the_word_inside_the_window(seconds):
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    word = (0.5 * np.sin(np.arange(n) * 0.3) * np.hanning(n) ** 0.1).astype(np.float32)
    a = {"pitch_cents": 0.0, "tempo": 0.8, "position": 1.0, "peak": 0.5,
         "noise": {"kind": "white", "level_dbfs": -90.0}}
    clip = effects.render(word, a, rng, bank=None)
    assert clip.shape == (16000,) and abs(np.max(np.abs(clip)) - 0.5) < 1e-3
    assert np.max(np.abs(clip[-400:-100])) > 0.1  # the (slowed) word runs to the window's end
    start = int(np.argmax(np.abs(clip) > 0.05))
    assert 16000 - start >= min(n / 0.8, 0.98 * 16000) - 50  # and none of it is cut off


@pytest.mark.parametrize("name", engines.ORDER)
def test_each_available_engine_speaks_reproducibly(name):
    if name not in engines.available_engines():
        pytest.skip(f"TTS engine {name} is not installed here")
    eng = engines.get(name)
    voice = eng.voices()[0]
    params = eng.params(voice, np.random.default_rng(0))
    a, rate = eng.synth(voice, "stop!", params)
    b, _ = eng.synth(voice, "stop!", params)
    word = effects.trim(effects.to_16k(a, rate))
    assert 0.1 * 16000 < len(word) < 1.5 * 16000 and np.max(np.abs(word)) > 0.05
    assert np.array_equal(a, b)
    assert re.fullmatch(r"[0-9a-f]{8}", voice.speaker)


def test_the_clips_asked_for_first_are_made_first_and_the_set_is_the_same(tmp_path):
    from ml.synth.generate import generate

    plain = tmp_path / "plain"
    generate(plain, per_word=2, workers=1, progress=False)
    files = sorted(p.relative_to(plain).as_posix() for p in plain.glob("*/*.wav"))
    wanted = [files[-1], files[len(files) // 2]]
    first = tmp_path / "first"
    generate(first, per_word=2, workers=1, progress=False, first=wanted)
    made = [p.relative_to(first).as_posix()
            for p in sorted(first.glob("*/*.wav"), key=lambda p: p.stat().st_mtime_ns)]
    # each comes with the other clips of its utterance (at most 5 with Kokoro), before the rest
    assert max(made.index(f) for f in wanted) < 5 * len(wanted) and len(made) > 15
    assert all((first / f).read_bytes() == (plain / f).read_bytes() for f in files)

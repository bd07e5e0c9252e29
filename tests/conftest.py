"""Shared fixtures: tiny data sets made in the test, and a model trained on them."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every app a test makes keeps its database, queue, secret key and runs in throwaway folders,
# and has rate limits no test reaches (tests/test_security.py checks the login limit itself).
_TMP = tempfile.TemporaryDirectory(prefix="hark-test-")   # removed when the session ends
os.environ.setdefault("HARK_INSTANCE", os.path.join(_TMP.name, "instance"))
os.environ.setdefault("HARK_RUNS", os.path.join(_TMP.name, "runs"))
for _name in ("HARK_RATE_PREDICT", "HARK_RATE_ANALYZE", "HARK_RATE_UPLOAD", "HARK_RATE_LOGIN"):
    os.environ.setdefault(_name, "100000/minute")

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEECH = ROOT.parent / "shared" / "speech"
TONES = {"down": 300.0, "go": 700.0, "yes": 1500.0, "_silence_": None}


def tone_clip(freq: float | None, rng: np.random.Generator, seconds: float = 1.0, rate: int = 16000):
    """A labelled stand-in for a word: a tone burst at a label's pitch, or noise alone."""
    t = np.arange(int(seconds * rate)) / rate
    wave = rng.normal(0, 0.01, t.size)
    if freq is not None:
        start = rng.uniform(0.1, 0.4)
        burst = (t > start) & (t < start + 0.4)
        wave += burst * 0.5 * np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t)
    return wave.astype(np.float32)


def make_tone_set(root: Path, speakers: int = 10, per_speaker: int = 2, seed: int = 0) -> Path:
    """A folder in the Speech Commands layout with `<speaker>_nohash_<n>.wav` names."""
    rng = np.random.default_rng(seed)
    for label, freq in TONES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            for n in range(per_speaker):
                sf.write(root / label / f"{s:08x}_nohash_{n}.wav", tone_clip(freq, rng), 16000,
                         subtype="PCM_16")
    (root / "README.md").write_text("not a label")
    return root


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory) -> Path:
    return make_tone_set(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def tiny_run(tone_data, tmp_path_factory) -> Path:
    """A real kws model trained for two epochs on the tone set."""
    from ml.train import TrainConfig, train

    cfg = TrainConfig(data=str(tone_data), epochs=2, batch_size=16,
                      runs=str(tmp_path_factory.mktemp("runs")))
    return train(cfg, verbose=0, log=lambda msg: None)


def require_shared_speech() -> Path:
    if not (SHARED_SPEECH / "words").is_dir():
        pytest.skip(f"real speech clips not found at {SHARED_SPEECH} (see ../shared/speech/README.md)")
    return SHARED_SPEECH

"""A stand-in data set of tone bursts: a real model learns it in seconds.

Tests and benchmarks train and serve real models on it without the minutes the
spoken default set takes: each label is a tone at its own pitch (or noise alone
for `_silence_`), with `<speaker>_nohash_<n>.wav` names so speaker splits work.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ml.config import SILENCE

TONES = {"down": 300.0, "go": 700.0, "yes": 1500.0, SILENCE: None}
SILENCE_FLOORS = (0.01, 0.0, 0.03, 0.001)


def tone_clip(freq: float | None, rng: np.random.Generator, seconds: float = 1.0, rate: int = 16000,
              floor: float = 0.01):
    """A labelled stand-in for a word: a tone burst at a label's pitch over noise of std
    `floor`, or that noise alone."""
    t = np.arange(int(seconds * rate)) / rate
    wave = rng.normal(0, floor, t.size)
    if freq is not None:
        start = rng.uniform(0.1, 0.4)
        burst = (t > start) & (t < start + 0.4)
        wave += burst * 0.5 * np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t)
    return wave.astype(np.float32)


def make_tone_set(root: Path, speakers: int = 10, per_speaker: int = 2, seed: int = 0) -> Path:
    """A folder in the Speech Commands layout with `<speaker>_nohash_<n>.wav` names.
    `_silence_` comes at several levels, digital silence included, as real rooms and
    microphones do: a model that only heard one level of hiss calls a silent file anything."""
    rng = np.random.default_rng(seed)
    for label, freq in TONES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            for n in range(per_speaker):
                floor = SILENCE_FLOORS[(s * per_speaker + n) % len(SILENCE_FLOORS)] if freq is None else 0.01
                sf.write(root / label / f"{s:08x}_nohash_{n}.wav", tone_clip(freq, rng, floor=floor), 16000,
                         subtype="PCM_16")
    (root / "README.md").write_text("not a label")
    return root

"""Procedural background noise: coloured noise, mains hum, speech babble and transients.

Why procedural: the generator must work offline with nothing but pip packages,
and noise made from a seeded RNG is reproducible and free of licence questions.
Every `make` result has unit RMS; callers set the level.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

KINDS = ("white", "pink", "brown", "hum", "babble", "mix")
_KIND_P = (0.15, 0.22, 0.13, 0.12, 0.25, 0.13)
SR = 16_000


def sample_kind(rng: np.random.Generator) -> str:
    return str(rng.choice(KINDS, p=_KIND_P))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def colored(n: int, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**alpha (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-alpha / 2)
    spec[0] = 0.0
    return _unit(np.fft.irfft(spec, n))


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum at 50 or 60 Hz with random harmonics, a little drift and buzz."""
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for h in range(1, int(rng.integers(3, 12))):
        x += (rng.uniform(0.05, 1.0) / h ** rng.uniform(0.3, 1.5)
              * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)))
    if rng.uniform() < 0.3:  # buzzy, clipped hum
        x = np.clip(x, -0.5 * np.max(np.abs(x)), 0.5 * np.max(np.abs(x)))
    return _unit(x + 0.05 * colored(n, rng, 1.0))


class BabbleBank:
    """Continuous speech of random non-command words from eSpeak voices, made once per process."""

    def __init__(self, seed: int, size: int = 20):
        self.seed, self.size = seed, size
        self._items: list[np.ndarray] | None = None

    @property
    def items(self) -> list[np.ndarray]:
        if self._items is None:
            from ml.audio import to_model_rate
            from ml.synth import _espeak
            from ml.synth.words import BABBLE_WORDS

            rng = np.random.default_rng([self.seed, 77])
            accents = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
            variants = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
            items = []
            for _ in range(self.size):
                words = rng.choice(BABBLE_WORDS, size=int(rng.integers(8, 16)))
                v = f"{rng.choice(accents)}+{rng.choice(variants)}".rstrip("+")
                audio = _espeak.synth(" ".join(words), v, int(rng.integers(140, 230)),
                                      int(rng.integers(20, 80)), int(rng.integers(30, 90)))
                items.append(to_model_rate(np.asarray(audio, np.float32), _espeak.sample_rate()))
            self._items = items
        return self._items


def babble(n: int, rng: np.random.Generator, bank: BabbleBank) -> np.ndarray:
    """Several overlapping talkers at random offsets and gains."""
    x = np.zeros(n)
    items = bank.items
    for _ in range(int(rng.integers(3, 8))):
        src = items[int(rng.integers(len(items)))]
        if len(src) <= n:
            src = np.tile(src, n // max(len(src), 1) + 2)
        start = int(rng.integers(0, len(src) - n))
        x += rng.uniform(0.3, 1.0) * src[start:start + n]
    return _unit(x + 1e-3 * rng.standard_normal(n))


def transients(n: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` short events (clicks, knocks, clinks, thumps) at random times; peak 1.

    Real backgrounds are not stationary: a knock or a clinking dish in a quiet room
    is short and loud like a plosive, and a model that never heard one calls it "up".
    """
    x = np.zeros(n)
    for _ in range(count):
        length = int(SR * rng.uniform(0.003, 0.12))
        decay = np.exp(-np.arange(length) / (length * rng.uniform(0.1, 0.4)))
        if rng.uniform() < 0.4:  # a clink: a few damped partials
            t = np.arange(length) / SR
            f = rng.uniform(700, 5000)
            burst = sum(np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2.76, 5.4))
        else:  # a click, knock or thump: noise through a random low-pass
            b, a = signal.butter(2, rng.uniform(300, 7000) / (SR / 2))
            burst = signal.lfilter(b, a, rng.standard_normal(length))
        burst = burst * decay
        start = int(rng.integers(0, max(1, n - length)))
        x[start:start + length] += rng.uniform(0.3, 1.0) * burst / (np.abs(burst).max() + 1e-12)
    return (x / (np.abs(x).max() + 1e-12)).astype(np.float32)


def make(kind: str, n: int, rng: np.random.Generator, bank: BabbleBank) -> np.ndarray:
    """Unit-RMS noise of `kind`; 30 % of the time slowly amplitude-modulated."""
    x: np.ndarray
    if kind == "white":
        x = rng.standard_normal(n).astype(np.float32)
    elif kind == "pink":
        x = colored(n, rng, 1.0)
    elif kind == "brown":
        x = colored(n, rng, rng.uniform(1.6, 2.0))
    elif kind == "hum":
        x = hum(n, rng)
    elif kind == "babble":
        x = babble(n, rng, bank)
    elif kind == "mix":
        parts = rng.choice(KINDS[:-1], size=2, replace=False)
        first, second = (rng.uniform(0.3, 1.0) * make(str(k), n, rng, bank) for k in parts)
        x = first + second
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    if rng.uniform() < 0.3:
        t = np.arange(n) / SR
        x = x * (1 + rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t + rng.uniform(0, 6.3)))
    return _unit(np.asarray(x, np.float64))

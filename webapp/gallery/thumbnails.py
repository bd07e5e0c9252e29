"""Small spectrogram pictures of clips for the gallery's cards, made once and kept on disk.

A card needs a glance, not a chart: a PNG of the clip's log-mel energies framed
like the default model's input (ml.config.FEATURES["logmel"]), with more bands
for the eye (NumPy, no plotting library), that the browser scales. The file is named by a
hash of the clip's path, size and modification time, so a regenerated data set
gets new pictures and an unchanged one is never drawn twice.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ml.audio import SAMPLE_RATE, decode, fit_clip, to_model_rate
from ml.config import FEATURES, mel_edges_hz

FRAMING = FEATURES["logmel"]
BANDS = 48
DYNAMIC_RANGE_DB = 70.0
QUIET_PEAK_DB = 25.0       # the loudest mel band of a clearly spoken word is about this loud (dB)
# Plotly's Viridis (the result view's spectrogram colours), at nine evenly spaced stops.
VIRIDIS = ["#440154", "#472c7a", "#3b518b", "#2c718e", "#21908d", "#27ad81", "#5cc863",
           "#aadc32", "#fde725"]


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    """256 RGB colours interpolated between the Viridis stops."""
    stops = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS], np.float64)
    x = np.linspace(0, 1, len(stops))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, x, stops[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


@lru_cache(maxsize=1)
def _mel_matrix() -> np.ndarray:
    """Triangular mel filters (FFT bins x BANDS) over the model's own mel range."""
    edges = mel_edges_hz(FRAMING.low_hz, FRAMING.high_hz, BANDS)
    bins = np.fft.rfftfreq(FRAMING.fft_length, 1.0 / SAMPLE_RATE)
    weights = np.zeros((len(bins), BANDS), np.float32)
    for b in range(BANDS):
        lo, mid, hi = edges[b:b + 3]
        weights[:, b] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    return weights


def spectrogram_image(clip: np.ndarray) -> np.ndarray:
    """RGB pixels (BANDS x frames x 3), low frequencies at the bottom."""
    frame, hop = FRAMING.frame_length, FRAMING.frame_step
    frames = 1 + (len(clip) - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(clip[index] * np.hanning(frame), FRAMING.fft_length)) ** 2
    db = 10.0 * np.log10(spectrum @ _mel_matrix() + 1e-10)
    # Scaled to the clip's own peak, but never brighter than a loud word would be drawn:
    # a quiet or silent clip stays dark instead of showing its noise at full colour.
    top = max(float(db.max()), QUIET_PEAK_DB)
    level = np.clip((db - (top - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    return _palette()[(level.T[::-1] * 255).astype(np.uint8)]


def png_bytes(rgb: np.ndarray) -> bytes:
    """A minimal PNG (8-bit RGB, no filtering) from an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def render(audio: Path) -> bytes:
    """The thumbnail of one audio file: its loudest second, as the model would hear it."""
    wave, rate = decode(audio)
    clip, _ = fit_clip(to_model_rate(wave, rate))
    return png_bytes(spectrogram_image(clip))


def thumbnail(audio: Path, cache: Path) -> Path:
    """The cached thumbnail of `audio`, drawn and stored atomically on first use."""
    st = audio.stat()
    identity = f"{audio.resolve()}|{st.st_size}|{st.st_mtime_ns}|{BANDS}|{QUIET_PEAK_DB}|{FRAMING}"
    key = hashlib.sha1(identity.encode()).hexdigest()
    path = cache / key[:2] / f"{key}.png"
    if path.is_file():
        return path
    data = render(audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".thumb-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path

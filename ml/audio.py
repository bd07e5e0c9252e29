"""Reading audio into the one form every other module uses: 16 kHz mono float32.

Training, evaluation and serving all pass through here, so a clip is decoded,
down-mixed, resampled and cut to one second the same way everywhere.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
MAX_SECONDS = 30.0


class AudioError(ValueError):
    """The input is not audio we can use; the message says why, for a person."""


def decode(source: str | Path | bytes, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Decode a file path or bytes into (mono float32 samples in [-1, 1], sample rate)."""
    name = Path(source).name if isinstance(source, (str, Path)) else "upload"
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with sf.SoundFile(handle) as f:
            if f.channels < 1:
                raise AudioError(f"{name}: the file has no audio channels")
            if f.samplerate < 1000 or f.samplerate > 384_000:
                raise AudioError(f"{name}: unsupported sample rate {f.samplerate} Hz")
            max_frames = int(max_seconds * f.samplerate)
            if f.frames > max_frames:
                raise AudioError(f"{name}: audio longer than {max_seconds:g} s is not accepted")
            data = f.read(frames=max_frames + 1, dtype="float32", always_2d=True)
            rate = f.samplerate
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises several types for broken input
        raise AudioError(f"{name}: not a readable audio file ({_short(exc)})") from None
    if len(data) > max_frames:
        raise AudioError(f"{name}: audio longer than {max_seconds:g} s is not accepted")
    if len(data) == 0:
        raise AudioError(f"{name}: the file holds no samples")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{name}: the audio contains NaN or infinite samples")
    return np.clip(mono, -1.0, 1.0).astype(np.float32), rate


def to_model_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz with a real (soxr) resampler."""
    if rate == SAMPLE_RATE:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def loudest_window(wave: np.ndarray, length: int = CLIP_SAMPLES, hop: int = 160) -> int:
    """Start index of the `length`-sample window holding the most energy."""
    if len(wave) <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    starts = np.arange(0, len(wave) - length + 1, hop)
    if starts[-1] != len(wave) - length:
        starts = np.append(starts, len(wave) - length)
    sums = energy[starts + length] - energy[starts]
    return int(starts[np.argmax(sums)])


def fit_clip(wave: np.ndarray, length: int = CLIP_SAMPLES) -> tuple[np.ndarray, int]:
    """One second of audio: zero-padded at the end, or the loudest window of a longer clip.

    Returns the clip and where it starts in the input (in samples).
    """
    if len(wave) < length:
        return np.pad(wave, (0, length - len(wave))).astype(np.float32), 0
    start = loudest_window(wave, length)
    return wave[start:start + length].astype(np.float32), start


def load_clip(path: str | Path) -> np.ndarray:
    """A file as the model's input: 16 kHz mono float32, exactly one second."""
    wave, rate = decode(path)
    return fit_clip(to_model_rate(wave, rate))[0]


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]

"""Reading audio into the one form every other module uses: 16 kHz mono float32.

Training, evaluation and serving all pass through here, so a clip is decoded,
down-mixed, resampled and cut to one second the same way everywhere.

Uploads come from anyone, so `decode` treats every file as hostile: it accepts
only WAV (RIFF/RF64, and big-endian RIFX), FLAC and OGG by their first bytes, checks what the header
declares (channels, rate, length, a data chunk cut short) before reading, then
reads in bounded blocks, down-mixing as it goes, with a cap on the samples it
will decode and a wall-clock limit. Whatever it refuses becomes an `AudioError`
whose message tells a person what is wrong; no other exception escapes.
"""
from __future__ import annotations

import io
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # one second
MAX_SECONDS = 30.0
MIN_RATE, MAX_RATE = 1_000, 384_000
MAX_CHANNELS = 32
# Interleaved samples decoded per second of the duration cap: stereo at 192 kHz, or 8
# channels at 48 kHz (11.5 million for 30 s). Compressed formats expand a small file
# enormously (200 KB of 32-channel Opus silence is 46 million samples, ~2 s of a
# worker); this caps the work, whatever the file declares.
SAMPLES_PER_CAP_SECOND = 192_000 * 2
DECODE_TIME_LIMIT_S = 10.0
BLOCK_SAMPLES = 1 << 18     # interleaved samples per read: bounded memory and time per step
HEAD_BYTES = 1 << 20        # how much of a file on disk is read to check its header
FORMATS = "WAV, FLAC or OGG"
UNKNOWN_LENGTH = 2 ** 63 - 1   # libsndfile's frame count for a stream that does not declare one


class AudioError(ValueError):
    """The input is not audio we can use; the message says why, for a person."""


class TooLong(AudioError):
    """Longer than the caller accepts (a web client may send it where longer is taken)."""


class UnsupportedFormat(AudioError):
    """The content is not WAV, FLAC or OGG at all (the web app answers 415)."""


def sniff(head: bytes) -> str | None:
    """'wav', 'flac' or 'ogg' from a file's first bytes (its signature); None otherwise."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    return None


def decode(source: str | Path | bytes, max_seconds: float = MAX_SECONDS, *, name: str | None = None,
           time_limit_s: float = DECODE_TIME_LIMIT_S,
           on_samples: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """Decode a file path or bytes into (mono float32 samples in [-1, 1], sample rate).

    Raises AudioError (UnsupportedFormat for content that is no audio format we
    read); `name` is how messages refer to the input (default: the file name, or
    "upload" for bytes). `on_samples(n)` is told of every block as it is decoded (n
    samples in all channels), so a caller can charge the work even when the file is
    refused after it (cut short, or longer than its header said).
    """
    handle: io.BytesIO | str          # what soundfile opens
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "upload"
        head, size, handle = data, len(data), io.BytesIO(data)
    else:
        name = name or Path(source).name
        head, size = _read_head(source, name)
        handle = str(source)
    kind = sniff(head)
    if size == 0:
        raise AudioError(f"{name}: the file is empty")
    if kind is None:
        raise UnsupportedFormat(f"{name}: not a readable audio file (unsupported file type; send {FORMATS} audio)")
    if kind == "wav":
        _check_wav_header(head, size, name)
    try:
        f = sf.SoundFile(handle)
    except Exception as exc:  # noqa: BLE001  soundfile raises several types for broken input
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
    with f:
        return _read_mono(f, kind, name, max_seconds, time_limit_s, on_samples)


def _read_head(path, name: str) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES), os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise AudioError(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def _check_wav_header(head: bytes, size: int, name: str) -> None:
    """Refuse, with a plain reason, what a WAV header declares that we will not read."""
    fmt, data = _riff_chunks(head)
    if fmt is not None:
        channels, rate, block_align = fmt
        _check_layout(channels, rate, name)
        if data is not None and block_align:
            offset, declared = data
            present = max(size - offset, 0)
            if declared - present >= block_align:
                raise AudioError(f"{name}: the file is cut short (its header promises "
                                 f"{_bytes(declared)} of audio data; {_bytes(present)} are there)")


def _riff_chunks(head: bytes):
    """((channels, rate, block_align) of 'fmt ', (offset, declared size) of 'data') or Nones.

    Placeholder data sizes (0 or 0xFFFFFFFF, written by streaming encoders that
    could not seek back) count as unknown: the data then runs to the end of the file.
    RIFX is the same layout with big-endian numbers (libsndfile reads it).
    """
    rf64 = head[:4] == b"RF64"
    order = ">" if head[:4] == b"RIFX" else "<"
    pos, fmt, data, ds64_size = 12, None, None, None
    for _ in range(10_000):
        if pos + 8 > len(head):
            break
        chunk, size = head[pos:pos + 4], struct.unpack_from(order + "I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"ds64" and body + 16 <= len(head):
            ds64_size = struct.unpack_from("<Q", head, body + 8)[0]
        elif chunk == b"fmt " and 16 <= size <= 4096 and body + size <= len(head):
            _, channels, rate, _, block_align = struct.unpack_from(order + "HHIIH", head, body)
            fmt = (channels, rate, block_align)
        elif chunk == b"data":
            if rf64 and size == 0xFFFFFFFF:
                size = ds64_size or 0
            if 0 < size < (1 << 62 if rf64 else 0xFFFFFFFF):
                data = (body, size)
            break
        pos = body + size + (size & 1)
    return fmt, data


def _check_layout(channels: int, rate: int, name: str) -> None:
    if channels < 1:
        raise AudioError(f"{name}: the file has no audio channels")
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels is more than Hark reads (at most {MAX_CHANNELS})")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: unsupported sample rate {rate} Hz "
                         f"(accepted: {MIN_RATE:,} to {MAX_RATE:,} Hz)")


def _read_mono(f: sf.SoundFile, kind: str, name: str, max_seconds: float, time_limit_s: float,
               on_samples: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """Read block by block into one mono array, never past the caps.

    A declared length is checked before reading; a file that does not declare
    one (a streamed FLAC) is read until it ends or passes a cap, whichever first.
    """
    channels, rate, frames = f.channels, f.samplerate, f.frames
    _check_layout(channels, rate, name)
    max_frames = int(max_seconds * rate)
    budget = int(max(max_seconds, 1.0) * SAMPLES_PER_CAP_SECOND)
    known = frames < UNKNOWN_LENGTH
    if known:
        _check_length(frames, channels, rate, max_frames, budget, max_seconds, name)
        if frames <= 0:
            raise AudioError(f"{name}: the file holds no samples (it is empty or cut short)")
    limit = frames if known else max_frames + 1
    # Without a declared length libsndfile reports the end of the stream as an error,
    # losing the block it was filling: small blocks then lose little.
    block = max(1024, BLOCK_SAMPLES // channels) if known else 4096
    deadline = time.monotonic() + time_limit_s
    parts, n = [], 0
    while n < limit:
        if n and time.monotonic() > deadline:
            raise AudioError(f"{name}: decoding took longer than {time_limit_s:g} s; the file was refused")
        try:
            chunk = f.read(min(block, limit - n), dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001  as above, and for data damaged past the header
            if known or not n:
                raise AudioError(f"{name}: the audio data is damaged or cut short ({_reason(exc)})") from None
            break
        if len(chunk) == 0:
            break
        if on_samples is not None:
            on_samples(chunk.size)
        mono = chunk[:, 0] if channels == 1 else chunk.mean(axis=1, dtype=np.float64)
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{name}: the audio contains NaN or infinite samples")
        parts.append(np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False))
        n += len(chunk)
        if not known and n > max_frames:
            raise AudioError(f"{name}: audio longer than {max_seconds:g} s is not accepted")
        if not known and n * channels > budget:
            raise AudioError(f"{name}: too much audio to decode ({channels} channels at {rate:,} Hz; "
                             f"at most {budget / 1e6:.1f} million samples in all channels)")
    if n == 0:
        raise AudioError(f"{name}: the file holds no samples (it is empty or cut short)")
    if known and n < frames and kind != "ogg":   # an OGG's length is estimated from its last page
        raise AudioError(f"{name}: the audio data is cut short (the header declares "
                         f"{_duration(frames / rate)}, the file holds {_duration(n / rate)})")
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), rate


def _check_length(frames: int, channels: int, rate: int, max_frames: int, budget: int,
                  max_seconds: float, name: str) -> None:
    if frames > max_frames:
        raise TooLong(f"{name}: audio longer than {max_seconds:g} s is not accepted "
                         f"(this file declares {_duration(frames / rate)})")
    if frames * channels > budget:
        raise AudioError(f"{name}: too much audio to decode ({channels} channels at {rate:,} Hz for "
                         f"{_duration(frames / rate)}; at most {budget / 1e6:.1f} million samples in all channels)")


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


# What makes a take look like a fragment of a word (static/js/datasets.js checks the same).
TAKE_QUIET_PEAK = 0.03          # its loudest sample: about -30 dBFS
TAKE_MIN_VOICED_S = 0.15        # 10 ms frames louder than a tenth of its loudest frame
TAKE_EDGE_S, TAKE_EDGE_SHARE = 0.03, 0.3    # first/last 30 ms at 30% of the loudest frame


def take_problems(clip: np.ndarray) -> list[str]:
    """Why a one-second take of a word looks like a fragment: "too quiet", "too short" (less
    than 0.15 s of it is the word), "cut at the start" / "cut at the end" (the word still
    loud at the edge of the second). Empty for a take that looks whole."""
    clip = np.asarray(clip, np.float32)
    if not len(clip) or float(np.abs(clip).max()) < TAKE_QUIET_PEAK:
        return ["too quiet"]
    frame = SAMPLE_RATE // 100
    frames = clip[:len(clip) // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = rms.max()
    problems = []
    if np.sum(rms > 0.1 * loud) * frame / SAMPLE_RATE < TAKE_MIN_VOICED_S:
        problems.append("too short")
    edge = max(1, round(TAKE_EDGE_S * 100))
    if rms[:edge].max() >= TAKE_EDGE_SHARE * loud:
        problems.append("cut at the start")
    if rms[-edge:].max() >= TAKE_EDGE_SHARE * loud:
        problems.append("cut at the end")
    return problems


def load_clip(path: str | Path) -> np.ndarray:
    """A file as the model's input: 16 kHz mono float32, exactly one second."""
    wave, rate = decode(path)
    return fit_clip(to_model_rate(wave, rate))[0]


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without the Python object it was handed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error opening (<[^>]*>|'.*?'|\".*?\"): ", "", text)
    text = text.removeprefix("Error : ").strip()
    return text[:120] or type(exc).__name__


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.0f} h"


def _bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"

"""Audio augmentations that turn a clean TTS word into a plausible recording.

Why: TTS output is studio-clean, centred and equally loud; real one-second
clips differ in speaker pitch, speed, room, microphone, loudness, position and
background. Each function here is a small numpy/scipy step; `sample_augment`
draws the parameters of one clip (recorded in the manifest) and `render`
applies them, so the manifest describes exactly what was done.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
from scipy import signal

from ml.audio import to_model_rate
from ml.synth import noise as noisegen

SR = 16_000
CLIP = SR  # one second


def to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz float32."""
    return to_model_rate(np.asarray(x, np.float32), rate)


def trim(x: np.ndarray, rel_db: float = -40.0, pad: float = 0.015) -> np.ndarray:
    """Cut leading/trailing near-silence (frames `rel_db` below the loudest frame)."""
    if len(x) == 0:
        return x
    frame = SR // 100
    n = max(1, len(x) // frame)
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    active = np.nonzero(20 * np.log10(rms / rms.max()) > rel_db)[0]
    if len(active) == 0:
        return x[:0]
    p = int(pad * SR)
    return x[max(0, active[0] * frame - p): min(len(x), (active[-1] + 1) * frame + p)]


def resample_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """The resample trick: pitch and speed both scale by `factor` (also shifts formants)."""
    if abs(factor - 1.0) < 1e-4:
        return x
    return soxr.resample(x, SR * factor, SR, quality="HQ").astype(np.float32)


def wsola(x: np.ndarray, rate: float, frame: int = 400, tol: int = 100) -> np.ndarray:
    """Change tempo by `rate` (>1 faster) keeping pitch: waveform-similarity overlap-add."""
    if abs(rate - 1.0) < 0.01 or len(x) < frame:
        return x
    hs = frame // 2
    ha = hs * rate
    out_len = int(round(len(x) / rate))
    n_frames = max(1, int(math.ceil((out_len - frame) / hs)) + 1)
    win = np.hanning(frame).astype(np.float32)
    xp = np.concatenate([np.zeros(tol, np.float32), x, np.zeros(frame + tol + int(ha * 2) + hs, np.float32)])
    y: np.ndarray = np.zeros(n_frames * hs + frame, np.float32)
    wsum = np.zeros_like(y)
    pos = tol
    for k in range(n_frames):
        if k:
            target = tol + int(round(k * ha))
            ref = xp[pos + hs: pos + hs + frame]
            region = xp[target - tol: target + tol + frame]
            corr = np.correlate(region, ref, mode="valid")
            pos = target - tol + int(np.argmax(corr))
        y[k * hs: k * hs + frame] += xp[pos: pos + frame] * win
        wsum[k * hs: k * hs + frame] += win
    y = y / np.maximum(wsum, 1e-3)
    return y[:out_len]


def pitch_tempo(x: np.ndarray, cents: float, tempo: float) -> np.ndarray:
    """Shift pitch by `cents` (resample trick) and set the overall tempo to `tempo`."""
    f = 2.0 ** (cents / 1200.0)
    return wsola(resample_speed(x, f), tempo / f)


def room_ir(rng: np.random.Generator, rt60: float, damping_hz: float, early: int) -> np.ndarray:
    """Synthetic room impulse response: direct path, a few early echoes, decaying noise tail."""
    n = int(min(1.0, 1.1 * rt60) * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)
    sos = signal.butter(2, damping_hz, "low", fs=SR, output="sos")
    tail = signal.sosfilt(sos, tail)
    tail[: int(0.004 * SR)] = 0.0
    ir = tail / (np.sqrt(np.sum(tail**2)) + 1e-9)
    for _ in range(early):
        ir[int(rng.uniform(0.003, 0.04) * SR)] += rng.uniform(0.2, 0.7) * rng.choice([-1, 1])
    return ir.astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float,
           damping_hz: float, early: int) -> np.ndarray:
    """Dry + wet mix; the result is longer than `x` by the reverb tail."""
    ir = room_ir(rng, rt60, damping_hz, early)
    w = signal.fftconvolve(x, ir)
    dry = np.zeros_like(w)
    dry[: len(x)] = x
    wet_gain = wet * (np.sqrt(np.sum(x**2)) / (np.sqrt(np.sum(w**2)) + 1e-9))
    return (dry + wet_gain * w).astype(np.float32)


def _peaking(f0: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ peaking-EQ biquad as one SOS row."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / SR
    alpha = math.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a]
    return np.array([[b[0] / den[0], b[1] / den[0], b[2] / den[0], 1.0, den[1] / den[0], den[2] / den[0]]])


def mic_filter(x: np.ndarray, params: dict) -> np.ndarray:
    """Microphone / channel colouring: optional high-, low- or band-pass plus peaking EQ."""
    sections = []
    kind = params.get("pass")
    if kind == "highpass":
        sections.append(signal.butter(2, params["low_hz"], "high", fs=SR, output="sos"))
    elif kind == "lowpass":
        sections.append(signal.butter(4, params["high_hz"], "low", fs=SR, output="sos"))
    elif kind == "bandpass":
        sections.append(signal.butter(2, [params["low_hz"], params["high_hz"]], "band", fs=SR, output="sos"))
    for f0, g, q in params.get("eq", []):
        sections.append(_peaking(f0, g, q))
    if not sections:
        return x
    return signal.sosfilt(np.concatenate(sections), x).astype(np.float32)


def _log_uniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_filter(rng: np.random.Generator) -> dict:
    kind = rng.choice(["highpass", "lowpass", "bandpass", "none"], p=[0.35, 0.3, 0.2, 0.15])
    p: dict = {"pass": str(kind)}
    if kind in ("highpass", "bandpass"):
        p["low_hz"] = round(_log_uniform(rng, 60, 450), 1)
    if kind in ("lowpass", "bandpass"):
        p["high_hz"] = round(rng.uniform(2800, 7600), 1)
    p["eq"] = [(round(_log_uniform(rng, 150, 6000), 1), round(rng.uniform(-6, 6), 2), round(rng.uniform(0.5, 2.5), 2))
               for _ in range(int(rng.integers(0, 3)))]
    return p


def sample_augment(rng: np.random.Generator, persona_cents: float) -> dict:
    """Draw the augmentation parameters of one speech clip (all JSON-serialisable)."""
    a = {
        "pitch_cents": round(float(np.clip(persona_cents + rng.normal(0, 80), -350, 350)), 1),
        "tempo": round(_log_uniform(rng, 0.8, 1.25), 3),
        "position": round(float(rng.uniform()), 3),
        "peak": round(_log_uniform(rng, 0.05, 1.0), 4),
    }
    if rng.uniform() < 0.3:
        a["reverb"] = {"rt60": round(rng.uniform(0.15, 0.8), 3), "wet": round(rng.uniform(0.15, 0.7), 3),
                       "damping_hz": round(rng.uniform(2500, 7000), 1), "early": int(rng.integers(0, 5))}
    if rng.uniform() < 0.6:
        a["filter"] = sample_filter(rng)
    if rng.uniform() < 0.65:
        a["noise"] = {"kind": noisegen.sample_kind(rng), "snr_db": round(rng.uniform(5, 40), 1)}
    else:  # real recordings are never digitally clean
        a["noise"] = {"kind": str(rng.choice(["white", "pink"])), "level_dbfs": round(rng.uniform(-85, -60), 1)}
    return a


def sample_silence(rng: np.random.Generator) -> dict:
    """Parameters of one `_silence_` clip: background only, from near-digital silence up."""
    quiet = rng.uniform() < 0.15
    a = {"noise": {"kind": noisegen.sample_kind(rng),
                   "level_dbfs": round(rng.uniform(-100, -75) if quiet else rng.uniform(-65, -30), 1)}}
    if rng.uniform() < 0.4:
        a["filter"] = sample_filter(rng)
    if rng.uniform() < 0.35:  # knocks and clinks over the background, 6-30 dB above it
        a["transients"] = {"count": int(rng.integers(1, 4)), "above_db": round(rng.uniform(6, 30), 1)}
    return a


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _active_rms(x: np.ndarray) -> float:
    """RMS over the louder half of 10 ms frames, i.e. over the speech, not the padding."""
    frame = SR // 100
    n = max(1, len(x) // frame)
    e = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    e = np.sort(e)[n // 2:]
    return float(np.sqrt(np.mean(e) + 1e-20))


def render(word: np.ndarray, a: dict, rng: np.random.Generator, bank) -> np.ndarray:
    """Apply augmentation `a` to a trimmed 16 kHz word; return the one-second clip."""
    x = pitch_tempo(word, a["pitch_cents"], a["tempo"])
    limit = int(0.98 * CLIP)
    if len(x) > limit:  # keep the whole word inside the window
        x = wsola(x, len(x) / limit)[:limit]
    dry_len = len(x)
    if "reverb" in a:
        x = reverb(x, rng, **a["reverb"])
    offset = int(round(a["position"] * (CLIP - dry_len)))
    clip = np.zeros(CLIP, np.float32)
    seg = x[: CLIP - offset]
    clip[offset: offset + len(seg)] = seg
    n = a["noise"]
    bg = noisegen.make(n["kind"], CLIP, rng, bank)
    if "snr_db" in n:
        speech_rms = _active_rms(x[:dry_len])
        clip = clip + bg * (speech_rms / 10 ** (n["snr_db"] / 20))
    else:
        clip = clip / max(float(np.max(np.abs(clip))), 1e-9) * a["peak"]
        clip = clip + bg * 10 ** (n["level_dbfs"] / 20)
    if "filter" in a:
        clip = mic_filter(clip, a["filter"])
    clip = clip / max(float(np.max(np.abs(clip))), 1e-9) * a["peak"]
    return clip.astype(np.float32)


def render_silence(a: dict, rng: np.random.Generator, bank) -> np.ndarray:
    n = a["noise"]
    clip = noisegen.make(n["kind"], CLIP, rng, bank)
    if "transients" in a:
        t = a["transients"]
        clip = clip + 10 ** (t["above_db"] / 20) * noisegen.transients(CLIP, rng, t["count"])
    if "filter" in a:
        clip = mic_filter(clip, a["filter"])
    return (clip / (_rms(clip) + 1e-12) * 10 ** (n["level_dbfs"] / 20)).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)

#!/usr/bin/env python3
"""Classify audio files with this bundle's model:  python predict.py a.wav b.wav [--json]

Needs only numpy, soundfile and ai-edge-litert (see requirements.txt). Each file is
read, mixed down to mono, resampled to 16 kHz and cut to its loudest second
(shorter clips are padded with silence at the end), as the Hark app does, then
labelled by model.tflite, the whole model in one graph. (In Hark's source this is
ml/export/predict.py; the export copies it into every bundle as predict.py.)
"""
from __future__ import annotations

import argparse
import json
import sys
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from ai_edge_litert.interpreter import Interpreter

HERE = Path(__file__).resolve().parent
RATE = 16_000          # the model's sample rate
CLIP = RATE            # the model hears exactly one second
HOP = 160              # step of the loudest-second search (10 ms)


def resample(wave: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    """Band-limited resampling by FFT: the spectrum is cut (or extended) at the new Nyquist.

    The signal is padded with zeros to a length that maps to a whole number of output
    samples (and by a tail of silence, so the FFT's wrap-around does not fold the end
    onto the start); the output is then cut to the input's duration.
    """
    if rate == target:
        return wave.astype(np.float32, copy=False)
    step = rate // gcd(rate, target)             # input samples per whole number of output ones
    n_out = int(round(len(wave) * target / rate))
    padded = -(-(len(wave) + rate // 10) // step) * step
    n_new = padded * target // rate
    spectrum = np.fft.rfft(wave.astype(np.float64), padded)
    out = np.zeros(n_new // 2 + 1, complex)
    keep = min(len(spectrum), len(out))
    out[:keep] = spectrum[:keep]
    if n_new < padded and n_new % 2 == 0:        # the new Nyquist bin holds both halves
        out[n_new // 2] = out[n_new // 2].real
    elif n_new > padded and padded % 2 == 0:     # the old Nyquist bin splits in two
        out[padded // 2] *= 0.5
    return (np.fft.irfft(out, n_new) * (n_new / padded))[:n_out].astype(np.float32)


def loudest_second(wave: np.ndarray) -> np.ndarray:
    """One second: the window with the most energy (10 ms steps), or the clip padded at the end."""
    if len(wave) <= CLIP:
        return np.pad(wave, (0, CLIP - len(wave))).astype(np.float32)
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    starts = np.arange(0, len(wave) - CLIP + 1, HOP)
    if starts[-1] != len(wave) - CLIP:
        starts = np.append(starts, len(wave) - CLIP)
    best = int(starts[np.argmax(energy[starts + CLIP] - energy[starts])])
    return wave[best:best + CLIP].astype(np.float32)


def read_clip(path: str) -> np.ndarray:
    """A file as the model's input: mono, 16 kHz, one second, samples in [-1, 1]."""
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    if len(wave) == 0:
        raise ValueError("the file holds no samples")
    mono = wave[:, 0] if wave.shape[1] == 1 else wave.mean(axis=1, dtype=np.float64)
    if not np.all(np.isfinite(mono)):
        raise ValueError("the audio contains NaN or infinite samples")
    return loudest_second(resample(np.clip(mono, -1.0, 1.0).astype(np.float32), rate))


class Model:
    """model.tflite: float32[1, 16000] waveform in, float32[1, labels] probabilities out."""

    def __init__(self, path: Path, labels: list[str], threads: int = 1):
        self.labels = labels
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def probabilities(self, clip: np.ndarray) -> dict[str, float]:
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(clip, np.float32).reshape(1, CLIP))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output)[0]
        return {label: float(p) for label, p in zip(self.labels, out)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Label spoken commands in audio files (WAV of any rate).")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--model", default=str(HERE / "model.tflite"), help="the .tflite file")
    parser.add_argument("--labels", default=str(HERE / "labels.json"), help="labels.json")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    args = parser.parse_args(argv)
    model = Model(Path(args.model), json.loads(Path(args.labels).read_text()))
    results, failed = [], 0
    for name in args.files:
        try:
            probs = model.probabilities(read_clip(name))
        except (OSError, ValueError, RuntimeError, sf.LibsndfileError) as exc:
            failed += 1
            print(f"error: {name}: {exc}", file=sys.stderr)
            continue
        label = max(probs, key=lambda k: probs[k])
        results.append({"file": name, "label": label, "confidence": round(probs[label], 4),
                        "probabilities": {k: round(v, 6) for k, v in probs.items()}})
        if not args.json:
            top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
            print(f"{name}: {label} ({probs[label]:.1%})   " +
                  "  ".join(f"{k} {v:.1%}" for k, v in top))
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

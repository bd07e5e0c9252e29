"""Score the continuous-listening detector (ml/detect.py) on long recordings of real speakers.

Recordings come from ../shared/tools/make_stream.py over ../shared/speech: real
speakers' clips with words outside the vocabulary mixed in, random gaps, background
noise at a random SNR (or none), 20 s of background at the end, and the truth in a
CSV beside each. The speakers are split in two halves by speaker hash (as
bench/tune_unknown_weight.py splits them): `--tune` chooses the detector's settings
on recordings made from one half only, then reports on recordings made from the
other half with other seeds, so no speaker or clip scored was used to choose.

A detection is a hit when its label is right and its time within 0.75 s of a
command's centre; one near a command with another label is a wrong label; one
with no command there (silence, noise, a word outside the vocabulary, a second
detection of one word) is a false alarm. Speed is the whole detector (resampling,
windows, model, decisions) on one core, in seconds of audio per second; then live
mode's requests are timed through the real route, as the Listen page makes them.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_detect.py [--model RUN] [--seeds 100-107]
          [--half tune|test|all] [--noise both|on|off] [--set threshold=0.7] [--no-live]
      PYTHONPATH=. .venv/bin/python bench/bench_detect.py --model RUN --tune   (prints the
      `detector` section to put in the run's config.json)
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ml import guard  # noqa: E402
from ml.speakers import heard_speakers, link_half, speakers_in  # noqa: E402  (no TensorFlow: cheap)

SHARED = ROOT.parent / "shared"
SPEECH = SHARED / "speech"
MAKE_STREAM = SHARED / "tools" / "make_stream.py"
TOLERANCE_S = 0.75
FLOORS = "floors (default model, noisy): hits >= 92%, wrong labels <= 3%, false alarms <= 1/min"
TUNE_SEEDS, TEST_SEEDS = "0-7", "100-107"
# Coordinate search: each setting in turn takes the value that scores best, twice over.
# refractory_s stops at 1 s (a word said once a second is heard each time) and wait_s at
# 0.5 s (live mode shows a word about wait_s + 0.6 s after its centre; longer waits
# measured here gained under 0.02 of the objective). A threshold per label, searched the
# same way on the tune half, does not carry over: for the shipped ensemble it reached 94.9%
# hits there and 88.7% on the other half (one global threshold: see the README). It is
# left to a run's config.
SEARCH = {"hop_s": [0.05, 0.1], "smooth": [1, 3, 5, 7, 9],
          "threshold": [0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
          "min_windows": [1, 2, 3, 4, 5, 6], "refractory_s": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
          "wait_s": [0.2, 0.3, 0.5], "unknown_weight": [None, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0],
          "edge_ratio": [0.0, 0.1, 0.15, 0.2, 0.3, 0.5], "edge_s": [0.03, 0.05, 0.08]}


def half_dir(part: int | None, cache: Path) -> Path:
    """../shared/speech, or a folder of links to one half of its speakers' clips
    (`python -m ml data speakers`), in its layout: words/<word>/ and extra/."""
    if part is None:
        return SPEECH
    dest = cache / f"speech-half{part}"
    if not (dest / "done").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        for sub in ("words", "extra"):
            link_half([SPEECH / sub], part, dest / sub)
            (dest / sub / "dataset.json").unlink()    # make_stream.py wants label folders only
        (dest / "done").write_text("")
    return dest


def recording(cache: Path, part: int | None, seed: int, noise: bool, words: int) -> Path:
    """A make_stream.py recording (made once, then kept in `cache`); its truth is beside it."""
    name = f"half{'all' if part is None else part}-seed{seed}-{'noise' if noise else 'clean'}-w{words}.wav"
    out = cache / name
    if not out.is_file() or not out.with_suffix(".csv").is_file():
        cmd = [sys.executable, str(MAKE_STREAM), str(half_dir(part, cache)), str(out),
               "--seed", str(seed), "--words", str(words)]
        if noise:
            cmd += ["--noise", str(SPEECH / "_background_noise_")]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return out


def read_truth(wav: Path) -> list[dict]:
    with open(wav.with_suffix(".csv"), newline="") as f:
        return [{"label": r["label"], "centre": (float(r["start_s"]) + float(r["end_s"])) / 2,
                 "kind": r["kind"]} for r in csv.DictReader(f)]


def score(detections: list[dict], truth: list[dict], seconds: float) -> dict:
    """Hits, wrong labels and false alarms of one recording (ml.guard.score)."""
    commands = [t for t in truth if t["kind"] == "command"]
    return {**guard.score(detections, commands, TOLERANCE_S), "seconds": seconds}


def total(scores: list[dict]) -> dict:
    out = {k: sum(s[k] for s in scores) for k in ("commands", "hits", "wrong", "false_alarms", "seconds")}
    n, minutes = max(out["commands"], 1), out["seconds"] / 60
    out.update(hit_rate=out["hits"] / n, wrong_rate=out["wrong"] / n,
               fa_per_min=out["false_alarms"] / minutes if minutes else 0.0)
    return out


def line(name: str, t: dict) -> str:
    return (f"{name:<28} {t['commands']:>5} {t['hit_rate']:>7.1%} {t['wrong_rate']:>7.1%} "
            f"{t['fa_per_min']:>7.2f} {t['seconds'] / 60:>6.1f}")


HEADER = f"{'recordings':<28} {'cmds':>5} {'hits':>7} {'wrong':>7} {'FA/min':>7} {'min':>6}"


def seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


# ---- tuning on stored window probabilities -------------------------------------------------

def window_probs(clf, wav: Path, hop: int):
    """(window centres in s, probabilities, 10 ms energies, seconds) of a recording's
    windows at a hop of `hop` samples, computed as the detector computes them (each
    heard in its context, silence beyond the recording): what its settings are tried on."""
    from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, decode, to_model_rate
    from ml.detect import window_energy

    wave, rate = decode(wav, max_seconds=3600)
    wave = to_model_rate(wave, rate)
    context = clf.context
    padded = np.concatenate([np.zeros(context, np.float32), wave, np.zeros(context, np.float32)])
    starts = np.arange(0, len(wave) - CLIP_SAMPLES + 1, hop)
    probs, energy = [], []
    for i in range(0, len(starts), 256):
        part = starts[i:i + 256]
        probs.append(clf.predict_windows(padded, part + context, -context))
        energy.append(window_energy(wave, part).astype(np.float32))
    return ((starts + CLIP_SAMPLES / 2) / SAMPLE_RATE, np.concatenate(probs), np.concatenate(energy),
            len(wave) / SAMPLE_RATE)


def replay(labels, served_weight, config, times, probs, energy) -> list[dict]:
    """The detector's decisions on stored windows (what Detector.detect does, minus the model)."""
    from ml.detect import Decider, StreamState, cuts_word

    decider, state = Decider(labels, config, served_weight), StreamState()
    found = decider.rows(state, times, probs, cuts_word(energy, config)) + decider.end_segment(state)
    return [d.to_dict() for d in found]


def evaluate(config, labels, served_weight, cached) -> dict:
    step = round(config.hop_s / 0.05)
    return total([score(replay(labels, served_weight, config, t[::step], p[::step], e[::step]), truth, secs)
                  for t, p, e, secs, truth in cached])


FALSE_ALARM_COST = 0.5


def objective(t: dict) -> float:
    """A miss and a wrong label cost one, a false alarm half: the floors allow about 1.8
    false alarms per 32 commands (1 a minute) but only 2.6 misses. Tuned on half 0 with a
    run that never heard it and scored on its other recordings, this chose a refractory time
    of 0.8 s over 1 s: 93.0% hits against 92.6% (noisy), 0.31 false alarms a minute against 0.27."""
    return (t["hits"] - t["wrong"] - FALSE_ALARM_COST * t["false_alarms"]) / max(t["commands"], 1)


def tune(clf, wavs: list[Path], start) -> object:
    from ml.audio import SAMPLE_RATE

    cached = [(*window_probs(clf, w, round(0.05 * SAMPLE_RATE)), read_truth(w)) for w in wavs]
    served = float(clf.config.get("unknown_weight", 1.0) or 1.0)
    best, best_t = start, evaluate(start, clf.labels, served, cached)
    for _ in range(2):
        for name, values in SEARCH.items():
            for v in values:
                if name == "unknown_weight" and "_unknown_" not in clf.labels and v is not None:
                    continue
                trial = replace(best, **{name: v})
                t = evaluate(trial, clf.labels, served, cached)
                if objective(t) > objective(best_t):
                    best, best_t = trial, t
    print(line("tune half, chosen settings", best_t))
    return best


# ---- the benchmark --------------------------------------------------------------------------

def one_core() -> str:
    """Pin this process to one CPU, so "x real time" means on one core."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity here)"


def run_detector(detector, wavs: list[Path]) -> tuple[list[dict], float, float]:
    """Scores of the real Detector (decode excluded, everything after it timed)."""
    from ml.audio import decode

    scores, audio_s, busy_s = [], 0.0, 0.0
    for wav in wavs:
        wave, rate = decode(wav, max_seconds=3600)
        t0 = time.perf_counter()
        found = detector.detect(wave, rate)
        busy_s += time.perf_counter() - t0
        audio_s += len(wave) / rate
        scores.append(score([d.to_dict() for d in found], read_truth(wav), len(wave) / rate))
    return scores, audio_s, busy_s


def live_ticks(model: str, wav: Path, seconds: float = 30.0, tick_s: float = 0.2) -> list[float]:
    """Live mode's requests, as the page makes them, through the real route (Flask's test
    client, no network): 48 kHz chunks from the stream's next_s every `tick_s` of audio.
    Returns each request's time in ms."""
    import io

    import soundfile as sf

    from ml.audio import decode
    from webapp import create_app

    wave, rate = decode(wav, max_seconds=3600)
    audio, rate = np.repeat(wave[:int(seconds * rate)], 3), 3 * rate   # the microphone's rate
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"HARK_INSTANCE": f"{tmp}/instance", "HARK_RUNS": f"{tmp}/runs",
                          "HARK_DATA": f"{tmp}/data", "HARK_MODEL": model, "HARK_AUTO_TRAIN": False,
                          "HARK_QUEUE_IMMEDIATE": True, "HARK_RATE_PREDICT": "100000/second",
                          "HARK_RATE_AUDIO_SECONDS": "100000000/minute"})
        client, state, next_s, times = app.test_client(), "new", 0.0, []
        for end in range(int(tick_s * rate), len(audio), int(tick_s * rate)):
            start = max(round(next_s * rate), 0)
            if end - start < rate:
                continue
            buf = io.BytesIO()
            sf.write(buf, audio[start:end], rate, format="WAV", subtype="PCM_16")
            t0 = time.perf_counter()
            r = client.post("/api/detect", data={"file": (io.BytesIO(buf.getvalue()), "live.wav"),
                                                 "stream": state, "start_s": str(start / rate)})
            times.append((time.perf_counter() - t0) * 1e3)
            body = r.get_json()
            if r.status_code != 200:
                raise SystemExit(f"live tick failed: {r.status_code} {body}")
            state, next_s = json.dumps(body["state"]), body["next_s"]
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"), help="run directory")
    ap.add_argument("--seeds", default=TEST_SEEDS, help=f"recordings scored (default {TEST_SEEDS})")
    ap.add_argument("--half", choices=["tune", "test", "all"], default="test",
                    help="which speakers the scored recordings use (default: the held-out half)")
    ap.add_argument("--words", type=int, default=40, help="spoken clips per recording")
    ap.add_argument("--noise", choices=["both", "on", "off"], default="both")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                    help="override a detector setting, e.g. --set threshold=0.7")
    ap.add_argument("--tune", action="store_true",
                    help=f"first choose settings on the tune half (seeds {TUNE_SEEDS}, noisy and clean)")
    ap.add_argument("--tune-seeds", default=TUNE_SEEDS)
    ap.add_argument("--tune-half", type=int, choices=(0, 1), default=0,
                    help="the speakers' half settings are chosen on (default 0); the other is "
                         "the test half")
    ap.add_argument("--no-live", action="store_true", help="skip timing live mode's requests")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "hark-detect-streams"),
                    help="where recordings are made and kept")
    args = ap.parse_args()
    if not (SPEECH / "words").is_dir() or not MAKE_STREAM.is_file():
        print(f"skipped: needs {SPEECH} and {MAKE_STREAM}")
        return 0
    print(one_core())
    from ml.classifier import Classifier
    from ml.detect import Detector, DetectorConfig

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    clf = Classifier(args.model, threads=1)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = DetectorConfig.for_run(clf.config, overrides)
    print(f"model {clf.version} ({args.model}), {len(clf.labels)} labels")
    if args.tune:
        wavs = [recording(cache, args.tune_half, s, noise, args.words)
                for s in seeds(args.tune_seeds) for noise in (True, False)]
        print(f"tuning on {len(wavs)} recordings of the tune half (seeds {args.tune_seeds}, noise on and off)")
        print(HEADER)
        config = tune(clf, wavs, config)
        chosen = {k: v for k, v in config.to_dict().items()
                  if v != getattr(DetectorConfig(), k)}
        print("chosen (config.json \"detector\"):", json.dumps(chosen))
    print(f"detector: {json.dumps(config.to_dict())}")
    part = {"tune": args.tune_half, "test": 1 - args.tune_half, "all": None}[args.half]
    detector = Detector(clf, config)
    print(f"\nscored on the {args.half} half of the speakers, seeds {args.seeds}, "
          f"{args.words} clips each (20% outside the vocabulary); tolerance {TOLERANCE_S} s")
    people = speakers_in(half_dir(part, cache))
    heard = people & heard_speakers(args.model)
    if heard:
        print(f"NOT HELD OUT: the model heard {len(heard)} of these {len(people)} speakers in training "
              "(its split.json); score a run of the same recipe trained on the other half instead")
    print(HEADER)
    everything, audio_s, busy_s = [], 0.0, 0.0
    for noise in {"both": (True, False), "on": (True,), "off": (False,)}[args.noise]:
        wavs = [recording(cache, part, s, noise, args.words) for s in seeds(args.seeds)]
        scores, a, b = run_detector(detector, wavs)
        everything += scores
        audio_s, busy_s = audio_s + a, busy_s + b
        print(line(f"noise {'on' if noise else 'off'} ({len(wavs)} recordings)", total(scores)))
    if args.noise == "both":
        print(line("all", total(everything)))
    print(f"speed: {audio_s / busy_s:.1f}x real time on one core "
          f"({audio_s:.0f} s of audio in {busy_s:.1f} s; hop {config.hop_s} s)")
    if not args.no_live:
        ticks = np.array(live_ticks(args.model, recording(cache, part, seeds(args.seeds)[0], True, args.words)))
        print(f"live mode: {len(ticks)} requests of 0.2 s of new audio each (48 kHz WAV, through "
              f"POST /api/detect): median {np.median(ticks):.0f} ms, 95th percentile "
              f"{np.percentile(ticks, 95):.0f} ms, slowest {ticks.max():.0f} ms "
              f"(the page asks 5 times a second: each must take < 200 ms)")
    print(FLOORS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

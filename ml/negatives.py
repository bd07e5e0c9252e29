"""Real negatives: long recordings with no command in them, cut into training windows,
split so that part is never trained or tuned on, and mined for what a model wrongly hears.

A model that has only heard one-second clips has never heard a conversation or a song,
so in a real room it hears commands in them. A background folder (`speech/`, `music/`,
`noise/` of audio files; `../shared/background` also has a MANIFEST.tsv naming each
file's speaker) teaches it otherwise: its speech becomes `_unknown_` windows, its music
and noise `_silence_` windows (which training also mixes under commands as backgrounds,
ml/embed_train.py and ml/augment.py). Every recording belongs to a *group* (a speaker,
or the recording itself) and every group to one *part*: of each kind's minutes, `train`
60%, `dev` 20% (the detector's sensitivity presets are chosen on it) and `test` 20% (only
reported), the groups taken in the order of a stable hash of their names. Mining runs a
model's detector, made more eager than it serves, over the training part and adds the
windows it fires on, so the next model learns exactly the sounds the last one confused
with commands.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, decode, to_model_rate
from ml.config import SILENCE, UNKNOWN
from ml.dataset import AUDIO_SUFFIXES, DataError

KINDS = ("speech", "music", "noise")
LABEL_OF = {"speech": UNKNOWN, "music": SILENCE, "noise": SILENCE}
PARTS = ("train", "dev", "test")
PART_SHARES = (0.6, 0.2, 0.2)
HOP_S = 0.5                 # between the training windows of a recording
QUIET_DB = -30.0            # a speech window this far below its recording's loud level: _silence_
MINE_THRESHOLD = 0.3        # the mining detector fires at this smoothed probability ...
MINE_OFFSETS_S = (-0.15, 0.0, 0.15)   # ... and each firing adds the windows centred around it
MAX_SECONDS = 3600.0
PART_SUFFIX = re.compile(r"_part\d+$")


@dataclass(frozen=True)
class Recording:
    path: Path
    kind: str       # speech, music or noise
    group: str      # a speaker, or the recording itself: a group is never in two parts
    seconds: float
    part: str = ""  # train, dev or test

    @property
    def label(self) -> str:
        return LABEL_OF[self.kind]


def _assign_parts(found: list[Recording]) -> list[Recording]:
    """Each kind's groups in the order of their names' hash fill train, then dev, then test,
    each up to its share of the kind's minutes: the same parts on every machine."""
    out = []
    for kind in KINDS:
        of_kind = [r for r in found if r.kind == kind]
        groups: dict[str, float] = {}
        for r in of_kind:
            groups[r.group] = groups.get(r.group, 0.0) + r.seconds
        order = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        total, done, part = sum(groups.values()), 0.0, {}
        edges = np.cumsum(PART_SHARES) * total
        for g in order:
            part[g] = PARTS[min(int(np.searchsorted(edges, done + groups[g] / 2)), len(PARTS) - 1)]
            done += groups[g]
        out += [replace(r, part=part[r.group]) for r in of_kind]
    return out


def _speakers(folder: Path) -> dict[str, str]:
    """file (relative path) -> speaker, from MANIFEST.tsv where the folder has one. Only a
    one-word name is a person (p225, LJ); a description ("broadcast speech") is not, and
    neither is an id followed by a transcript (speechocean762's `0111 "MIKE LIKES ..."`: one
    sentence a speaker there, so each file is its speaker's group anyway). The parts of the
    shipped model's training and measurements rest on these groups: change them and the
    held-out parts move."""
    manifest = folder / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return {r["file"]: r["class_or_speaker"] for r in rows
                if r.get("kind") == "speech" and r.get("class_or_speaker", "").strip()
                and " " not in r["class_or_speaker"].strip()}


def recordings(folder: str | Path) -> list[Recording]:
    """Every recording of a background folder, with its kind, group and part."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such background folder")
    speakers = _speakers(folder)
    found = []
    for kind in KINDS:
        for path in sorted((folder / kind).glob("*")) if (folder / kind).is_dir() else []:
            if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
                continue
            rel = f"{kind}/{path.name}"
            group = (f"speaker:{speakers[rel]}" if rel in speakers
                     else f"{kind}:{PART_SUFFIX.sub('', path.stem)}")
            found.append(Recording(path, kind, group, sf.info(str(path)).duration))
    if not found:
        raise DataError(f"{folder}: no audio in speech/, music/ or noise/")
    return _assign_parts(found)


def load(recording: Recording) -> np.ndarray:
    """A recording at the model's rate, float32."""
    wave, rate = decode(recording.path, max_seconds=MAX_SECONDS)
    return to_model_rate(wave, rate)


def window_starts(n: int, hop_s: float = HOP_S) -> np.ndarray:
    """Starts of the one-second windows of `n` samples, every `hop_s`."""
    if n < CLIP_SAMPLES:
        return np.zeros(1, int)       # a short recording: one window, padded
    return np.arange(0, n - CLIP_SAMPLES + 1, max(1, round(hop_s * SAMPLE_RATE)))


def cut(wave: np.ndarray, start: int) -> np.ndarray:
    """The one-second window at `start` (padded with silence past either end)."""
    out = np.zeros(CLIP_SAMPLES, np.float32)
    lo, hi = max(start, 0), min(start + CLIP_SAMPLES, len(wave))
    if hi > lo:
        out[lo - start:hi - start] = wave[lo:hi]
    return out


def _loud_level(wave: np.ndarray) -> float:
    """The level (dB) of a recording's loud 10 ms frames (its 90th percentile)."""
    frames = wave[:len(wave) // 160 * 160].reshape(-1, 160)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1) if len(frames) else np.zeros(1)
    return 10 * np.log10(np.quantile(power, 0.9) + 1e-12)


def label_of(recording: Recording, window: np.ndarray, loud_db: float) -> str:
    """Speech windows with nobody speaking in them (a pause) are `_silence_`, not `_unknown_`."""
    if recording.kind != "speech":
        return recording.label
    frames = window.reshape(-1, 160).astype(np.float64)
    peak = 10 * np.log10(np.max(np.mean(frames ** 2, axis=1)) + 1e-12)
    return UNKNOWN if peak > loud_db + QUIET_DB else SILENCE


def mine(detector, wave: np.ndarray) -> list[int]:
    """Starts of the windows around every command `detector` hears in `wave` (which holds
    none): the model's false alarms, to be trained away."""
    starts = []
    for d in detector.detect(wave, SAMPLE_RATE):
        for offset in MINE_OFFSETS_S:
            starts.append(round((d.time_s + offset) * SAMPLE_RATE) - CLIP_SAMPLES // 2)
    return starts


def mining_detector(model: str | Path):
    """The model's own detector with a lower threshold: it also adds the near misses."""
    from ml.classifier import Classifier
    from ml.detect import Detector, DetectorConfig

    classifier = Classifier(model)
    overrides = {"threshold": MINE_THRESHOLD, "thresholds": {}}
    return Detector(classifier, DetectorConfig.for_run(classifier.config, overrides)), classifier


def build(source: str | Path, dest: str | Path, part: str = "train", hop_s: float = HOP_S,
          mine_with: str | Path | None = None, log=print) -> dict:
    """Write `part`'s windows of the background folder `source` into the data folder `dest`
    (`_unknown_/`, `_silence_/`; each file named `<kind>_<recording>_<group hash>_nohash_...`:
    the kind is the "word" a rehearsal pack files it under, and the group hash the "speaker"
    a training split keeps together), with the windows `mine_with`'s detector fires on, and a
    dataset.json; returns that record."""
    if part not in PARTS:
        raise DataError(f"unknown part {part!r} (use one of {', '.join(PARTS)})")
    if not 0.05 <= hop_s <= 5:
        raise DataError("--hop must be between 0.05 and 5 seconds")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: already exists and is not empty (choose another --dest)")
    chosen = [r for r in recordings(source) if r.part == part]
    if not chosen:
        raise DataError(f"{source}: no recording falls in part {part!r}")
    detector = classifier = None
    if mine_with is not None:
        detector, classifier = mining_detector(mine_with)
    counts: dict[str, int] = {}
    seconds = dict.fromkeys(KINDS, 0.0)
    mined = dict.fromkeys(KINDS, 0)
    for i, rec in enumerate(chosen, 1):
        wave = load(rec)
        seconds[rec.kind] += len(wave) / SAMPLE_RATE
        loud = _loud_level(wave)
        tag = hashlib.sha1(rec.group.encode()).hexdigest()[:8]
        found = mine(detector, wave) if detector is not None else []
        mined[rec.kind] += len(found) // len(MINE_OFFSETS_S)
        for start, how in [(s, "w") for s in window_starts(len(wave), hop_s)] + [(s, "m") for s in found]:
            window = cut(wave, int(start))
            label = label_of(rec, window, loud)
            out = dest / label / f"{rec.kind}_{rec.path.stem}_{tag}_nohash_{how}{int(start)}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, window, SAMPLE_RATE, subtype="PCM_16")
            counts[label] = counts.get(label, 0) + 1
        if i % 50 == 0 or i == len(chosen):
            log(f"{i}/{len(chosen)} recordings, {sum(counts.values())} windows")
    about = {"negatives_of": str(source), "part": part, "hop_s": hop_s,
             "minutes": {k: round(v / 60, 1) for k, v in seconds.items()},
             "clips": sum(counts.values()), "labels": dict(sorted(counts.items()))}
    if classifier is not None:
        about["mined_with"] = {"model": classifier.version, "threshold": MINE_THRESHOLD,
                               "false_alarms": mined}
    (dest / "dataset.json").write_text(json.dumps(about, indent=1) + "\n")
    return about

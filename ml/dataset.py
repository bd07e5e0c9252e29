"""Data sets in the Speech Commands layout: one folder per label, audio files inside.

Lists clips, splits them (by speaker where file names carry one), loads them
into arrays and fingerprints the folder so a run records exactly what it saw.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.audio import CLIP_SAMPLES, AudioError, load_clip

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
SPEAKER = re.compile(r"^([0-9a-f]{8})_nohash_", re.IGNORECASE)
SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.8, 0.1, 0.1)


class DataError(ValueError):
    """A data folder or data request that cannot be used; the message says why."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str

    @property
    def speaker(self) -> str | None:
        match = SPEAKER.match(self.path.name)
        return match.group(1).lower() if match else None


def list_labels(root: Path) -> list[str]:
    """Label folders, sorted by name; files and hidden folders are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_clips(root: Path) -> tuple[list[str], list[Clip]]:
    """All labels and clips of a folder in the Speech Commands layout."""
    root = Path(root)
    labels = list_labels(root)
    clips = [Clip(path, label) for label in labels
             for path in sorted((root / label).iterdir())
             if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")]
    if not clips:
        raise DataError(f"{root}: no audio files in label folders (expected {root}/<label>/*.wav)")
    return labels, clips


def split_clips(clips: list[Clip], how: str = "speaker", seed: int = 0) -> dict[str, list[Clip]]:
    """Train/val/test 80/10/10.

    "speaker": every speaker (from `<speaker>_nohash_<n>` names) lands in one split,
    chosen by a seeded hash so it stays put when the folder grows; clips without a
    speaker are placed by their own name. "random": the seed's clip-level shuffle.
    """
    if how not in ("speaker", "random"):
        raise DataError(f"unknown split {how!r}: use 'speaker' or 'random'")
    out: dict[str, list[Clip]] = {name: [] for name in SPLITS}
    if how == "random":
        shuffled = list(clips)
        random.Random(seed).shuffle(shuffled)
        n_train = int(len(shuffled) * SPLIT_SHARES[0])
        n_val = int(len(shuffled) * SPLIT_SHARES[1])
        out["train"], out["val"], out["test"] = (
            shuffled[:n_train], shuffled[n_train:n_train + n_val], shuffled[n_train + n_val:])
        return out
    for clip in clips:
        key = clip.speaker or f"{clip.label}/{clip.path.name}"
        share = int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 2**32
        name = "train" if share < SPLIT_SHARES[0] else "val" if share < sum(SPLIT_SHARES[:2]) else "test"
        out[name].append(clip)
    return out


def load_arrays(clips: list[Clip], labels: list[str], log=None) -> tuple[np.ndarray, np.ndarray, list[Clip]]:
    """Waveforms (N, 16000), label indices (N,) and the clips kept.

    An unreadable file is reported by name through `log` and skipped.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    index = {label: i for i, label in enumerate(labels)}

    def read(clip):
        try:
            return load_clip(clip.path)
        except AudioError as exc:
            log(f"skipped {exc}")
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        waves = list(pool.map(read, clips))
    kept = [(clip, w) for clip, w in zip(clips, waves) if w is not None]
    x = np.stack([w for _, w in kept]) if kept else np.zeros((0, CLIP_SAMPLES), np.float32)
    y = np.array([index[c.label] for c, _ in kept], dtype=np.int32)
    return x, y, [c for c, _ in kept]


def served_unknown_weight(root: Path) -> float:
    """The `_unknown_` serving weight a data set asks for in its dataset.json (1: none)."""
    try:
        return float(json.loads((Path(root) / "dataset.json").read_text())["unknown_weight"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0


def content_hash(root: Path, clips: list[Clip]) -> str:
    """SHA-256 over every clip's relative path and bytes: names the data a run saw."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(str(clip.path.relative_to(root)).encode())
        digest.update(clip.path.read_bytes())
    return digest.hexdigest()

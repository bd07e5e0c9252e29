"""Data sets in the Speech Commands layout: one folder per label, audio files inside.

Lists clips, splits them (by speaker where file names carry one), loads them
into arrays and fingerprints the folder so a run records exactly what it saw.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.audio import CLIP_SAMPLES, AudioError, load_clip

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
SPEAKER = re.compile(r"([0-9a-f]{8})_nohash_", re.IGNORECASE)   # anywhere: on_<speaker>_nohash_0.wav
SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.8, 0.1, 0.1)
MIN_SPEAKERS = 3     # fewer named speakers in a data set: it is split by clip (gather)
MAX_REPEAT = 20      # train_repeat's ceiling: more only makes an epoch longer


class DataError(ValueError):
    """A data folder or data request that cannot be used; the message says why."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str

    @property
    def speaker(self) -> str | None:
        return speaker_of(self.path.name)


def speaker_of(name: str) -> str | None:
    """The speaker's 8 hex digits in a Speech Commands file name, lower case (None where the
    name has none). Words outside the vocabulary put the word first (`on_<speaker>_nohash_0`):
    the same person, so the same split."""
    match = SPEAKER.search(name)
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


def about(root: Path) -> dict:
    """What a data folder's dataset.json says ({} where it has none or it cannot be read)."""
    try:
        info = json.loads((Path(root) / "dataset.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def train_repeat(root: Path) -> int:
    """How many times a data set's training clips go into each epoch (dataset.json's
    `train_repeat`, 1 where absent): a few hundred real voices beside thousands of synthetic
    ones weigh as much as the data set asks. Their val and test clips count once."""
    return check_repeat(about(root).get("train_repeat", 1), f"{Path(root) / 'dataset.json'}: train_repeat")


def check_repeat(repeat, name: str = "repeat") -> int:
    """`repeat` if it is a whole number from 1 to MAX_REPEAT; else a DataError naming it."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise DataError(f"{name} must be a whole number from 1 to {MAX_REPEAT}, not {repeat!r}")
    return repeat


def served_unknown_weight(root: Path, arch: str | None = None) -> float:
    """The `_unknown_` serving weight a data set asks for in its dataset.json (1: none): one
    number for every model, or a number per architecture ({"kws": 0.05, ...}; others get 1)."""
    weight = about(root).get("unknown_weight", 1.0)
    try:
        return float(weight.get(arch, 1.0) if isinstance(weight, dict) else weight)
    except (ValueError, TypeError):
        return 1.0


@dataclass
class DataSets:
    """One or more data folders as one training sees them: the union of their labels, each
    folder split on its own, every clip relative to `root` (common_root)."""
    root: Path
    labels: list[str]
    clips: list[Clip]
    parts: dict[str, list[Clip]]
    records: list[dict]       # per folder: path, data_hash, clips, labels {label: clips}, split
    data_hash: str


def gather(folders: Sequence[str | Path], how: str = "speaker", seed: int = 0,
           labels_also=(), log=None) -> DataSets:
    """List and split every folder; `labels_also` joins the labels (a fine-tuned run's own).

    A folder split by speaker whose clips name fewer than MIN_SPEAKERS speakers (one person
    who recorded their own voice) is split at random instead, and the log says so: by
    speaker, all of it would land in one of train, val or test.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    base, roots = common_root(folders)
    labels, clips, records, hashes = set(labels_also), [], [], []
    parts: dict[str, list[Clip]] = {name: [] for name in SPLITS}
    for root in roots:
        found, listed = list_clips(root)
        speakers = {c.speaker for c in listed if c.speaker}
        split, repeat = how, train_repeat(root)
        if how == "speaker" and 0 < len(speakers) < MIN_SPEAKERS:
            split = "random"
            log(f"{root}: {len(speakers)} speaker(s) only, so its clips are split at random")
        for name, part in split_clips(listed, split, seed).items():
            parts[name] += part * (repeat if name == "train" else 1)
        digest = content_hash(root, listed)
        counts = {label: sum(c.label == label for c in listed) for label in found}
        records.append({"path": str(root), "data_hash": digest, "clips": len(listed),
                        "labels": counts, "split": split,
                        **({"train_repeat": repeat} if repeat > 1 else {})})
        hashes.append((os.path.relpath(root, base), digest))
        labels |= set(found)
        clips += listed
    return DataSets(base, sorted(labels), clips, parts, records, combined_hash(hashes))


def common_root(roots: Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """(the folder holding every data folder, the folders as paths under it).

    A run trained on several data sets records its clips relative to this folder
    (its config.json's `data`), so the gallery and the exporters find them as they
    find a single set's. Relative folders stay relative when they all are. Raises
    DataError when a folder is given twice or lies inside another.
    """
    texts = [os.path.normpath(str(r)) for r in roots]
    if len(texts) > 1 and (any(os.path.isabs(t) for t in texts) or not os.path.commonpath(texts)):
        texts = [str(Path(t).resolve()) for t in texts]
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if a == b or Path(a).is_relative_to(b) or Path(b).is_relative_to(a):
                raise DataError(f"data folders {a} and {b} overlap; give each data set once")
    return Path(os.path.commonpath(texts) if len(texts) > 1 else texts[0]), [Path(t) for t in texts]


def combined_hash(hashes: list[tuple[str, str]]) -> str:
    """One fingerprint of several data sets from (relative folder, content hash) pairs."""
    if len(hashes) == 1:
        return hashes[0][1]
    return hashlib.sha256("\n".join(f"{name}:{digest}" for name, digest in hashes).encode()).hexdigest()


def content_hash(root: Path, clips: list[Clip]) -> str:
    """SHA-256 over every clip's relative path and bytes: names the data a run saw."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(str(clip.path.relative_to(root)).encode())
        digest.update(clip.path.read_bytes())
    return digest.hexdigest()

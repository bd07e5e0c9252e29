"""Halves of a folder of real speakers, split by speaker: to train on one and check on the other.

Speech Commands names every clip `<speaker>_nohash_<n>.wav` (words outside the
vocabulary put the word first: `on_<speaker>_nohash_0.wav`), so a stable hash of
the 8 hex digits puts each person in half 0 or 1 for good. Training on one half and
scoring on the other never scores a voice the model has heard. Clips without a
speaker (`_silence_`) are placed by their own name. `python -m ml data speakers`
links one half into a data folder; the benches score the other half the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ml.dataset import DataError, check_repeat, list_clips, speaker_of


def speaker_half(name: str) -> int:
    """0 or 1 by the speaker's hash in a file name (by the whole name where there is none)."""
    key = speaker_of(name) or name
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 2


def speakers_in(folder: str | Path) -> set[str]:
    """The people heard in a folder of clips, at any depth (`_silence_` clips have none)."""
    return {s for p in Path(folder).rglob("*.wav") if (s := speaker_of(p.name))}


def heard_speakers(run_dir: str | Path) -> set[str]:
    """The speakers of the clips a run trained and early-stopped on (its split.json's train and
    val): the people a bench must not score it on as if it had never heard them."""
    split = json.loads((Path(run_dir) / "split.json").read_text())
    return {s for part in ("train", "val") for p in split.get(part, []) if (s := speaker_of(Path(p).name))}


def link_half(sources: list[str | Path], half: int, dest: str | Path, repeat: int = 1) -> dict[str, int]:
    """Link the clips of `half`'s speakers from label folders `sources` into `dest`, keeping
    their labels and names, and a dataset.json saying where they come from (and `repeat`:
    how often a training epoch hears each, see ml.dataset.train_repeat); returns clips per
    label. Links, not copies: the clips stay where their licence and owner keep them."""
    if half not in (0, 1):
        raise DataError(f"half must be 0 or 1, not {half}")
    check_repeat(repeat)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: already exists and is not empty (choose another --dest)")
    counts: dict[str, int] = {}
    for source in sources:
        _, clips = list_clips(Path(source))
        for clip in clips:
            if speaker_half(clip.path.name) != half:
                continue
            target = dest / clip.label / clip.path.name
            if target.exists():
                raise DataError(f"{clip.path.name} is in more than one source under {clip.label}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(clip.path.resolve(), target)
            counts[clip.label] = counts.get(clip.label, 0) + 1
    if not counts:
        raise DataError(f"no clips of half {half} in {', '.join(map(str, sources))}")
    counts = dict(sorted(counts.items()))
    about = {"speakers_of": [str(s) for s in sources], "half": half, "clips": sum(counts.values()),
             "labels": counts,       # what a model card says of these clips (ml/export/model_card.py)
             **({"train_repeat": repeat} if repeat > 1 else {})}
    (dest / "dataset.json").write_text(json.dumps(about, indent=1) + "\n")
    return counts

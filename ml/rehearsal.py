"""A model's rehearsal pack: what it heard, as compact speech embeddings, for teaching.

Teaching a new word (ml/teach.py) trains a small head on the pretrained speech
embedding that must tell the new word from everything the model already knows.
Rebuilding and re-embedding the 17,000 clips it trained on takes half an hour;
this pack, written once beside the run (`rehearsal.npz`, a few MB), holds a
stratified sample of its training clips instead: each clip's 16 x 96 embedding,
heard alone, as one noisy variant in a stream, and once off centre (the word half
out of the second, as a detector's window hears it just before or after the word),
quantised to 8 bits per value
(a dimension's own range), with its label and the word said (an `_unknown_`
clip's word: "on", "off", "bed"...), so a taught word that the base data filed
under `_unknown_` becomes a positive example instead of a contradiction.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import dataset, runs
from ml.audio import SAMPLE_RATE
from ml.config import SILENCE, UNKNOWN

PACK_FILE = "rehearsal.npz"
ALONE, STREAM, EDGE = 0, 1, 2
EDGE_SHIFT_S = (0.35, 0.6)   # how far off centre an EDGE copy is (either way)
PER_LABEL = 40          # clips per label and kind of data set (synthetic, real speakers)
UNKNOWN_PER_WORD = 10   # `_unknown_` clips per word said, so on/off are well covered


@dataclass
class Pack:
    """Embeddings [N, 16, 96] (float32), the label, word and speaker of each, and how it was heard."""
    embeddings: np.ndarray
    labels: np.ndarray      # str
    words: np.ndarray       # str: the word said (a label's own name, "" for silence)
    kind: np.ndarray        # int8: ALONE, STREAM (a noisy copy in a stream) or EDGE (off centre)
    speakers: np.ndarray    # str: the speaker's id where the file name has one, else ""

    def __len__(self) -> int:
        return len(self.labels)

    def __add__(self, other: Pack) -> Pack:
        return Pack(*(np.concatenate([a, b]) for a, b in zip(self.parts(), other.parts())))

    def parts(self) -> tuple:
        return self.embeddings, self.labels, self.words, self.kind, self.speakers

    def take(self, index) -> Pack:
        return Pack(*(a[index] for a in self.parts()))


def path_of(run_dir: Path) -> Path:
    return Path(run_dir) / PACK_FILE


def has_pack(run_dir: Path | None) -> bool:
    return run_dir is not None and path_of(run_dir).is_file()


def read(run_dir: Path) -> Pack:
    """The pack of a run (DataError where it has none or it cannot be read)."""
    path = path_of(run_dir)
    try:
        with np.load(path, allow_pickle=False) as f:
            lo, hi = f["lo"], f["hi"]
            e = f["q"].astype(np.float32) / 255.0 * (hi - lo) + lo
            return Pack(e, f["labels"].astype(str), f["words"].astype(str), f["kind"].astype(np.int8),
                        f["speakers"].astype(str))
    except (OSError, KeyError, ValueError) as exc:
        raise dataset.DataError(f"{path.name}: cannot read the rehearsal pack ({exc})") from None


def write(run_dir: Path, pack: Pack) -> Path:
    """Quantise and store a pack beside a run (atomically)."""
    e = pack.embeddings.astype(np.float32)
    lo, hi = e.min(axis=(0, 1)), e.max(axis=(0, 1))
    hi = np.where(hi > lo, hi, lo + 1e-6)
    q = np.round((e - lo) / (hi - lo) * 255.0).astype(np.uint8)
    path = path_of(run_dir)
    tmp = path.with_name(".tmp-" + path.name)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, q=q, lo=lo, hi=hi, labels=pack.labels.astype(str),
                            words=pack.words.astype(str), kind=pack.kind.astype(np.int8),
                            speakers=pack.speakers.astype(str))
    tmp.replace(path)
    return path


def edge_copy(clip: np.ndarray, rng: np.random.Generator, context: int) -> np.ndarray:
    """The clip 0.35-0.6 s off centre (earlier or later) in a second with `context` samples
    either side, the rest of it there, over faint noise: what a window sliding over a stream
    hears just before or after a word, which must not count as hearing it."""
    n = len(clip)
    shift = int(rng.uniform(*EDGE_SHIFT_S) * SAMPLE_RATE) * (1 if rng.random() < 0.5 else -1)
    out = np.zeros(n + 2 * context, np.float32)
    at = context + shift
    lo, hi = max(at, 0), min(at + n, len(out))
    out[lo:hi] = clip[lo - at:hi - at] * 10 ** (rng.uniform(-12.0, 6.0) / 20)
    level = np.sqrt(np.mean(clip ** 2)) + 1e-6
    out += rng.normal(0.0, 1.0, len(out)).astype(np.float32) * level / 10 ** (rng.uniform(10, 30) / 20)
    return np.clip(out, -1.0, 1.0)


def embed(x: np.ndarray, labels: list[str], words: list[str], speakers: list[str], streamed: int,
          edges: int, seed: int, backgrounds: np.ndarray | None = None, log=None) -> Pack:
    """A pack of clips [N, 16000]: each clip alone, `streamed` noisy copies heard in a stream
    (ml.embed_train.variant; `backgrounds`: noise to mix in, else white or pink) and `edges`
    off-centre copies (edge_copy)."""
    from ml.embed_train import variant
    from ml.embedding import EmbeddingSpec, SpeechEmbedding

    spec = EmbeddingSpec()
    embedding = SpeechEmbedding(spec, threads=2)
    rng = np.random.default_rng([seed, 7])
    context = int(spec.pad_s * SAMPLE_RATE)
    n = len(x)
    parts, kinds = [embedding.embed_batches(x, log=log)] if n else [], [ALONE]
    for kind, copies in ((STREAM, streamed), (EDGE, edges)):
        for _ in range(copies if n else 0):
            make = (lambda c: variant(c, rng, backgrounds, x, context)) if kind == STREAM else \
                (lambda c: edge_copy(c, rng, context))
            parts.append(embedding.embed_batches(np.stack([make(c) for c in x]), log=log))
            kinds.append(kind)
    e = np.concatenate(parts) if parts else np.zeros((0, 16, 96), np.float32)
    reps = len(parts)
    return Pack(e, np.array(list(labels) * reps, dtype=str), np.array(list(words) * reps, dtype=str),
                np.repeat(np.array(kinds[:reps], np.int8), n),
                np.array(list(speakers) * reps, dtype=str))


def word_of(clip: dataset.Clip, manifest_words: dict[str, str]) -> str:
    """The word a clip says: its label, or for `_unknown_` the word (a synthetic set's
    manifest.csv, else the file name's first part, as Speech Commands names them)."""
    if clip.label == SILENCE:
        return ""
    if clip.label != UNKNOWN:
        return clip.label
    key = f"{clip.label}/{clip.path.name}"
    if key in manifest_words:
        return manifest_words[key]
    head = clip.path.name.split("_")[0].lower()
    speaker = dataset.speaker_of(clip.path.name)
    return head if speaker and head != speaker else UNKNOWN


def manifest_words(root: Path) -> dict[str, str]:
    """file -> word of a synthetic set's manifest.csv ({} where it has none)."""
    try:
        with open(Path(root) / "manifest.csv", newline="") as f:
            return {row["file"]: row["word"] for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):
        return {}


def sample(run_dir: Path, data_root: Path, per_label: int = PER_LABEL,
           unknown_per_word: int = UNKNOWN_PER_WORD, seed: int = 0) -> list[tuple[dataset.Clip, str]]:
    """A stratified sample of a run's training clips (its split.json, under `data_root`):
    per data set and label at most `per_label`, `_unknown_` at most `unknown_per_word` per
    word; with the word each says."""
    split = runs.read_json(Path(run_dir) / "split.json")
    groups: dict[tuple, list] = defaultdict(list)
    manifests: dict[str, dict] = {}
    for rel in split["train"]:
        parts = Path(rel).parts
        if len(parts) < 2:
            continue
        folder, label = (parts[0], parts[-2]) if len(parts) > 2 else ("", parts[0])
        if folder not in manifests:
            manifests[folder] = manifest_words(Path(data_root) / folder)
        clip = dataset.Clip(Path(data_root) / rel, label)
        word = word_of(clip, manifests[folder])
        key = (folder, label, word if label == UNKNOWN else "")
        groups[key].append((clip, word))
    rng = np.random.default_rng(seed)
    chosen: list[tuple[dataset.Clip, str]] = []
    for key in sorted(groups):
        members = groups[key]
        limit = unknown_per_word if key[1] == UNKNOWN else per_label
        picks = rng.permutation(len(members))[:limit]
        chosen.extend(members[i] for i in sorted(picks))
    missing = [str(c.path) for c, _ in chosen[:1] if not c.path.is_file()]
    if missing:
        raise dataset.DataError(f"the run's training clips are not here (e.g. {missing[0]}); "
                                "give the folder they are under")
    return chosen


def build(run_dir: Path, data_root: Path, per_label: int = PER_LABEL,
          unknown_per_word: int = UNKNOWN_PER_WORD, seed: int = 0, log=print) -> Path:
    """Write a run's pack from its training clips (found under `data_root`)."""
    from ml.embed_train import backgrounds_of

    chosen = sample(run_dir, data_root, per_label, unknown_per_word, seed)
    labels = sorted({c.label for c, _ in chosen})
    x, y, kept = dataset.load_arrays([c for c, _ in chosen], labels, log)
    words = {c.path: w for c, w in chosen}
    log(f"rehearsal pack: {len(kept)} clips of {len(labels)} labels, alone, in a stream and off centre")
    pack = embed(x, [c.label for c in kept], [words[c.path] for c in kept],
                 [c.speaker or "" for c in kept], 1, 1, seed, backgrounds_of(x, y, labels), log)
    return write(run_dir, pack)

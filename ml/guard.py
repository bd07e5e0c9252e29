"""The activation guard: is a new version at least as good as the one serving?

Both versions are measured on one yardstick: a built-in check set (the default
set's generator with a seed of its own: every label, voices the default set uses,
built once in a few seconds), the real-speech evaluation set where the server has
it (a fixed sample of it), the confidence of the right answers on both, and the
detector's hits on a short built-in recording made of the check set's commands
over noise. A candidate worse than the active version by more than the noise of
these sets is not activated; `compare` says why, in words a person can act on.
Only the labels both versions know are compared (a taught word has no rival).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml import dataset
from ml.audio import SAMPLE_RATE
from ml.config import SILENCE, UNKNOWN

CHECK_SEED, CHECK_PER_WORD = 4321, 16
REAL_PER_LABEL = 30
RECORDING_SEED, RECORDING_WORDS, RECORDING_SNR_DB = 11, 24, 15.0
TOLERANCE_S = 0.75          # a detection this close to a command's centre is for that command
# How much worse than the active version a candidate may measure (the sets' noise: one
# clip of 150 is 0.7 points): accuracy points, mean confidence of right answers, hits.
MAX_DROP = {"accuracy": 0.02, "confidence": 0.05, "hits": 0.05}


@dataclass
class Yardstick:
    """Clip sets (name -> (waveforms, labels, words said)) and one recording with its commands."""
    sets: dict = field(default_factory=dict)
    recording: np.ndarray | None = None
    truth: list = field(default_factory=list)      # [(centre time s, label)]


def check_set(folder: Path, log=None) -> Path:
    """The built-in check set in `folder`, generated the first time (a few seconds)."""
    from ml.synth.generate import generate

    folder = Path(folder)
    if not (folder / "dataset.json").is_file():
        if log:
            log(f"building the check set ({CHECK_PER_WORD} clips per word, once)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        generate(folder, per_word=CHECK_PER_WORD, seed=CHECK_SEED, workers=1, progress=False)
    return folder


def _load(folder: Path, per_label: int | None = None, seed: int = 0):
    """(waveforms, labels, words said) of a folder's clips, `per_label` of each at most."""
    from ml.rehearsal import manifest_words, word_of

    labels, clips = dataset.list_clips(folder)
    if per_label:
        rng = np.random.default_rng(seed)
        by_label = {label: [c for c in clips if c.label == label] for label in labels}
        clips = [c for label in labels for c in
                 (by_label[label][i] for i in sorted(rng.permutation(len(by_label[label]))[:per_label]))]
    x, y, kept = dataset.load_arrays(clips, labels)
    manifest = manifest_words(folder)
    return x, [labels[i] for i in y], [word_of(c, manifest) for c in kept]


def recording(x: np.ndarray, labels: list[str], seed: int = RECORDING_SEED,
              words: int = RECORDING_WORDS, snr_db: float = RECORDING_SNR_DB):
    """A recording of `words` command clips (not silence or unknown) 1.5-2.5 s apart over
    pink noise `snr_db` below the speech, and its truth [(centre s, label)]."""
    rng = np.random.default_rng(seed)
    commands = [i for i, label in enumerate(labels) if label not in (SILENCE, UNKNOWN)]
    picks = [commands[i] for i in rng.permutation(len(commands))[:words]]
    gaps = rng.uniform(1.5, 2.5, len(picks))
    total = int((1.0 + sum(gaps) + 1.0) * SAMPLE_RATE)
    audio = np.zeros(total, np.float32)
    truth, at = [], SAMPLE_RATE
    for i, gap in zip(picks, gaps):
        clip = x[i]
        loud = np.flatnonzero(np.abs(clip) > 0.1 * np.abs(clip).max())
        centre = (loud[0] + loud[-1]) / 2 if len(loud) else len(clip) / 2
        audio[at:at + len(clip)] += clip
        truth.append((round((at + centre) / SAMPLE_RATE, 3), labels[i]))
        at += int(gap * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, total))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0)), total)
    speech = np.sqrt(np.mean(np.concatenate([x[i] for i in picks]) ** 2))
    audio += (pink / np.sqrt(np.mean(pink ** 2)) * speech / 10 ** (snr_db / 20)).astype(np.float32)
    return np.clip(audio, -1.0, 1.0), truth


def yardstick(check_folder: Path, real_folder: Path | None = None, log=None) -> Yardstick:
    """The check set (built when missing), a sample of the real-speech set where given and
    present, and the recording."""
    x, labels, words = _load(check_set(check_folder, log))
    stick = Yardstick({"check set": (x, labels, words)})
    if real_folder is not None and Path(real_folder).is_dir():
        stick.sets["real speech"] = _load(Path(real_folder), REAL_PER_LABEL)
    stick.recording, stick.truth = recording(x, labels)    # commands only: no taught word
    return stick


def score(detections: list[dict], truth: list[dict], tolerance_s: float = TOLERANCE_S) -> dict:
    """Hits, wrong labels and false alarms of one recording (each detection used once):
    right-label pairs are matched first, nearest first; then each command left takes the
    nearest detection left within the tolerance as a wrong label; every detection still
    unmatched is a false alarm. `truth`: {"centre", "label"} of each command."""
    pairs = sorted((abs(d["time_s"] - c["centre"]), i, j) for i, d in enumerate(detections)
                   for j, c in enumerate(truth) if abs(d["time_s"] - c["centre"]) <= tolerance_s)
    used_d, used_c, hits, wrong = set(), set(), 0, 0
    for right in (True, False):
        for _, i, j in pairs:
            if i in used_d or j in used_c:
                continue
            if (detections[i]["label"] == truth[j]["label"]) == right:
                used_d.add(i)
                used_c.add(j)
                hits += right
                wrong += not right
    return {"commands": len(truth), "hits": hits, "wrong": wrong,
            "false_alarms": len(detections) - len(used_d)}


def measure(classifier, stick: Yardstick, labels: set[str] | None = None,
            skip_words: set[str] | frozenset[str] = frozenset()) -> dict:
    """A version's figures on the yardstick, over the clips of `labels` (default: all it
    knows) but those that say one of `skip_words` (a word one version was taught and the
    other calls `_unknown_` has no right answer both agree on)."""
    from ml.detect import Detector

    known = set(classifier.labels) if labels is None else labels
    out = {}
    for name, (x, truth, words) in stick.sets.items():
        keep = [i for i, (t, w) in enumerate(zip(truth, words)) if t in known and w not in skip_words]
        if not keep:
            continue
        probs = classifier.predict_batch(x[keep])
        want = np.array([classifier.labels.index(truth[i]) for i in keep])
        right = probs.argmax(axis=1) == want
        out[name] = {"n": len(keep), "accuracy": round(float(right.mean()), 4),
                     "confidence": round(float(probs[np.arange(len(keep)), want][right].mean())
                                         if right.any() else 0.0, 4)}
    if stick.recording is not None:
        commands = [{"centre": t, "label": label} for t, label in stick.truth if label in known]
        found = [d.to_dict() for d in Detector(classifier).detect(stick.recording)]
        s = score(found, commands)
        out["recording"] = {**s, "hit_rate": round(s["hits"] / max(s["commands"], 1), 4)}
    return out


def compare(candidate, active, stick: Yardstick) -> dict:
    """Both versions' figures on the labels they share, and the verdict:
    {"ok": bool, "reasons": [why not], "candidate": {...}, "active": {...}}."""
    shared = set(candidate.labels) & set(active.labels)
    taught = set(candidate.labels) ^ set(active.labels)
    new, old = measure(candidate, stick, shared, taught), measure(active, stick, shared, taught)
    reasons = []
    for name in new:
        if name not in old:
            continue
        if name == "recording":
            a, b = new[name]["hit_rate"], old[name]["hit_rate"]
            if a < b - MAX_DROP["hits"]:
                reasons.append(f"it finds {new[name]['hits']} of the {new[name]['commands']} commands "
                               f"of the check recording, the active version {old[name]['hits']}")
            continue
        for key, what in (("accuracy", "accuracy"), ("confidence", "confidence of its right answers")):
            a, b = new[name][key], old[name][key]
            if a < b - MAX_DROP[key]:
                reasons.append(f"{what} on the {name} {a:.1%} against the active version's {b:.1%}")
    return {"ok": not reasons, "reasons": reasons, "candidate": new, "active": old,
            "labels_compared": sorted(shared)}

"""Teaching new words in seconds: a gate head on top of a version that keeps all it knew.

A version that ships a rehearsal pack (ml/rehearsal.py) can learn words its data
brings without retraining its members: a small head on the pretrained speech
embedding (the gate) learns "which taught word, or none" from the takes (each
heard alone and as noisy variants in a stream) against the pack's embeddings of
everything the version heard. Served, the gate decides how much of each taught
word a window holds and the old ensemble shares the rest: p(word) = gate(word),
p(old label) = ensemble(old label) x gate(none). Where the gate hears none of the
new words the version answers exactly as before; a word the base data filed under
`_unknown_` ("on", "off", ...) becomes the gate's positive example instead.

The new run holds the base members (hard links), the gate under members/gate, and
its own pack (the base pack plus the takes), so a taught version can be taught again.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from ml import dataset, rehearsal, runs
from ml.config import SILENCE, UNKNOWN, TrainConfig

GATE_DIR, OTHER = "members/gate", "_other_"
GATE_ARCH = "embed-mlp"
TAKE_VARIANTS = 10            # noisy copies of each take: a few takes must weigh against the pack
TAKE_EDGES = 4                # off-centre copies of each take: the gate must not fire just before/after
EPOCHS, LEARNING_RATE, BATCH = 30, 1e-3, 128
MAX_CLASS_WEIGHT = 5.0         # a taught word's weight against "none" (balanced, capped: at 20,
#                                "off" was taken for a taught "on" 4x as often; at 3 "on" was missed)
MIN_TEST_PER_LABEL = 20        # fewer: test figures are not meaningful
FEW_TAKES = 8                  # fewer takes of a word: the page suggests more
# The gate learns without label smoothing: its "none" multiplies every answer of the members,
# and smoothing would cap it near 0.95 (measured: real words' confidence 93.1% -> 88.0%).


def base_labels(config: dict, labels: list[str]) -> list[str]:
    """The labels the averaged members answer (a taught run's are fewer than its own)."""
    return list(config.get("base_labels") or labels)


def new_words(init_dir: Path, folders: list) -> list[str]:
    """Labels the data brings that the version does not know (words only)."""
    known = set(runs.labels_of(Path(init_dir)))
    return sorted(set(take_counts(folders)) - known - {SILENCE, UNKNOWN})


def take_counts(folders: list) -> dict[str, int]:
    """Clips per label of the data folders (labels without clips left out)."""
    counts: dict[str, int] = {}
    for folder in folders:
        try:
            clips = dataset.list_clips(Path(folder))[1]
        except dataset.DataError:      # no clips at all yet
            continue
        for clip in clips:
            counts[clip.label] = counts.get(clip.label, 0) + 1
    return counts


@lru_cache(maxsize=4)
def _unknown_words(pack_path: str, mtime: float) -> frozenset:
    pack = rehearsal.read(Path(pack_path).parent)
    return frozenset(w for label, w in zip(pack.labels, pack.words) if label == UNKNOWN)


def plan(init_dir: Path, folders: list) -> dict:
    """What teaching `folders` to the version would do, for pages: the new words, those the
    base data filed under `_unknown_` (taken out of it for the new version), and why it
    cannot teach where it cannot ("why": None when it can)."""
    init_dir = Path(init_dir)
    words = new_words(init_dir, folders)
    counts = take_counts(folders)
    out: dict = {"words": words, "taken_from_unknown": [], "why": None,
           "few_takes": {w: counts[w] for w in words if counts[w] < FEW_TAKES}}
    config = runs.read_json(init_dir / "config.json")
    if not rehearsal.has_pack(init_dir) or not config.get("members"):
        out["why"] = f"the active version ({config.get('run_id', init_dir.name)}) has no rehearsal pack"
    elif not words:
        out["why"] = "its labels are all words the active version knows already"
    else:
        path = rehearsal.path_of(init_dir)
        unknown = _unknown_words(str(path), path.stat().st_mtime)
        out["taken_from_unknown"] = [w for w in words if w in unknown]
    return out


def can_teach(cfg: TrainConfig) -> bool:
    """Does this job take the fast path: from a version with a pack, data bringing new words,
    the architecture left alone (or the init's)?"""
    if not cfg.init or cfg.mode == "full":
        return False
    init = Path(cfg.init)
    ok = rehearsal.has_pack(init) and runs.read_json(init / "config.json").get("members")
    if not ok or not new_words(init, cfg.folders()):
        if cfg.mode == "teach":
            raise dataset.DataError(
                "nothing to teach: " + ("the data brings no word the version does not know"
                                        if ok else f"{init.name} has no rehearsal pack "
                                        "(python -m ml rehearsal --model RUN --data FOLDER)"))
        return False
    return True


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of a folder made of hard links where the file system allows (a version's
    members are never changed in place), else of copies."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    shutil.copytree(src, dst, copy_function=link)


def _targets(pack: rehearsal.Pack, gate_labels: list[str]) -> np.ndarray:
    """The gate's answer for each entry: the taught word it says, heard whole; else none (0)."""
    return np.array([gate_labels.index(w) if w in gate_labels[1:] and k != rehearsal.EDGE else 0
                     for w, k in zip(pack.words, pack.kind)], np.int32)


def _class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(np.float64)
    return {i: float(min(MAX_CLASS_WEIGHT, len(y) / (n * c))) if c else 0.0
            for i, c in enumerate(counts)}


def teach(cfg: TrainConfig, on_epoch=None, should_stop=None, verbose: int = 0, log=print) -> Path:
    """Teach the new words of `cfg`'s data to the version `cfg.init`; return the new run."""
    from ml.embedding import EmbeddingSpec
    from ml.fitting import Progress, run_folder
    from ml.graph import write_serving_graphs

    assert cfg.init, "teaching starts from a version (cfg.init)"
    init = Path(cfg.init)
    config = runs.read_json(init / "config.json")
    base = base_labels(config, runs.labels_of(init))
    words = sorted(set(new_words(init, cfg.folders())) | set(config.get("gate_labels") or []))
    gate_labels = [OTHER] + words
    epochs = cfg.epochs or EPOCHS
    lr = cfg.learning_rate or LEARNING_RATE
    started = time.monotonic()

    stage = _stages(on_epoch)
    stage("reading the rehearsal pack")
    pack = rehearsal.read(init)
    sets = dataset.gather(cfg.folders(), cfg.split, cfg.seed, (), log)
    labels = sorted(set(base) | set(words))
    arrays = {name: dataset.load_arrays(part, sets.labels, log) for name, part in sets.parts.items()}
    x_train, y_train, clips_train = arrays["train"]
    if not len(x_train):
        raise dataset.DataError("no takes left for training after the split")
    take_labels = [sets.labels[i] for i in y_train]
    n_takes = len(x_train)
    stage(f"embedding {n_takes * (1 + TAKE_VARIANTS + TAKE_EDGES):,} clips ({n_takes} takes, "
          f"{TAKE_VARIANTS} noisy copies and {TAKE_EDGES} off-centre copies of each)")
    takes = rehearsal.embed(x_train, take_labels, take_labels, [c.speaker or "" for c in clips_train],
                            TAKE_VARIANTS, TAKE_EDGES, cfg.seed, None, log)

    taken = sorted({w for lab, w in zip(pack.labels, pack.words) if lab == UNKNOWN and w in words})
    if taken:
        log(f"taken out of _unknown_ for this version: {', '.join(taken)} (the base data's "
            f"clips of {'it' if len(taken) == 1 else 'them'} now teach the new word)")
    everything = pack + takes
    target = _targets(everything, gate_labels)
    counts = {w: int(np.sum(target == i)) for i, w in enumerate(gate_labels)}
    log(f"gate: {', '.join(f'{w} {n:,}' for w, n in counts.items())} examples")

    x_val, y_val, _ = arrays["val"]
    if len(x_val):
        val_labels = [sets.labels[i] for i in y_val]
        val_pack = rehearsal.embed(x_val, val_labels, val_labels, [""] * len(x_val), 0, 0, cfg.seed)
        val_xy = (val_pack.embeddings, _targets(val_pack, gate_labels))
    else:
        val_xy = (np.zeros((0, 16, 96), np.float32), np.zeros(0, np.int32))

    progress = Progress(epochs, on_epoch, should_stop, "training the gate")
    stage(f"training the gate on {len(target):,} examples: epoch 0 of {epochs}")
    model = _train_gate((everything.embeddings, target), val_xy, len(gate_labels),
                        replace(cfg, epochs=epochs, learning_rate=lr, batch_size=BATCH), progress, verbose)

    stage("writing the version")
    with run_folder(Path(cfg.runs), config.get("arch", "ensemble")) as run:
        tmp, run_id = run.tmp, run.run_id
        for member in runs.members_of(init, config):
            _link_tree(member, tmp / member.relative_to(init))
        gate = tmp / GATE_DIR
        gate.mkdir(parents=True)
        model.save(gate / runs.MODEL_FILE)
        spec = EmbeddingSpec()
        runs.write_json(gate / "labels.json", gate_labels)
        runs.write_json(gate / "config.json", {
            "run_id": f"{run_id}-gate", "arch": GATE_ARCH, "features": "embedding",
            "embedding": spec.params(), "labels": gate_labels, "epochs": epochs,
            "learning_rate": lr, "examples": counts, "parameters": int(model.count_params())})
        kept = np.concatenate([np.arange(2 * n_takes),    # each take alone, its first noisy copy
                               np.flatnonzero(takes.kind == rehearsal.EDGE)[:n_takes]])   # and off centre
        rehearsal.write(tmp, pack + takes.take(kept))
        runs.write_json(tmp / "labels.json", labels)
        runs.write_json(tmp / "history.json", progress.rows)
        runs.write_json(tmp / "split.json", {
            name: [str(c.path.relative_to(sets.root)) for c in part] for name, part in sets.parts.items()})
        top = {k: v for k, v in config.items() if k not in ("run_id", "created", "init_from", "taught")}
        top.update({
            "run_id": run_id, **{k: v for k, v in asdict(cfg).items() if k in ("data", "runs", "seed", "split")},
            "init": str(cfg.init), "mode": "teach", "epochs": epochs, "learning_rate": lr,
            "labels": labels, "base_labels": base, "gate": GATE_DIR, "gate_labels": words,
            "init_from": {"run_id": config.get("run_id", init.name), "arch": config.get("arch"),
                          "labels": runs.labels_of(init), "added_labels": [w for w in words if w not in
                                                                       runs.labels_of(init)]},
            "taught": {"words": words, "taken_from_unknown": taken,
                       "takes": {w: take_labels.count(w) for w in sorted(set(take_labels))}},
            "datasets": list(config.get("datasets") or []) + sets.records,
            "data_hash": sets.data_hash, "split_sizes": {k: len(v[0]) for k, v in arrays.items()},
            "epochs_run": len(progress.rows),
            "parameters": int(config.get("parameters", 0)) + int(model.count_params()),
            "created": datetime.now(UTC).isoformat(timespec="seconds")})
        runs.write_json(tmp / "config.json", top)
        stage("writing its graph")
        write_serving_graphs(tmp)
        stage("testing")
        _test(tmp, arrays["test"], sets, words)
    log(f"taught {', '.join(words)} in {time.monotonic() - started:.0f} s; run directory: {run.final}")
    return run.final


def _train_gate(train_xy, val_xy, n_labels: int, cfg: TrainConfig, progress, verbose: int):
    """The gate head fitted (ml.fitting.fit) and copied without its optimizer's state."""
    import keras

    from ml.fitting import fit
    from ml.models import build_head

    keras.utils.set_random_seed(cfg.seed)
    model = build_head(GATE_ARCH, n_labels)
    model.get_layer("normalization").adapt(train_xy[0])
    fit(model, train_xy, val_xy, cfg, progress, verbose, _class_weights(train_xy[1], n_labels))
    trained, model = model, build_head(GATE_ARCH, n_labels)
    model.set_weights(trained.get_weights())
    model.get_layer("normalization").finalize_state()
    return model


def _test(run_dir: Path, test, sets, words: list[str]) -> None:
    """The new version on the takes' test split: metrics.json (saying where a taught word has
    too few test clips to mean much) and predictions.json."""
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_arrays

    x, y, clips = test
    clf = Classifier(run_dir)
    truth = [sets.labels[i] for i in y]
    report, predictions = evaluate_arrays(
        clf, x, np.array([clf.labels.index(t) for t in truth], np.int32), clips, sets.root)
    small = [w for w in words if truth.count(w) < MIN_TEST_PER_LABEL]
    if small:
        report["note"] = (f"fewer than {MIN_TEST_PER_LABEL} test clips of {', '.join(small)}: "
                          "these figures are not meaningful")
    runs.write_json(run_dir / "metrics.json", report)
    runs.write_json(run_dir / "predictions.json", predictions)


def _stages(on_epoch):
    """Tell the caller (a job's progress) the stage that starts now."""
    def stage(name: str) -> None:
        if on_epoch:
            on_epoch({"stage": name})
    return stage


"""Training: a data folder in, a complete run directory out.

`train()` is what the CLI and the web app's job queue both call. Progress goes
to an optional `on_epoch(dict)` callback and the caller can stop training by
making `should_stop()` return True.
"""
from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml import dataset, runs, teach, warm_start
from ml.augment import background_mixer
from ml.classifier import Classifier
from ml.config import ARCHS, FINE_TUNE_LR_SCALE, TrainConfig, check_unknown_weight
from ml.embed_train import HEAD_LABEL_SMOOTHING, VARIANTS, backgrounds_of, class_weights
from ml.evaluate import evaluate_arrays
from ml.fitting import Cancelled, Progress, fit, run_folder, smoothed_loss
from ml.graph import write_serving_graphs
from ml.models import build_head, build_model

__all__ = ["Cancelled", "TrainConfig", "train"]


@dataclass
class _Data:
    """The data every model of one training sees: clips, split, and their waveforms."""
    root: Path
    labels: list[str]
    clips: list
    parts: dict
    arrays: dict          # split name -> (waveforms, label ids, clips)
    data_hash: str
    sets: list            # one record per data folder (ml.dataset.gather)


def train(cfg: TrainConfig, on_epoch: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, verbose: int = 1,
          log: Callable[[str], None] | None = None) -> Path:
    """Train, evaluate on the test split and write a run directory; return its path."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    cfg.check()
    init = warm_start.read_init(cfg.init, cfg.arch) if cfg.init else None
    if init is not None and teach.can_teach(cfg):
        return teach.teach(cfg, on_epoch, should_stop, verbose, log)
    cfg = cfg.resolved()
    if init is not None:
        cfg = replace(cfg, arch=init.arch)
        log(f"starting from {init.run_id} ({init.arch}, labels {', '.join(init.labels)}): "
            f"{cfg.epochs} epochs at learning rate {cfg.learning_rate:g}")
    data = _load(cfg, init.labels if init else (), log)
    if cfg.unknown_weight is None and init is not None and "unknown_weight" in init.config:
        cfg = replace(cfg, unknown_weight=init.config["unknown_weight"])
        log(f"served _unknown_ weight {cfg.unknown_weight:g}: that of {init.run_id}")
    if cfg.unknown_weight is None:
        cfg = replace(cfg, unknown_weight=_served_weight(data, cfg.arch, log))
    with run_folder(Path(cfg.runs), cfg.arch) as run:
        if ARCHS[cfg.arch].members:
            _train_ensemble(run.tmp, run.run_id, cfg, data, on_epoch, should_stop, verbose, log, init)
        else:
            progress = Progress(cfg.epochs, on_epoch, should_stop, f"training {cfg.arch}")
            _train_single(run.tmp, run.run_id, cfg, data, progress, verbose, log, init)
    log(f"run directory: {run.final}")
    return run.final


def _load(cfg: TrainConfig, labels_also, log) -> _Data:
    sets = dataset.gather(cfg.folders(), cfg.split, cfg.seed, labels_also, log)
    labels, clips, parts = sets.labels, sets.clips, sets.parts
    log(f"{len(clips)} clips, {len(labels)} labels: " +
        ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    if not parts["train"]:
        raise dataset.DataError(f"{sets.root}: no clips left for training after the split")
    arrays = {name: dataset.load_arrays(part, labels, log) for name, part in parts.items()}
    return _Data(sets.root, labels, clips, parts, arrays, sets.data_hash, sets.records)


def _served_weight(data: _Data, arch: str, log) -> float:
    """The `_unknown_` weight the data asks for (dataset.json); of several data sets, the one
    holding the most clips decides (the weight corrects the bias of what a model mostly saw)."""
    weights = []
    for record in data.sets:
        weight = dataset.served_unknown_weight(Path(record["path"]), arch)
        check_unknown_weight(weight, f"unknown_weight in {Path(record['path']) / 'dataset.json'}")
        weights.append((record["clips"], weight))
    weight = max(weights)[1]
    if len({w for _, w in weights}) > 1:
        log(f"served _unknown_ weight {weight:g}: that of the largest data set")
    return weight


def _train_single(run_dir: Path, run_id: str, cfg: TrainConfig, data: _Data, progress: Progress,
                  verbose: int, log, init: warm_start.Init | None = None, member: bool = False) -> None:
    """One network: on its own spectrogram, or a head on the pretrained speech embedding;
    from `init`'s weights when given (fine-tuning), else from scratch. A `member` of an
    ensemble is never served alone: no serving graph, its test figures from its Keras model."""
    info = ARCHS[cfg.arch]
    augment = info.augment if cfg.augment is None else cfg.augment
    keras.utils.set_random_seed(cfg.seed)
    n = len(data.labels)
    if info.features == "embedding":
        from ml.embedding import EmbeddingSpec

        spec = EmbeddingSpec()
        variants = VARIANTS if augment else 0
        progress.stage(f"{progress.name}: embedding {len(data.arrays['train'][0]) * (1 + variants):,} "
                       f"clips (or reading them from the cache)")
        train_xy, val_xy = (_embedded(data, name, spec, cfg, variants if name == "train"
                                      else 0, log) for name in ("train", "val"))
        model = build_head(cfg.arch, n)
        if init is not None:        # its normalisation statistics come with its weights
            warm_start.load_into(model, init, data.labels)
        else:
            model.get_layer("normalization").adapt(train_xy[0][:20000])
        fit(model, train_xy, val_xy, cfg, progress, verbose, class_weights(train_xy[1], n),
             loss=smoothed_loss(n, HEAD_LABEL_SMOOTHING))
        trained, model = model, build_head(cfg.arch, n)   # saved without the optimizer's state
        model.set_weights(trained.get_weights())
        model.get_layer("normalization").finalize_state()   # its mean and variance, from the weights
        extra = {"embedding": spec.params()}
    else:
        model = build_model(cfg.arch, n, augment)
        if init is not None:
            warm_start.load_into(model.get_layer("body"), init, data.labels)
        else:
            _adapt_normalization(model, data.arrays["train"][0])
        train_x, train_y = data.arrays["train"][:2]
        backgrounds = backgrounds_of(train_x, train_y, data.labels) if augment else None
        fit(model, data.arrays["train"][:2], data.arrays["val"][:2], cfg, progress, verbose,
             mix=None if backgrounds is None else background_mixer(backgrounds))
        model = _serving_copy(model, cfg, n)
        extra = {"feature_params": model.get_layer("features").feature_spec.params()}
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / runs.MODEL_FILE)
    _write_run(run_dir, run_id, cfg, data, progress.rows, {
        "features": info.features, **extra, "augment": augment,
        "parameters": int(model.count_params()), **_init_record(init, data)},
        _KerasMember(model, data.labels, info.features == "embedding") if member else None)


class _KerasMember:
    """An ensemble member's trained Keras model as evaluate_arrays reads a Classifier
    (labels, predict_batch of one-second clips): writing a member's serving graphs, only to
    measure it, cost about 6 s each; its test figures are its own, the ensemble's its graph's."""

    def __init__(self, model, labels: list[str], on_embedding: bool):
        self.model, self.labels, self.on_embedding = model, labels, on_embedding

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        if self.on_embedding:
            from ml.embedding import SpeechEmbedding

            clips = SpeechEmbedding().embed_batches(clips)
        return np.asarray(self.model.predict(clips, batch_size=256, verbose=0))


def _embedded(data: _Data, name: str, spec, cfg: TrainConfig, variants: int, log):
    """(embeddings, labels) of one split, its training clips with their variants, cached."""
    from ml.embed_train import cache_key, embed_cached

    x, y, clips = data.arrays[name]
    key = cache_key(data.data_hash, [str(c.path.relative_to(data.root)) for c in clips], spec,
                    cfg.seed, variants)
    return embed_cached(x, y, key, Path(cfg.runs) / ".cache" / "embeddings", spec, variants,
                        cfg.seed, log, labels=data.labels)


def _member_config(cfg: TrainConfig, arch: str) -> TrainConfig:
    """An ensemble member's settings: the job's, with the member's own recipe on top; it is
    served unweighted (the ensemble weights `_unknown_` once)."""
    recipe = dict(ARCHS[arch].recipe)
    epochs = cfg.epochs * recipe.pop("epochs_factor", 1)
    if cfg.init and "learning_rate" in recipe:     # fine-tuning: a tenth of the recipe's too
        recipe["learning_rate"] *= FINE_TUNE_LR_SCALE
    return replace(cfg, arch=arch, unknown_weight=1.0, epochs=epochs, **recipe)


def _train_ensemble(run_dir: Path, run_id: str, cfg: TrainConfig, data: _Data, on_epoch,
                    should_stop, verbose: int, log, init: warm_start.Init | None = None) -> None:
    """Each member trained on the same split into members/<arch>/ (served unweighted), then the
    ensemble's own files: it averages them and applies its `_unknown_` weight once. Fine-tuned
    (`init`), each member starts from the init's member of the same architecture."""
    members = ARCHS[cfg.arch].members
    total = sum(_member_config(cfg, a).epochs or 0 for a in members)     # settled by train()
    history: list[dict] = []
    started = time.monotonic()

    def relay(arch):
        offset = len(history)

        def on_member_epoch(row):
            if "epoch" not in row:      # a stage of the member (embedding its clips)
                if on_epoch:
                    on_epoch(row)
                return
            done = offset + row["epoch"]
            history.append({**row, "epoch": done, "epochs": total, "member": arch,
                            "member_epoch": row["epoch"], "member_epochs": row["epochs"],
                            "elapsed_s": round(time.monotonic() - started, 1)})
            if on_epoch:                # eta_s: the member's own, from its measured speed
                on_epoch(history[-1])
        return on_member_epoch

    for k, arch in enumerate(members, 1):
        log(f"ensemble member {arch}")
        member_cfg = _member_config(cfg, arch)
        _train_single(run_dir / "members" / arch, f"{run_id}-{arch}", member_cfg, data,
                      Progress(member_cfg.epochs, relay(arch), should_stop,
                               f"training {arch} (member {k} of {len(members)})"), verbose, log,
                      warm_start.member(init, arch) if init else None, member=True)
    parameters = sum(runs.read_json(run_dir / "members" / a / "config.json")["parameters"]
                     for a in members)
    _write_run(run_dir, run_id, cfg, data, history, {
        "features": "ensemble", "members": [f"members/{a}" for a in members],
        "parameters": parameters, **_init_record(init, data)})


def _init_record(init: warm_start.Init | None, data: _Data) -> dict:
    """config.json's account of the data sets and of the run it started from."""
    record: dict = {"datasets": data.sets}
    if init is not None:
        record["init_from"] = init.record(data.labels)
        if init.config.get("detector"):     # the listening settings chosen for the init
            record["detector"] = init.config["detector"]
    return record


def _adapt_normalization(model, train_x):
    """Fit a body's Normalization layer (the tutorial's) to the training features."""
    body = model.get_layer("body")
    norm = next((layer for layer in body.layers if isinstance(layer, keras.layers.Normalization)), None)
    if norm is None:
        return
    feats = model.get_layer("features")
    resize = body.layers[0]
    sample = train_x[: min(len(train_x), 2000)]
    norm.adapt(resize(feats(tf.constant(sample))))


def _serving_copy(model, cfg, n_labels):
    """The trained model without its training-only augmentation layers."""
    serving = build_model(cfg.arch, n_labels, augment=False)
    serving.get_layer("body").set_weights(model.get_layer("body").get_weights())
    return serving


def _write_run(run_dir: Path, run_id: str, cfg: TrainConfig, data: _Data, history: list[dict],
               extra: dict, member: _KerasMember | None = None) -> None:
    """Everything but the trained model: labels, split, config, history, the served graph
    (made of the trained model(s) and config.json; none for an ensemble's `member`), its
    test-split evaluation."""
    runs.write_json(run_dir / "labels.json", data.labels)
    runs.write_json(run_dir / "history.json", history)
    runs.write_json(run_dir / "split.json", {   # each clip once, however often it was repeated
        name: list(dict.fromkeys(str(c.path.relative_to(data.root)) for c in part))
        for name, part in data.parts.items()})
    runs.write_json(run_dir / "config.json", {
        "run_id": run_id,
        **asdict(cfg),
        "data": str(data.root),  # as given: relative paths stay valid in another checkout
        "data_hash": data.data_hash,
        "labels": data.labels,
        **extra,
        "split_sizes": {name: len(data.arrays[name][0]) for name in data.arrays},
        "epochs_run": len(history),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
    })
    if member is None:
        write_serving_graphs(run_dir)
    x_test, y_test, test_clips = data.arrays["test"]
    report, predictions = evaluate_arrays(member or Classifier(run_dir), x_test, y_test, test_clips, data.root)
    runs.write_json(run_dir / "metrics.json", report)
    runs.write_json(run_dir / "predictions.json", predictions)

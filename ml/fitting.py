"""Fitting a Keras network the way every Hark training does: progress, cancelling, the loop.

Shared by ml/train.py (every architecture, ensembles) and ml/teach.py (the gate head):
Adam with cosine decay and an averaged copy of the weights, early stopping, progress
rows and named stages for the caller, a stop flag checked after every batch, and a run
folder of its own for each training.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

from ml.cancel import Cancelled
from ml.config import TrainConfig

__all__ = ["Cancelled", "Progress", "fit", "new_run_folder", "run_folder", "smoothed_loss"]


class Progress(keras.callbacks.Callback):
    """Passes per-epoch figures to the caller and honours its stop requests."""

    def __init__(self, epochs, on_epoch, should_stop, name: str = "training"):
        super().__init__()
        self.epochs, self.on_epoch, self.should_stop = epochs, on_epoch, should_stop
        self.name = name
        self.rows: list[dict] = []
        self.cancelled = False

    def stage(self, text: str) -> None:
        """Tell the caller a stage starts (a row without "epoch")."""
        if self.on_epoch:
            self.on_epoch({"stage": text})

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if self.should_stop and self.should_stop():
            self.cancelled = self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.cancelled:  # Keras ends the epoch early; its figures are partial
            return
        elapsed = time.monotonic() - self.start
        row = {"epoch": epoch + 1, "epochs": self.epochs,
               **{k: round(float(v), 5) for k, v in (logs or {}).items()},
               "elapsed_s": round(elapsed, 1),
               "eta_s": round(elapsed / (epoch + 1) * (self.epochs - epoch - 1), 1),
               "stage": f"{self.name}: epoch {epoch + 1} of {self.epochs}"}
        self.rows.append(row)
        if self.on_epoch:
            self.on_epoch(row)


def new_run_folder(runs: Path, arch: str) -> tuple[str, Path]:
    """A run id of its own and its `.tmp-` folder, made exclusively.

    Two trainings on one runs folder can start in the same second (two queue consumers,
    or machines sharing the folder): the second gets `<time>-<arch>-2`, never the first's folder.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + arch
    runs.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        run_id = stamp if n == 1 else f"{stamp}-{n}"
        tmp = runs / f".tmp-{run_id}"
        if not (runs / run_id).exists():
            try:
                tmp.mkdir()
                return run_id, tmp
            except FileExistsError:
                pass
        n += 1


@dataclass
class RunFolder:
    run_id: str
    tmp: Path         # where the run is written
    final: Path       # what it is renamed to when complete


@contextmanager
def run_folder(runs: Path, arch: str):
    """A new run's `.tmp-` folder (new_run_folder), renamed to its run id when the block ends
    well and removed when it raises: no half-written run is ever left behind."""
    run_id, tmp = new_run_folder(Path(runs), arch)
    folder = RunFolder(run_id, tmp, Path(runs) / run_id)
    try:
        yield folder
        tmp.rename(folder.final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def smoothed_loss(n_labels: int, smoothing: float):
    """Cross-entropy against label-smoothed targets, for integer labels."""
    cce = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)

    def loss(y_true, y_pred):
        return cce(tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), n_labels), y_pred)
    return loss


def fit(model, train_xy, val_xy, cfg: TrainConfig, progress: Progress, verbose: int,
         class_weight: dict | None = None, loss="sparse_categorical_crossentropy", mix=None) -> None:
    """Adam with cosine decay and an averaged copy of the weights; early stopping. `mix`:
    a map over training batches (see ml.augment.background_mixer)."""
    assert cfg.epochs is not None, "train() settles the epochs before fitting"
    steps = max(1, -(-len(train_xy[0]) // cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.02)
    optimizer = keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=_ema_momentum(steps))
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    has_val = len(val_xy[0]) > 0
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss" if has_val else "loss",
                                            patience=cfg.patience, restore_best_weights=True)
    (x, y), (val_x, val_y) = train_xy, val_xy
    model.fit(_pipeline(x, y, cfg.batch_size, cfg.seed, shuffle=True, mix=mix),
              validation_data=_pipeline(val_x, val_y, cfg.batch_size) if has_val else None,
              epochs=cfg.epochs, verbose=verbose, shuffle=False, class_weight=class_weight,
              # validation, progress rows and early stopping all see the averaged weights
              callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch=True), progress, stopper])
    if progress.cancelled:
        raise Cancelled("training was cancelled")   # no run directory is left behind


def _ema_momentum(steps: int) -> float:
    """Average the weights over about the last 200 steps (the last tenth of a short run).

    The averaged weights are what the run keeps. On the synthetic default set the last
    step's weights swung by 2-3 points of real-speaker accuracy from one epoch to the
    next; the averaged ones by under 1.
    """
    return 1.0 - 1.0 / max(1.0, min(200.0, steps / 10))


def _pipeline(x, y, batch_size, seed=0, shuffle=False, mix=None):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if mix is not None:
        ds = ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

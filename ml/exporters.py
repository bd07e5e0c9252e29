"""Export a run in the formats people deploy: keras, tflite, tflite-int8 and a bundle.

One function per (kind, format) in EXPORTERS (kinds and formats: ml/export_formats.py).
`export()` checks the run and the format, lets the function write a temporary file
beside `out` and renames it into place, so `out` is either absent or complete.
Every export is the *served* model: the run's `_unknown_` weight is applied, so
it labels clips as the web app does (ml/export.py writes the serving files).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ml import dataset, runs
from ml.audio import CLIP_SAMPLES
from ml.export_formats import ExportError, check_format, kind_of, missing_files
from ml.litert_model import LiteRTModel, accuracy

CALIBRATION_CLIPS = 400      # training clips the int8 quantiser sees (seeded choice)
# Tensors of these layers stay float in the int8 model: quantising the log-mel
# features to 8 bits loses the quiet frames (measured: 88% -> 46% on real speech).
FLOAT_LAYERS = re.compile(r"(^|/)(features|label_weights)(_\d+)?/")
FLOAT_OPS = ("SOFTMAX",)     # probabilities in float, not in steps of 1/256


@dataclass
class ExportJob:
    """What a format function gets: the run, where its data is, what to measure, a log."""
    run_dir: Path
    config: dict
    labels: list[str]
    data: Path | None = None               # the training data (default: the run's config.json)
    eval_dirs: list[Path] = field(default_factory=list)     # folders to measure on (real speech)
    evaluations: list[dict] = field(default_factory=list)   # measured before: {folder, report}
    log: Callable[[str], None] = print

    @property
    def data_root(self) -> Path:
        return Path(self.data or self.config.get("data", ""))


def export(run_dir: str | Path, fmt: str, out: str | Path, *, data: str | Path | None = None,
           eval_dirs=(), evaluations=(), log: Callable[[str], None] = print) -> dict:
    """Write run `run_dir` as `fmt` to `out`; returns what was measured (format, bytes, seconds...).

    Raises ValueError (RunError, ExportError, DataError) with a message for people.
    """
    run_dir = runs.check_run(Path(run_dir))
    config = runs.read_json(run_dir / "config.json")
    spec = check_format(config, fmt)
    missing = missing_files(run_dir, config)
    if missing:
        raise ExportError(f"{run_dir}: no {', '.join(missing)}, which the export is made from")
    job = ExportJob(run_dir, config, runs.labels_of(run_dir), Path(data) if data else None,
                    [Path(d) for d in eval_dirs], list(evaluations), log)
    for folder in job.eval_dirs:
        _check_eval_folder(folder, job.labels)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; --out names the file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{out.parent}: cannot be made ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise ExportError(f"{out.parent}: not writable")
    # Keras insists on the .keras suffix, so the temporary file keeps the format's own.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{spec.suffix}")
    started = time.perf_counter()
    try:
        result = EXPORTERS[kind_of(config)][fmt](job, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"format": fmt, "out": str(out), "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - started, 2), **(result or {})}


# ---- the served model, as one Keras model and as LiteRT ---------------------------------

def serving_model(job: ExportJob):
    """Waveform -> features -> network -> the run's label weights, without training-only layers."""
    import keras

    from ml.export import LabelWeights, label_weights
    from ml.models import load_model

    model = load_model(job.run_dir / runs.MODEL_FILE)
    wave = keras.Input((CLIP_SAMPLES,), name="waveform")
    probs = model.get_layer("body")(model.get_layer("features")(wave))
    weights = label_weights(job.labels, job.config.get("unknown_weight", 1.0))
    if any(w != 1.0 for w in weights):
        probs = LabelWeights(weights, name="label_weights")(probs)
    return keras.Model(wave, probs, name="hark")


@contextlib.contextmanager
def _quiet():
    """Keras prints the traced signatures on stdout while converting; keep them off ours."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def to_tflite(model) -> bytes:
    import tensorflow as tf

    with _quiet():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def to_tflite_int8(model, float_model: bytes, calibration: np.ndarray) -> bytes:
    """Post-training int8 quantisation of the network, calibrated on `calibration` clips.

    The waveform input and the probabilities stay float32; the feature layer, the
    softmax and the label weights stay float (FLOAT_LAYERS, FLOAT_OPS); every
    convolution and dense layer is int8.
    """
    import tensorflow as tf

    names = [t["name"] for t in LiteRTModel(float_model).interpreter.get_tensor_details()]
    keep = [n for n in names if FLOAT_LAYERS.search(n)]
    if not keep:
        raise ExportError("the model's feature layer was not found in its LiteRT graph; "
                          "int8 export needs it (is this a Hark model?)")

    def representative():
        for clip in calibration:
            yield [clip[np.newaxis].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with _quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=keep, denylisted_ops=list(FLOAT_OPS)))
        return debugger.get_nondebug_quantized_model()


# ---- data: calibration clips, the test split, evaluation folders -----------------------

def _split_clips(job: ExportJob, part: str) -> list[dataset.Clip]:
    root = job.data_root
    if not root.is_dir():
        raise dataset.DataError(
            f"the training data of this run is not on this machine (no folder {root}); "
            "int8 calibration needs it: make it again (python -m ml data default for the default "
            "set) or name its folder with --data")
    split_file = job.run_dir / "split.json"
    if not split_file.is_file():
        raise dataset.DataError(f"{job.run_dir}: no split.json, so its training clips are unknown")
    clips = [dataset.Clip(root / p, Path(p).parent.name) for p in runs.read_json(split_file)[part]]
    missing = [c for c in clips if not c.path.is_file()]
    if missing:
        raise dataset.DataError(f"{root}: {len(missing)} {part} clips of this run are missing "
                                f"(e.g. {missing[0].path.name}); is this the data it was trained on?")
    return clips


def calibration_clips(job: ExportJob, n: int = CALIBRATION_CLIPS) -> np.ndarray:
    """A seeded random choice of `n` of the run's training clips, as waveforms."""
    clips = _split_clips(job, "train")
    if not clips:
        raise dataset.DataError(f"{job.run_dir}: its training split is empty")
    chosen = np.random.default_rng(0).choice(len(clips), min(n, len(clips)), replace=False)
    x, _, _ = dataset.load_arrays([clips[i] for i in sorted(chosen)], job.labels, job.log)
    return x


def _check_eval_folder(folder: Path, labels: list[str]) -> None:
    found, _ = dataset.list_clips(folder)
    unknown = [label for label in found if label not in labels]
    if unknown:
        raise dataset.DataError(f"{folder}: label(s) {', '.join(unknown)} unknown to the model "
                                f"(it knows {', '.join(labels)})")


def _folder_arrays(folder: Path, labels: list[str], log) -> tuple[np.ndarray, np.ndarray]:
    _, clips = dataset.list_clips(folder)
    x, y, _ = dataset.load_arrays(clips, labels, log)
    return x, y


def _evaluate(model: LiteRTModel, x: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    from ml.metrics import classification_report

    return classification_report(y, model.predict_batch(x).argmax(axis=1), labels)


# ---- the formats of a "network" run ------------------------------------------------------

def _network_keras(job: ExportJob, out: Path) -> dict:
    serving_model(job).save(out)
    return {}


def _network_tflite(job: ExportJob, out: Path) -> dict:
    out.write_bytes(to_tflite(serving_model(job)))
    return {}


def _network_tflite_int8(job: ExportJob, out: Path) -> dict:
    from ml.measure import latency

    calibration = calibration_clips(job)
    job.log(f"calibrating on {len(calibration):,} training clips of {job.data_root}")
    model = serving_model(job)
    float_bytes = to_tflite(model)
    int8_bytes = to_tflite_int8(model, float_bytes, calibration)
    out.write_bytes(int8_bytes)
    models = {"float": LiteRTModel(float_bytes), "int8": LiteRTModel(int8_bytes)}
    sets = [("test split", *dataset.load_arrays(_split_clips(job, "test"), job.labels, job.log)[:2])]
    sets += [(str(folder), *_folder_arrays(folder, job.labels, job.log)) for folder in job.eval_dirs]
    figures = {"accuracy": {}, "latency_ms": {}, "size_bytes": {"float": len(float_bytes),
                                                                 "int8": len(int8_bytes)}}
    width = max(len(f"{name} ({len(y):,} clips)") for name, _, y in sets)
    for name, x, y in sets:
        acc = {kind: accuracy(m, x, y) for kind, m in models.items()}
        figures["accuracy"][name] = {**acc, "clips": len(y)}
        if acc["float"] is None:
            job.log(f"{name}: no clips")
            continue
        job.log(f"{f'{name} ({len(y):,} clips)':<{width}}  float {acc['float']:7.2%}   "
                f"int8 {acc['int8']:7.2%}   ({(acc['int8'] - acc['float']) * 100:+.2f} points)")
    for kind, m in models.items():
        figures["latency_ms"][kind] = latency(m)["median_ms"]
    job.log(f"{'latency per clip, 1 thread':<{width}}  float {figures['latency_ms']['float']:6.2f} ms  "
            f"int8 {figures['latency_ms']['int8']:6.2f} ms")
    job.log(f"{'size':<{width}}  float {len(float_bytes) / 1024:6.0f} KB  "
            f"int8 {len(int8_bytes) / 1024:6.0f} KB")
    return figures


def _network_bundle(job: ExportJob, out: Path) -> dict:
    from ml import bundle
    from ml.measure import latency

    model_bytes = to_tflite(serving_model(job))
    model = LiteRTModel(model_bytes)
    measured = [{"folder": str(folder), "report": _evaluate(model, *_folder_arrays(
        folder, job.labels, job.log), job.labels)} for folder in job.eval_dirs]
    for m in measured:
        job.log(f"{m['folder']}: accuracy {m['report']['accuracy']:.2%} on {m['report']['n']:,} clips")
    facts = bundle.Facts(
        run_dir=job.run_dir, config=job.config, labels=job.labels,
        metrics=_read_optional(job.run_dir / "metrics.json"),
        evaluations=measured + job.evaluations, latency=latency(model),
        model_files={bundle.MODEL_FILE: model_bytes}, data_root=job.data_root)
    bundle.write_bundle(out, facts)
    return {"latency_ms": facts.latency["median_ms"], "evaluations": [
        {"folder": m["folder"], "accuracy": m["report"]["accuracy"]} for m in measured]}


def _read_optional(path: Path):
    return runs.read_json(path) if path.is_file() else None


# kind -> format -> function(job, out path) -> figures; the same kinds and formats as
# ml/export_formats.py's KIND_FORMATS (tests check they agree).
EXPORTERS: dict[str, dict[str, Callable[[ExportJob, Path], dict]]] = {
    "network": {"keras": _network_keras, "tflite": _network_tflite,
                "tflite-int8": _network_tflite_int8, "bundle": _network_bundle},
}

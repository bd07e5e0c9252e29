"""Export a run in the formats people deploy: keras, tflite, tflite-int8 and a bundle.

One writer per format in WRITERS (formats: ml/export/formats.py), the same for every
kind of run: each is the *served* model for one clip (ml/graph.py's clip_model: the run's
one graph, its `_unknown_` weight applied), so it labels clips as the web app does.
`export()` checks the run and the format, lets the writer write a temporary file
beside `out` and renames it into place, so `out` is either absent or complete.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml import dataset, runs
from ml.audio import CLIP_SAMPLES
from ml.export.formats import ExportError, check_format, missing_files
from ml.export.litert_file import LiteRTModel, accuracy

CALIBRATION_CLIPS = 400      # training clips the int8 quantiser sees (seeded choice)
# Tensors of these layers stay float in the int8 model: quantising the log-mel
# features to 8 bits loses the quiet frames (measured: 88% -> 46% on real speech), and
# the speech embedding's mel frames likewise; the windows' slicing, the average of an
# ensemble's members and the label weights are cheap and stay exact.
FLOAT_LAYERS = re.compile(r"(^|/)(features|span|frames|waves|dither|mel_frames|clip_frames|picture|"
                          r"alone_in_silence|average|label_weights|gate|probabilities)[^/]*/")
FLOAT_OPS = ("SOFTMAX",)     # probabilities in float, not in steps of 1/256
AGREEMENT = 1e-4             # most a bundle's probabilities may differ from the served model's


@dataclass
class ExportJob:
    """What a format's writer gets: the run, where its data is, what to measure, a log."""
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
        result = WRITERS[fmt](job, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"format": fmt, "out": str(out), "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - started, 2), **(result or {})}


# ---- the served model, as one Keras model and as LiteRT ---------------------------------

def serving_model(job: ExportJob):
    """The served model for one clip (waveform [1, 16000] in, probabilities out), as Keras."""
    from ml.graph import clip_model

    return clip_model(job.run_dir)


def to_tflite(model) -> bytes:
    from ml.graph import to_litert

    return to_litert(model)


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

    from ml.graph import quiet_converter, with_named_outputs

    # the float model's tensor names (`keep`) are those of with_named_outputs(model) (to_tflite)
    converter = tf.lite.TFLiteConverter.from_keras_model(with_named_outputs(model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with quiet_converter():
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
    if not split_file.is_file() and job.run_dir.parent.name == "members":
        split_file = job.run_dir.parent.parent / "split.json"    # a member's is its ensemble's
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


def _evaluate(model, x: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """A classification report of `model` (anything with predict_batch) on clips `x`."""
    from ml.metrics import classification_report

    return classification_report(y, model.predict_batch(x).argmax(axis=1), labels)


# ---- the formats -------------------------------------------------------------------------

def _keras(job: ExportJob, out: Path) -> dict:
    serving_model(job).save(out)
    return {}


def _tflite(job: ExportJob, out: Path) -> dict:
    out.write_bytes(to_tflite(serving_model(job)))
    return {}


def _tflite_int8(job: ExportJob, out: Path) -> dict:
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
    figures: dict[str, dict] = {"accuracy": {}, "latency_ms": {},
                                "size_bytes": {"float": len(float_bytes), "int8": len(int8_bytes)}}
    width = max(len(f"{name} ({len(y):,} clips)") for name, _, y in sets)
    for name, x, y in sets:
        acc = {kind: accuracy(m, x, y) for kind, m in models.items()}
        figures["accuracy"][name] = {**acc, "clips": len(y)}
        float_acc, int8_acc = acc["float"], acc["int8"]
        if float_acc is None or int8_acc is None:
            job.log(f"{name}: no clips")
            continue
        job.log(f"{f'{name} ({len(y):,} clips)':<{width}}  float {float_acc:7.2%}   "
                f"int8 {int8_acc:7.2%}   ({(int8_acc - float_acc) * 100:+.2f} points)")
    for kind, m in models.items():
        figures["latency_ms"][kind] = latency(m)["median_ms"]
    job.log(f"{'latency per clip, 1 thread':<{width}}  float {figures['latency_ms']['float']:6.2f} ms  "
            f"int8 {figures['latency_ms']['int8']:6.2f} ms")
    job.log(f"{'size':<{width}}  float {len(float_bytes) / 1024:6.0f} KB  "
            f"int8 {len(int8_bytes) / 1024:6.0f} KB")
    return figures


def _bundle(job: ExportJob, out: Path) -> dict:
    from ml.export import bundle

    model_bytes = to_tflite(serving_model(job))
    _check_agrees(model_bytes, job)
    return _write_bundle(job, out, LiteRTModel(model_bytes), {bundle.MODEL_FILE: model_bytes})


def _write_bundle(job: ExportJob, out: Path, model, files: dict[str, bytes]) -> dict:
    """Measure `model` (what the bundle computes: latency, accuracy on --eval folders) and write the ZIP."""
    from ml.export import bundle, model_card
    from ml.measure import latency

    measured: list[dict] = [{"folder": str(folder), "report": _evaluate(model, *_folder_arrays(
        folder, job.labels, job.log), job.labels)} for folder in job.eval_dirs]
    for m in measured:
        job.log(f"{m['folder']}: accuracy {m['report']['accuracy']:.2%} on {m['report']['n']:,} clips")
    facts = model_card.Facts(
        run_dir=job.run_dir, config=job.config, labels=job.labels,
        metrics=_read_optional(job.run_dir / "metrics.json"),
        evaluations=measured + job.evaluations, latency=latency(model),
        model_files=files, data_root=job.data_root)
    bundle.write_bundle(out, facts)
    return {"latency_ms": facts.latency["median_ms"], "evaluations": [
        {"folder": m["folder"], "accuracy": m["report"]["accuracy"]} for m in measured]}


def _check_agrees(model_bytes: bytes, job: ExportJob, clips: int = 4) -> None:
    """Run the bundle's own predict.py code on its model and compare it with the served
    model, so a change to how Hark serves that predict.py does not follow stops the export
    instead of shipping a model that answers differently."""
    import tempfile

    from ml.classifier import Classifier
    from ml.export import predict

    rng = np.random.default_rng(5)
    t = np.arange(CLIP_SAMPLES) / CLIP_SAMPLES
    x = np.stack([(rng.normal(0, 0.05, CLIP_SAMPLES) + 0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t))
                  .astype(np.float32) for i in range(clips)])
    with tempfile.TemporaryDirectory(prefix="hark-bundle-check-") as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(model_bytes)
        model = predict.Model(path, job.labels)
        theirs = np.array([list(model.probabilities(clip).values()) for clip in x])
    gap = float(np.abs(theirs - Classifier(job.run_dir).predict_batch(x)).max())
    if gap > AGREEMENT:
        raise ExportError(f"the bundle's predict.py differs from the served model by {gap:.2g} "
                          "(Hark's serving changed: ml/export/predict.py must follow it)")


def _read_optional(path: Path):
    return runs.read_json(path) if path.is_file() else None


# format -> writer(job, out path) -> figures; the formats of ml/export/formats.py's FORMATS
# (tests check they agree).
WRITERS: dict[str, Callable[[ExportJob, Path], dict]] = {
    "keras": _keras, "tflite": _tflite, "tflite-int8": _tflite_int8, "bundle": _bundle}

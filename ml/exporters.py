"""Export a run in the formats people deploy: keras, tflite, tflite-int8 and a bundle.

One function per (kind, format) in EXPORTERS (kinds and formats: ml/export_formats.py).
`export()` checks the run and the format, lets the function write a temporary file
beside `out` and renames it into place, so `out` is either absent or complete.
Every export is the *served* model: the run's `_unknown_` weight is applied, so
it labels clips as the web app does (ml/export.py writes the serving files).
A head on the pretrained embedding and an ensemble are not one file: their bundle
carries each part and a manifest of how predict.py combines them (`_parts_bundle`).
"""
from __future__ import annotations

import contextlib
import io
import json
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
AGREEMENT = 1e-4             # most a bundle's probabilities may differ from the served model's


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


def _evaluate(model, x: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """A classification report of `model` (anything with predict_batch) on clips `x`."""
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

    model_bytes = to_tflite(serving_model(job))
    return _write_bundle(job, out, LiteRTModel(model_bytes), {bundle.MODEL_FILE: model_bytes})


def _write_bundle(job: ExportJob, out: Path, model, files: dict[str, bytes], manifest: dict | None = None) -> dict:
    """Measure `model` (what the bundle computes: latency, accuracy on --eval folders) and write the ZIP."""
    from ml import bundle
    from ml.measure import latency

    measured = [{"folder": str(folder), "report": _evaluate(model, *_folder_arrays(
        folder, job.labels, job.log), job.labels)} for folder in job.eval_dirs]
    for m in measured:
        job.log(f"{m['folder']}: accuracy {m['report']['accuracy']:.2%} on {m['report']['n']:,} clips")
    facts = bundle.Facts(
        run_dir=job.run_dir, config=job.config, labels=job.labels,
        metrics=_read_optional(job.run_dir / "metrics.json"),
        evaluations=measured + job.evaluations, latency=latency(model),
        model_files=files, data_root=job.data_root, manifest=manifest)
    bundle.write_bundle(out, facts)
    return {"latency_ms": facts.latency["median_ms"], "evaluations": [
        {"folder": m["folder"], "accuracy": m["report"]["accuracy"]} for m in measured]}


# ---- the bundle of a model of several parts (a head on the embedding, an ensemble) ---------

@dataclass
class _Part:
    """One file of the manifest: a LiteRT graph that hears the waveform or the embedding."""
    name: str                   # its file name in the bundle
    input: str                  # "waveform" or "embedding"
    data: bytes
    run: str                    # the run it was made from (relative to the exported run)


def _parts_of(job: ExportJob) -> tuple[list[_Part], dict | None, float]:
    """(parts, the embedding spec if a part needs it, the `_unknown_` weight applied after the average).

    A head's part is its served body.tflite (embeddings in; a single head's run weight is
    inside it, so none is applied after). A network member becomes one waveform-in file
    like the `tflite` format, with its own (unit) weight, as the ensemble serves it.
    """
    if kind_of(job.config) == "embedding":
        return [_Part("head.tflite", "embedding", (job.run_dir / runs.BODY_FILE).read_bytes(), ".")], \
            job.config.get("embedding") or {}, 1.0
    if job.config.get("gate"):
        raise ExportError("a taught version (a gate head over its members, ml/teach.py) cannot be "
                          "bundled yet; export the version it was taught from")
    parts, specs = [], []
    for member in runs.members_of(job.run_dir, job.config):
        config = runs.read_json(member / "config.json")
        where = str(member.relative_to(job.run_dir))
        if runs.labels_of(member) != job.labels:
            raise ExportError(f"{where}: its labels differ from the ensemble's")
        name = f"{member.name}.tflite"
        if any(p.name == name for p in parts):
            name = f"{member.name}-{len(parts)}.tflite"
        kind = kind_of(config)
        if kind == "network":
            member_job = ExportJob(member, config, job.labels, log=job.log)
            parts.append(_Part(name, "waveform", to_tflite(serving_model(member_job)), where))
        elif kind == "embedding":
            parts.append(_Part(name, "embedding", (member / runs.BODY_FILE).read_bytes(), where))
            specs.append(config.get("embedding") or {})
        else:
            raise ExportError(f"{where}: a member of kind {kind or 'unknown'} cannot be bundled "
                              "(members are single networks or heads on the embedding)")
    if any(spec != specs[0] for spec in specs):
        raise ExportError("the ensemble's heads prepare the embedding differently; a bundle carries one")
    return parts, (specs[0] if specs else None), float(job.config.get("unknown_weight", 1.0))


def _embedding_files(params: dict) -> tuple[dict, dict[str, bytes]]:
    """The manifest's `embedding` section and its files: the mel graph as shipped, the
    embedding graph as Hark runs it (whole sequence at once) and the fixed dither."""
    # The two private helpers are what SpeechEmbedding itself runs: the bundle must hold the
    # same bytes, not a copy of how they are made.
    from ml.audio import SAMPLE_RATE
    from ml.embedding import WINDOWS, EmbeddingSpec, dither_noise, whole_sequence_graph, resources

    spec = EmbeddingSpec(**params)
    samples = CLIP_SAMPLES + 2 * int(spec.pad_s * SAMPLE_RATE)
    noise = io.BytesIO()
    np.save(noise, dither_noise(samples))
    files = {"melspectrogram.onnx": (resources() / "melspectrogram.onnx").read_bytes(),
             "embedding.onnx": whole_sequence_graph(), "dither.npy": noise.getvalue()}
    section = {"mel_graph": "melspectrogram.onnx", "embedding_graph": "embedding.onnx",
               "dither_file": "dither.npy", **spec.params(), "mel_divide": 10.0, "mel_add": 2.0,
               "windows": WINDOWS}
    return section, files


def _parts_bundle(job: ExportJob, out: Path) -> dict:
    """The bundle of a head on the embedding or an ensemble: each part, the embedding's graphs,
    model.json saying how they combine; measured with the run's Classifier, which computes
    exactly what predict.py does with them."""
    from ml import bundle
    from ml.classifier import Classifier

    parts, embedding, weight = _parts_of(job)
    manifest = {"hark_bundle": 1, "parts": [{"file": p.name, "input": p.input, "run": p.run} for p in parts],
                "unknown_weight": weight,
                "combine": "the parts' probabilities averaged, the `_unknown_` one multiplied by "
                           "unknown_weight, renormalised"}
    files = {p.name: p.data for p in parts}
    if embedding is not None:
        manifest["embedding"], more = _embedding_files(embedding)
        files.update(more)
    files[bundle.MANIFEST_FILE] = json.dumps(manifest, indent=1).encode()
    served = Classifier(job.run_dir, threads=1)
    _check_agrees(files, job.labels, served)
    return _write_bundle(job, out, served, files, manifest)


def _check_agrees(files: dict[str, bytes], labels: list[str], served, clips: int = 4) -> None:
    """Run the bundle's own predict.py code on its files and compare it with the served model,
    so a change to how Hark serves (ml/embedding.py, ml/classifier.py) that predict.py does not
    follow stops the export instead of shipping a model that answers differently."""
    import tempfile

    from ml import bundle, bundle_predict

    rng = np.random.default_rng(5)
    t = np.arange(CLIP_SAMPLES) / CLIP_SAMPLES
    x = np.stack([(rng.normal(0, 0.05, CLIP_SAMPLES) + 0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t))
                  .astype(np.float32) for i in range(clips)])
    with tempfile.TemporaryDirectory(prefix="hark-bundle-check-") as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        model = bundle_predict.Model(Path(folder) / bundle.MANIFEST_FILE, labels)
        theirs = np.array([list(model.probabilities(clip).values()) for clip in x])
    gap = float(np.abs(theirs - served.predict_batch(x)).max())
    if gap > AGREEMENT:
        raise ExportError(f"the bundle's predict.py differs from the served model by {gap:.2g} "
                          "(Hark's serving changed: ml/bundle_predict.py must follow it)")


def _read_optional(path: Path):
    return runs.read_json(path) if path.is_file() else None


# kind -> format -> function(job, out path) -> figures; the same kinds and formats as
# ml/export_formats.py's KIND_FORMATS (tests check they agree).
EXPORTERS: dict[str, dict[str, Callable[[ExportJob, Path], dict]]] = {
    "network": {"keras": _network_keras, "tflite": _network_tflite,
                "tflite-int8": _network_tflite_int8, "bundle": _network_bundle},
    "embedding": {"bundle": _parts_bundle},
    "ensemble": {"bundle": _parts_bundle},
}

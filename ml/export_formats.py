"""The export formats: their names and files, and which formats a run supports (no TensorFlow).

A run exports according to its *kind*, decided by its architecture: a "network"
(kws, tutorial, seed) is one Keras model, waveform in, probabilities out, and
every format is one function of ml/exporters.py for that kind. A head on the
pretrained embedding ("embedding") and an "ensemble" are not one file: the
embedding runs on onnxruntime, outside LiteRT and Keras, so they export as a
bundle only (KIND_LIMITS says why to whoever asks for another format). The web
app reads this module to offer its Download menu without importing TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Bump when an exporter writes something different for the same run, so cached exports
# (the web app's instance/cache/exports/) are built again.
EXPORT_VERSION = 2


@dataclass(frozen=True)
class ExportFormat:
    name: str               # what --format and URLs say
    suffix: str             # end of the file name
    content_type: str
    title: str              # for menus
    about: str              # one line for --help and menus
    needs_data: bool = False   # needs the run's training clips (calibration)


FORMATS = {f.name: f for f in [
    ExportFormat("keras", ".keras", "application/octet-stream", "Keras (.keras)",
                 "the Keras model: one second of 16 kHz waveform in, probabilities out"),
    ExportFormat("tflite", ".tflite", "application/octet-stream", "TFLite (.tflite)",
                 "one LiteRT file, waveform in, probabilities out (features inside)"),
    ExportFormat("tflite-int8", "-int8.tflite", "application/octet-stream", "TFLite int8 (.tflite)",
                 "the LiteRT file with its network quantised to int8, calibrated on the training clips",
                 needs_data=True),
    ExportFormat("bundle", ".zip", "application/zip", "Bundle (.zip)",
                 "a ZIP: the LiteRT model (or its parts and their manifest), labels, metrics, "
                 "a model card and a standalone predict.py"),
]}

# architecture -> kind; kind -> the formats it exports to (in menu order).
ARCH_KINDS = {"kws": "network", "tutorial": "network", "seed": "network",
              "rawwave": "network", "attention": "network",
              "embed-mlp": "embedding", "embed-conv": "embedding", "ensemble": "ensemble"}
KIND_FORMATS = {"network": ("keras", "tflite", "tflite-int8", "bundle"),
                "embedding": ("bundle",), "ensemble": ("bundle",)}
# Why a kind has no single-file formats, for the refusal's message.
KIND_LIMITS = {
    "embedding": "its pretrained speech embedding runs on onnxruntime, so the model is not one "
                 "LiteRT or Keras file; the bundle carries its parts and a predict.py that runs them",
    "ensemble": "it is several models averaged, some on the pretrained speech embedding (onnxruntime), "
                "so it is not one LiteRT or Keras file; the bundle carries its parts and a predict.py "
                "that combines them"}

# What a kind's exporters read from the run directory (an ensemble: what its members' need).
KIND_NEEDS = {"network": ("model.keras",), "embedding": ("body.tflite",), "ensemble": ()}


class ExportError(ValueError):
    """A run that cannot be exported as asked; the message says why, for a person."""


def kind_of(config: dict) -> str | None:
    """A run's kind from its config.json (a `kind` it records, else its architecture's)."""
    if config.get("kind"):
        return config["kind"]
    if config.get("members"):
        return "ensemble"
    return ARCH_KINDS.get(config.get("arch"))


def formats_of(config: dict) -> tuple[str, ...]:
    """The formats a run with this config.json can be exported to."""
    return KIND_FORMATS.get(kind_of(config), ())


def check_format(config: dict, fmt: str) -> ExportFormat:
    """The format `fmt`, if this run supports it; ExportError otherwise."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    supported = formats_of(config)
    if fmt not in supported:
        what = config.get("arch") or config.get("kind") or "unknown"
        why = KIND_LIMITS.get(kind_of(config))
        raise ExportError(f"a model of architecture {what} cannot be exported as {fmt} "
                          f"(it can be: {', '.join(supported) or 'nothing yet'})" + (f": {why}" if why else ""))
    return FORMATS[fmt]


def missing_files(run_dir: Path, config: dict) -> list[str]:
    """The files the exporters of this run's kind need that are not in `run_dir` (an ensemble's:
    those of its members, named by their path in the run, e.g. members/kws/model.keras)."""
    run_dir = Path(run_dir)
    missing = [name for name in KIND_NEEDS.get(kind_of(config), ()) if not (run_dir / name).is_file()]
    if kind_of(config) == "ensemble":
        for member in config.get("members") or []:
            try:
                member_config = json.loads((run_dir / member / "config.json").read_text())
            except (OSError, ValueError):
                missing.append(f"{member}/config.json")
                continue
            missing += [f"{member}/{name}" for name in missing_files(run_dir / member, member_config)]
    return missing


def file_name(run_id: str, fmt: str) -> str:
    """The download's file name, e.g. hark-20261124-142758-kws-int8.tflite."""
    return f"hark-{Path(run_id).name}{FORMATS[fmt].suffix}"

"""The export formats: their names and files, and which formats a run supports (no TensorFlow).

Every kind of run (a "network" on its own features, a head on the pretrained
"embedding", an "ensemble", a taught version) is one graph (ml/graph.py), so every
kind exports to every format; what differs is which trained files the export is
made of (KIND_NEEDS). The web app reads this module to offer its Download menu
without importing TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Bump when an exporter writes something different for the same run, so cached exports
# (the web app's instance/cache/exports/) are built again.
EXPORT_VERSION = 3


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
                 "one LiteRT file, waveform in, probabilities out (features, embedding, members inside)"),
    ExportFormat("tflite-int8", "-int8.tflite", "application/octet-stream", "TFLite int8 (.tflite)",
                 "the LiteRT file with its networks quantised to int8, calibrated on the training clips",
                 needs_data=True),
    ExportFormat("bundle", ".zip", "application/zip", "Bundle (.zip)",
                 "a ZIP: the LiteRT model, labels, metrics, a model card and a standalone predict.py"),
]}

# architecture -> kind (what its export is made of: KIND_NEEDS).
ARCH_KINDS = {"kws": "network", "tutorial": "network", "seed": "network",
              "rawwave": "network", "attention": "network",
              "embed-mlp": "embedding", "embed-conv": "embedding", "ensemble": "ensemble"}
# What a kind's export is made of, in the run directory (an ensemble: what its members' need).
KIND_NEEDS = {"network": ("model.keras",), "embedding": ("model.keras",), "ensemble": ()}


class ExportError(ValueError):
    """A run that cannot be exported as asked; the message says why, for a person."""


def kind_of(config: dict) -> str | None:
    """A run's kind from its config.json (a `kind` it records, else its architecture's)."""
    if config.get("kind"):
        return config["kind"]
    if config.get("members"):
        return "ensemble"
    return ARCH_KINDS.get(str(config.get("arch")))


def formats_of(config: dict) -> tuple[str, ...]:
    """The formats a run with this config.json can be exported to (every one, for a Hark run)."""
    return tuple(FORMATS) if kind_of(config) in KIND_NEEDS else ()


def check_format(config: dict, fmt: str) -> ExportFormat:
    """The format `fmt`, if this run supports it; ExportError otherwise."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    supported = formats_of(config)
    if fmt not in supported:
        what = config.get("arch") or config.get("kind") or "unknown"
        raise ExportError(f"a model of architecture {what} cannot be exported as {fmt} "
                          f"(it can be: {', '.join(supported) or 'nothing yet'})")
    return FORMATS[fmt]


def missing_files(run_dir: Path, config: dict) -> list[str]:
    """The files the export of this run's kind needs that are not in `run_dir` (an ensemble's:
    those of its members, named by their path in the run, e.g. members/kws/model.keras)."""
    run_dir = Path(run_dir)
    missing = [name for name in KIND_NEEDS.get(kind_of(config) or "", ()) if not (run_dir / name).is_file()]
    if kind_of(config) == "ensemble":
        for member in (config.get("members") or []) + ([config["gate"]] if config.get("gate") else []):
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

"""The run directory: everything one training run produced, in plain files.

    model.keras        the model, waveform in, probabilities out
    features.tflite    its feature layer, exported for serving (ml/export.py)
    body.tflite        its network, exported for serving
    labels.json        class names in output order
    config.json        data path and hash, split, architecture, hyperparameters, versions
    split.json         which clip went to train, val and test
    history.json       one row per epoch
    metrics.json       evaluation on the test split
    predictions.json   every test clip: path, true label, predicted label, probabilities
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MODEL_FILE = "model.keras"
FEATURES_FILE, BODY_FILE = "features.tflite", "body.tflite"  # the LiteRT serving export


class RunError(ValueError):
    """A path that is not a usable run directory."""


def write_json(path: Path, data) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp makes files private; these are ordinary outputs
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def check_run(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / MODEL_FILE).is_file() or not (run_dir / "labels.json").is_file():
        raise RunError(f"{run_dir}: not a run directory (expected {MODEL_FILE} and labels.json in it)")
    return run_dir


def labels_of(run_dir: Path) -> list[str]:
    return read_json(check_run(run_dir) / "labels.json")

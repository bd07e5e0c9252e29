"""The run directory: everything one training run produced, in plain files.

    model.keras        the trained model, waveform in, probabilities out (an embedding head:
                       embeddings in; ml/embedding.py makes them from the waveform)
    model.tflite       what is served: the run as one LiteRT graph (ml/graph.py builds and writes it)
    window.tflite      the same graph for exactly one window (one clip: faster; what a page runs)
    members/           an ensemble's member runs (its model.tflite is made of theirs)
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
SERVING_FILE = "model.tflite"       # the run as one LiteRT graph (ml/graph.py writes it)
WINDOW_FILE = "window.tflite"       # the same graph fixed to one window


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
    if not (run_dir / "config.json").is_file() or not (run_dir / "labels.json").is_file():
        raise RunError(f"{run_dir}: not a run directory (expected config.json and labels.json in it)")
    return run_dir


def members_of(run_dir: Path, config: dict | None = None) -> list[Path]:
    """An ensemble's member run directories (none for a single model)."""
    config = config if config is not None else read_json(Path(run_dir) / "config.json")
    return [Path(run_dir) / m for m in config.get("members") or []]


def gate_of(run_dir: Path, config: dict | None = None) -> Path | None:
    """A taught version's gate run directory (ml/teach.py), None for others."""
    config = config if config is not None else read_json(Path(run_dir) / "config.json")
    return Path(run_dir) / config["gate"] if config.get("gate") else None


def parts_of(run_dir: Path, config: dict | None = None) -> list[Path]:
    """The trained runs a run's served graph is made of: its members and gate, or itself."""
    config = config if config is not None else read_json(Path(run_dir) / "config.json")
    gate = gate_of(run_dir, config)
    return (members_of(run_dir, config) or [Path(run_dir)]) + ([gate] if gate else [])


def serving_files(run_dir: Path) -> list[Path]:
    """Every file that makes up the served model: what must exist, and what a change of means
    a new model. Raises OSError or ValueError when the run's config cannot be read."""
    run_dir = Path(run_dir)
    read_json(run_dir / "config.json")
    return [run_dir / "config.json", run_dir / "labels.json", run_dir / SERVING_FILE, run_dir / WINDOW_FILE]


def is_complete(run_dir: Path | None) -> bool:
    """A run with every serving file in place (what the Classifier needs)."""
    try:
        return run_dir is not None and all(f.is_file() for f in serving_files(Path(run_dir)))
    except (OSError, ValueError):
        return False


def labels_of(run_dir: Path) -> list[str]:
    return read_json(check_run(run_dir) / "labels.json")

"""Fine-tuning: start a new training from the weights of an existing run (`--init RUN`).

A network trained on synthetic voices already hears words; a few real clips then
teach it real voices faster and better than training from nothing (issue 15: the
shipped model fine-tuned on real speakers beat both it and a model trained on
those speakers alone by about 3 points). The new run keeps the old run's labels
and adds the ones its data brings: every layer is copied as it is, except the
output layer, whose units are matched by label name (a new label gets a fresh
unit). An ensemble starts each member from the old ensemble's member.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import runs
from ml.config import ARCHS, DEFAULT_ARCH, FEATURES, ConfigError
from ml.dataset import DataError


@dataclass(frozen=True)
class Init:
    """The run a training starts from."""
    path: Path
    run_id: str
    arch: str
    labels: list
    config: dict

    def record(self, new_labels: list[str]) -> dict:
        """What the new run's config.json says it started from."""
        return {"run_id": self.run_id, "arch": self.arch, "labels": self.labels,
                "added_labels": [label for label in new_labels if label not in self.labels]}


def read_init(path: str | Path, arch: str) -> Init:
    """The run at `path`, checked to be one this training can start from.

    The new run has the init's architecture: `arch` must be that one, or the
    default (the setting left alone). Raises DataError / ConfigError with a message.
    """
    path = Path(path)
    try:
        runs.check_run(path)
        config = runs.read_json(path / "config.json")
        labels = runs.labels_of(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"init: {exc}") from None
    own = config.get("arch")
    if own not in ARCHS:
        raise DataError(f"init: {path} has no known architecture ({own!r})")
    if arch not in (own, DEFAULT_ARCH):
        raise ConfigError(f"init: {path} is a {own} model, so the new one is {own} too "
                          f"(not {arch}); leave the architecture as it is")
    members = runs.members_of(path, config)
    needed = [m / runs.MODEL_FILE for m in members] if members else [path / runs.MODEL_FILE]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DataError(f"init: {path} has no trained weights ({', '.join(missing)})")
    if members and [m.name for m in members] != list(ARCHS[own].members):
        raise DataError(f"init: {path}'s members ({', '.join(m.name for m in members)}) are "
                        f"not those of a {own} ({', '.join(ARCHS[own].members)})")
    spec = config.get("feature_params")
    info = ARCHS[own]
    if spec and info.features in FEATURES and spec != FEATURES[info.features].params():
        raise DataError(f"init: {path} hears other features than this version of Hark makes "
                        f"({spec['kind']} framing differs); it cannot be fine-tuned here")
    return Init(path, str(config.get("run_id") or path.name), own, list(labels), config)


def member(init: Init, arch: str) -> Init:
    """The init of one ensemble member."""
    path = init.path / "members" / arch
    return Init(path, f"{init.run_id}/{arch}", arch, runs.labels_of(path),
                runs.read_json(path / "config.json"))


def load_into(network, init: Init, labels: list[str]) -> None:
    """Copy the init's trained network into `network` (a freshly built body or head for
    `labels`): every layer as it is, the output layer's units matched by label."""
    from ml.models import load_model

    saved = load_model(init.path / runs.MODEL_FILE)
    source = saved.get_layer("body") if any(layer.name == "body" for layer in saved.layers) else saved
    transfer(source, network, init.labels, labels)


def transfer(source, target, old_labels: list[str], new_labels: list[str]) -> None:
    """Weights of `source` into `target`, both built by the same builder; the last layer
    (the output, one unit per label) is remapped from `old_labels` to `new_labels`."""
    old, new = _weighted(source), _weighted(target)
    if [type(layer).__name__ for layer in old] != [type(layer).__name__ for layer in new]:
        raise DataError("init: its network is not the one this architecture builds")
    for a, b in zip(old[:-1], new[:-1]):
        weights = a.get_weights()
        if [w.shape for w in weights] != [w.shape for w in b.get_weights()]:
            raise DataError(f"init: layer {a.name} has other shapes than this architecture's")
        b.set_weights(weights)
    kernel, bias = old[-1].get_weights()
    new_kernel, new_bias = (np.array(w) for w in new[-1].get_weights())
    if kernel.shape[0] != new_kernel.shape[0]:
        raise DataError("init: its output layer has another input size")
    for j, label in enumerate(new_labels):
        if label in old_labels:
            i = old_labels.index(label)
            new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
        else:   # a new label: a fresh unit, its bias at the old ones' mean (neither favoured nor muted)
            new_bias[j] = float(np.mean(bias))
    new[-1].set_weights([new_kernel, new_bias])


def _weighted(model) -> list:
    return [layer for layer in model.layers if layer.weights]

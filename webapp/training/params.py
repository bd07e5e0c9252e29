"""A job's parameters as a typed object: what a training learns from and how, or what an
evaluation runs on what.

`of(row.params)` reads what a job row stores and `to_json()` writes it; the stored JSON keeps
its flat keys ("kind", "dataset", "data", every ml.config job setting, "activate",
"prepare_data", "init_dir"; an evaluation's "model_dir", "model", "clips"), so rows written
before this module read the same, and a row written before a setting existed reads as that
setting's default. The training settings are ml.config.TrainConfig itself (the one schema: a
new setting is a TrainConfig field and nothing here changes).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ml import config

DATASETS = {"default": "default synthetic set", "mini": "mini Speech Commands", "folder": "a folder"}
USER_SET = "user:"        # a data set key "user:<name>": <HARK_DATA>/user/<name> (webapp/datasets)
PREPARE = ("none", "missing", "rebuild")   # default set: use as is, make if missing, build afresh
EVALUATE = "evaluate"                       # "kind" of an evaluation job
TRAINING_KINDS = ("admin", "auto")          # the admin's form or API; the first start, regenerate


def dataset_label(keys: list[str], folders: list[str]) -> str:
    """How pages name a job's data sets; a server folder is named, never shown as a path."""
    names = []
    for kind, folder in zip(keys, folders):
        if kind == "folder":
            names.append(f"folder {Path(folder or '').name}")
        elif kind.startswith(USER_SET):
            names.append(f"data set {kind[len(USER_SET):]}")
        else:
            names.append(DATASETS.get(kind, kind))
    return " + ".join(names)


def _listed(value: Any, empty: Any) -> list:
    value = empty if value is None else value
    return list(value) if isinstance(value, list) else [value]


@dataclass
class TrainParams:
    """A training job. `train` holds its ml.config job settings, its `data` the job's folders
    (absolute, one per data set key); `runs` is decided by the consumer when it runs."""
    train: config.TrainConfig
    datasets: list[str] = field(default_factory=lambda: ["folder"])
    kind: str = "admin"
    activate: bool = False
    prepare_data: str = "none"
    init_dir: str | None = None       # the run directory of the version `train.init` names

    @property
    def folders(self) -> list[str]:
        return self.train.folders()

    def label(self) -> str:
        return dataset_label(self.datasets, self.folders)

    def describe(self) -> str:
        """One line saying what the job does, without server paths (pages show it to anyone)."""
        if self.train.mode == "teach":
            return f"teach the words of the {self.label()} to {self.train.init}"
        start = f", fine-tuning {self.train.init}" if self.train.init else ""
        return f"{self.train.arch} on the {self.label()}{start}"

    def settings(self) -> dict[str, Any]:
        """Every job setting by name (ml.config.JOB_SETTINGS)."""
        return {name: getattr(self.train, name) for name in config.JOB_SETTINGS}

    def train_config(self, data: str | list, runs: str) -> config.TrainConfig:
        """What ml.train gets: these settings on `data` (the consumer's form of the folders),
        `init` the version's run directory (the job names the version)."""
        init = (self.init_dir or self.train.init) if self.train.init else self.train.init
        return replace(self.train, data=data, runs=runs, init=init)

    def to_json(self) -> dict:
        one = len(self.datasets) == 1
        out = {"kind": self.kind, "dataset": self.datasets[0] if one else list(self.datasets),
               "data": self.folders[0] if one else self.folders, **self.settings(),
               "activate": bool(self.activate), "prepare_data": self.prepare_data}
        if self.init_dir is not None:
            out["init_dir"] = str(self.init_dir)
        return out

    @classmethod
    def from_json(cls, stored: dict) -> TrainParams:
        settings = {k: stored[k] for k in config.JOB_SETTINGS if k in stored}
        return cls(train=config.TrainConfig(data=_listed(stored.get("data"), ""), **settings),
                   datasets=[str(k) for k in _listed(stored.get("dataset"), "folder")],
                   kind=stored.get("kind") or "admin", activate=bool(stored.get("activate")),
                   prepare_data=stored.get("prepare_data") or "none",
                   init_dir=stored.get("init_dir"))


@dataclass
class EvalParams:
    """An evaluation job: the version in `model_dir` (named `model`) on every clip of `folder`."""
    folder: str
    model_dir: str
    model: str
    clips: int = 0
    kind: str = EVALUATE
    datasets: list[str] = field(default_factory=lambda: ["folder"])

    @property
    def folders(self) -> list[str]:
        return [self.folder]

    def label(self) -> str:
        return dataset_label(self.datasets, self.folders)

    def describe(self) -> str:
        return f"evaluate {self.model} on the {self.label()}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "dataset": "folder", "data": self.folder,
                "model_dir": self.model_dir, "model": self.model, "clips": self.clips}

    @classmethod
    def from_json(cls, stored: dict) -> EvalParams:
        return cls(folder=_listed(stored.get("data"), "")[0], model_dir=stored.get("model_dir") or "",
                   model=stored.get("model") or "", clips=stored.get("clips") or 0)


JobParams = TrainParams | EvalParams


def of(stored: dict | None) -> JobParams:
    """The parameters a job row stores (`TrainingJob.params`), typed."""
    stored = stored or {}
    if stored.get("kind") == EVALUATE:
        return EvalParams.from_json(stored)
    return TrainParams.from_json(stored)

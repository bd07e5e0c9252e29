"""What a training job is and what can be trained: job fields, features, architectures.

The one schema of a training job, free of TensorFlow so web workers can read
it. `TrainConfig`'s fields carry their default, bounds and help text; the CLI
arguments (ml/cli.py), the admin form (webapp/admin/forms.py), the stored job
parameters and the consumer's call (webapp/training/) are all derived from
them. The feature geometries and the architecture catalogue live here too:
ml/features.py and ml/models.py build from them, the charts label from them.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

import numpy as np

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE
from ml.dataset import DataError


class ConfigError(DataError):
    """A job setting that cannot be used; the message names it and says why."""


# The two labels that are not words: nobody speaking, and a word outside the vocabulary.
SILENCE, UNKNOWN = "_silence_", "_unknown_"


# ---- features -------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSpec:
    """The framing of a feature layer; saved with every model that uses it."""
    kind: str                  # "stft" (|STFT|), "logmel" (log-mel energies) or "wave" (raw)
    frame_length: int
    frame_step: int
    fft_length: int
    bins: int                  # output bins: fft_length // 2 + 1 for stft, mel bands for logmel
    low_hz: float = 0.0        # mel range (logmel only)
    high_hz: float = 0.0

    @classmethod
    def of(cls, params: dict | None, kind: str | None = None) -> FeatureSpec:
        """A spec from saved parameters (a run's config.json), else the catalogue's for `kind`."""
        if params:
            return cls(**params)
        if kind is None:
            raise KeyError("neither saved feature parameters nor a feature kind")
        return FEATURES[kind]

    def params(self) -> dict:
        return asdict(self)

    def shape(self) -> tuple[int, int, int]:
        """(frames, bins, 1) for a one-second clip."""
        return 1 + (CLIP_SAMPLES - self.frame_length) // self.frame_step, self.bins, 1

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre time (s) of each frame and centre frequency (Hz) of each bin, for charts."""
        frames, bins, _ = self.shape()
        times = (np.arange(frames) * self.frame_step + self.frame_length / 2) / SAMPLE_RATE
        if self.kind == "logmel":
            return times, mel_edges_hz(self.low_hz, self.high_hz, bins)[1:-1]
        return times, np.arange(bins) * SAMPLE_RATE / self.fft_length


def mel_edges_hz(low_hz: float, high_hz: float, bands: int) -> np.ndarray:
    """bands + 2 frequencies evenly spaced on the mel scale (HTK formula, as tf.signal uses)."""
    low, high = (1127.0 * math.log1p(hz / 700.0) for hz in (low_hz, high_hz))
    return 700.0 * (np.exp(np.linspace(low, high, bands + 2) / 1127.0) - 1.0)


FEATURES = {
    # The seed's feature: frame 255, step 128 -> 124 x 129.
    "stft": FeatureSpec("stft", frame_length=255, frame_step=128, fft_length=256, bins=129),
    # 25 ms window, 10 ms hop, 40 bands between 20 and 7600 Hz -> 98 x 40.
    "logmel": FeatureSpec("logmel", frame_length=400, frame_step=160, fft_length=512, bins=40,
                          low_hz=20.0, high_hz=7600.0),
    # The raw waveform itself, as a one-bin "image" of 16000 frames (16000 x 1 x 1), for
    # networks that learn their own filters; charts draw a log-mel of the clip for the eye.
    "wave": FeatureSpec("wave", frame_length=1, frame_step=1, fft_length=1, bins=1),
}


# ---- architectures ----------------------------------------------------------------

@dataclass(frozen=True)
class ArchInfo:
    """One entry of the catalogue; ml/models.py has a builder of the same name for each
    (an ensemble is made of other entries' runs instead)."""
    name: str
    features: str          # key of FEATURES, "embedding" (ml/embedding.py) or "ensemble"
    augment: bool          # training-time augmentation on by default
    about: str             # one line for menus and --help
    members: tuple = ()    # an ensemble's architectures, averaged
    recipe: tuple = ()     # as an ensemble member: (setting, value) pairs it trains with, and
    #                        ("epochs_factor", k): k times the job's epochs


HEAD_RECIPE = (("learning_rate", 1e-3), ("epochs_factor", 2), ("batch_size", 128))
ARCHS = {a.name: a for a in [
    ArchInfo("kws", "logmel", True, "small residual CNN on log-mel, 235K parameters"),
    ArchInfo("tutorial", "stft", False, "TensorFlow simple_audio tutorial CNN"),
    ArchInfo("seed", "stft", False, "the seed project's CNN (30M parameters)"),
    # The heads learn from 4x as many (cheap) examples as kws and like a gentler, longer schedule.
    ArchInfo("embed-mlp", "embedding", True,
             "MLP head on Google's pretrained speech embedding (learned from real speech)",
             recipe=HEAD_RECIPE),
    ArchInfo("embed-conv", "embedding", True, "1D-convolution head on the pretrained speech embedding",
             recipe=HEAD_RECIPE),
    ArchInfo("rawwave", "wave", True, "M5-style strided 1D CNN on the raw waveform"),
    ArchInfo("attention", "logmel", True,
             "convolutions then a small transformer over log-mel frames, attention pooling"),
    ArchInfo("ensemble", "ensemble", True, "default: kws, embed-mlp and embed-conv averaged "
             "(best on real speakers)", members=("kws", "embed-mlp", "embed-conv")),
]}
DEFAULT_ARCH = "ensemble"
SPLITS = {"speaker": "by speaker", "random": "random clips"}
MODES = {"auto": "teach when the data brings new words and the version can be taught, else "
                 "train every member",
         "teach": "teach the new words only (a gate head in seconds; the members keep what "
                  "they know)",
         "full": "train every member (from the version's weights when one is given)"}
EPOCHS, LEARNING_RATE = 10, 3e-3
FINE_TUNE_EPOCHS, FINE_TUNE_LR_SCALE = 3, 0.1


# ---- the training job ---------------------------------------------------------------

def _setting(default, help: str, label: str | None = None, low=None, high=None,
             choices: dict | None = None, flag: str | None = None, what: str | None = None,
             open_low: bool = False, radio: bool = False, many: bool = False):
    """A TrainConfig field. `label` puts it on the admin form (as radio buttons with `radio`);
    `low`/`high` (`open_low`: low itself excluded) and `choices` (value -> how menus say it)
    check it; `what` names it in messages; `flag` is its CLI option when not --<name>;
    `many`: the option may be given several times (a list)."""
    return field(default=default, metadata={
        "help": help, "label": label, "low": low, "high": high, "choices": choices, "flag": flag,
        "what": what, "open_low": open_low, "radio": radio, "many": many})


@dataclass
class TrainConfig:
    """Everything `ml.train.train` needs; `check()` refuses what cannot be trained."""
    data: str | list = _setting(MISSING, "folder with one sub-folder of clips per label; give "
                                "--data several times to train on several (labels: their union)",
                                many=True)
    arch: str = _setting(DEFAULT_ARCH, "network architecture", label="Architecture",
                         choices={a.name: f"{a.name}: {a.about}" for a in ARCHS.values()})
    init: str | None = _setting(None, "a run to start from (fine-tuning): its weights, its "
                                      "architecture, its labels (kept; new ones in the data "
                                      "are added)", label="Start from version")
    mode: str = _setting("auto", "how a version is trained from --init", label="Method",
                         choices=MODES, radio=True)
    epochs: int | None = _setting(None, f"training epochs (default: {EPOCHS} from scratch, "
                                  f"{FINE_TUNE_EPOCHS} fine-tuning, 30 teaching)", label="Epochs",
                                  low=1, high=500)
    batch_size: int = _setting(64, "clips per training step", label="Batch size", low=1, high=2048,
                           what="the batch size")
    learning_rate: float | None = _setting(
        None, f"peak learning rate (cosine decay; default: {LEARNING_RATE:g} from scratch, "
              f"{LEARNING_RATE * FINE_TUNE_LR_SCALE:g} fine-tuning, the heads' own recipe times "
              f"{FINE_TUNE_LR_SCALE:g})", label="Learning rate", low=1e-6, high=0.5, flag="--lr",
        what="the learning rate")
    patience: int = _setting(6, "early-stopping patience in epochs",
                             label="Early-stopping patience", low=1, high=500, what="the patience")
    augment: bool | None = _setting(None, "training-time augmentation (default: the "
                                          "architecture's own)", label="Augmentation")
    split: str = _setting("speaker", "80/10/10 split by speaker or by random clip",
                          label="Split", choices=SPLITS, radio=True)
    seed: int = _setting(0, "random seed of the split, the weights and the augmentation",
                         low=0, high=2**31 - 1)
    unknown_weight: float | None = _setting(
        None, "weight of _unknown_ in the served probabilities, (0, 1] "
              "(default: the data set's own from its dataset.json, else 1)", low=0.0, high=1.0,
        open_low=True)
    runs: str = _setting("runs", "where run directories go")

    def check(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))
        folders = self.folders()
        if not folders or not all(isinstance(d, str) and d.strip() for d in folders):
            raise ConfigError("data must name one or more folders")
        if len(set(folders)) < len(folders):
            raise ConfigError("a data folder is given twice")
        if self.init is not None and not (isinstance(self.init, str) and self.init.strip()):
            raise ConfigError("init must name a run directory")

    def resolved(self) -> TrainConfig:
        """The settings left to their default, decided: fine-tuning (`init`) takes fewer
        epochs at a tenth of the learning rate, so a version keeps what it knew."""
        tuned = self.init is not None
        return replace(self, epochs=self.epochs or (FINE_TUNE_EPOCHS if tuned else EPOCHS),
                       learning_rate=self.learning_rate or LEARNING_RATE * (
                           FINE_TUNE_LR_SCALE if tuned else 1.0))

    def folders(self) -> list[str]:
        """The data folders: `data` is one folder or a list of them."""
        return [self.data] if isinstance(self.data, str) else list(self.data)


# What a job asks of ml.train (the server decides `data` and `runs`).
JOB_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("data", "runs"))


def setting(name: str):
    """The dataclass field of TrainConfig named `name`."""
    return next(f for f in fields(TrainConfig) if f.name == name)


def form_settings() -> list:
    """The fields a person sets on the admin form, in order."""
    return [f for f in fields(TrainConfig) if f.metadata["label"]]


def check_value(name: str, value, what: str | None = None) -> None:
    """Raise ConfigError when `value` is not a valid setting `name` (None means "default");
    the message calls it `what` (default: the field's own wording)."""
    meta = setting(name).metadata
    what = what or meta["what"] or name
    if value is None:
        return
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{what} must be one of {', '.join(meta['choices'])} (not {value!r})")
    if meta["low"] is None:
        return
    kind = int if str(setting(name).type).startswith("int") or setting(name).type is int else float
    if not _is_number(value, kind):
        raise ConfigError(f"{what} must be {'a whole number' if kind is int else 'a number'}")
    low, high = meta["low"], meta["high"]
    if meta["open_low"] and not low < value <= high:
        raise ConfigError(f"{what} must be in ({low:g}, {high:g}]")
    if not meta["open_low"] and not low <= value <= high:
        raise ConfigError(f"{what} must be between {low:g} and {high:g}")


def _is_number(value, kind) -> bool:
    """A finite int or float (a bool is neither); a whole one where `kind` is int."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):  # whole and finite, however large (the bounds refuse it then)
        return True
    return math.isfinite(value) and (kind is float or value.is_integer())


def check_unknown_weight(weight: float, what: str = "unknown_weight") -> None:
    check_value("unknown_weight", weight, what)

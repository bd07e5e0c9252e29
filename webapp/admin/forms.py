"""The admin's form (Flask-WTF): "start a training job", its settings derived from ml.config.

A FlaskForm reads an HTML form or a JSON body alike, so the admin page and the
admin API validate a job the same way: every number goes through
ml.config.check_value. A JSON body is checked as JSON first (`_json_values`):
a number must be a JSON number (2.5 or true is no epoch count, "sNaN" no learning
rate), a box true or false. Every message is written for a person.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app, request
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ml import config, folders, runs
from ml.dataset import DataError
from webapp.datasets import store
from webapp.security import json_form_data
from webapp.security.json_input import request_json
from webapp.training import jobs
from webapp.training.params import TrainParams
from webapp.versions import registry

AUGMENT = {"arch": None, "on": True, "off": False}
AUGMENT_JSON = {None: "arch", True: "on", False: "off"}
BOXES = ("activate", "rebuild")


class _Setting:
    """A validator: the value must pass ml.config.check_value for its setting (bounds, finite)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, form, field):
        message = _refusal(self.name, field.data)
        if message:
            raise ValidationError(message)


def _refusal(name: str, value) -> str | None:
    """Why `value` is no valid setting `name` (ml.config.check_value), or None when it is."""
    try:
        config.check_value(name, value)
    except config.ConfigError as exc:
        return str(exc)
    except OverflowError:             # an integer too large for a float (10**400)
        meta = config.setting(name).metadata
        return f"{meta['what'] or name} must be between {meta['low']:g} and {meta['high']:g}"
    return None


def _setting_field(setting):
    """A form field for one ml.config.TrainConfig setting: its label, default, choices and bounds."""
    meta, label = setting.metadata, setting.metadata["label"]
    if setting.name == "init":       # a model version; the choices are the versions on disk
        return SelectField(label, default="", choices=[("", "nothing: train from scratch")],
                           validate_choice=False, description=(
                               "Fine-tune it: its weights, its architecture (the menu above is "
                               "then not used) and its labels, plus any new ones in the data"))
    if meta["choices"]:
        kind = RadioField if meta["radio"] else SelectField
        return kind(label, default=setting.default, choices=list(meta["choices"].items()),
                    validators=[InputRequired()])
    if "bool" in str(setting.type):   # tri-state: the architecture's default, on, off
        return SelectField(label, default="arch", choices=[
            ("arch", "the architecture's default"), ("on", "on"), ("off", "off")])
    # Left out or blank: the setting's default (webapp.training.jobs.make_params).
    kind = IntegerField if _is_int(setting) else FloatField
    return kind(label, default=setting.default, validators=[Optional(), _Setting(setting.name)])


def _is_int(setting) -> bool:
    return "int" in str(setting.type)


class _Checkboxes(SelectMultipleField):
    """Several choices as a list of check boxes."""
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class TrainForm(FlaskForm):
    """Where the data comes from and what happens after, then every ml.config form setting.

    Several data sets may be ticked (training on their union of labels); "start from
    version" fine-tunes a model version instead of training from scratch.
    """
    dataset = _Checkboxes("Data sets", default=["default"], choices=[
        ("default", "Default synthetic set"), ("mini", "Mini Speech Commands"),
        ("folder", "A folder on the server")])
    folder = StringField("Folder", validators=[Length(max=1024)],
                         description="one sub-folder per label with the audio files inside")
    activate = BooleanField("Make it the active model when it succeeds", default=False)
    rebuild = BooleanField("Build the default data set afresh first", default=False)

    def __init__(self, *args, **kwargs):
        self._json_errors: dict[str, str] = {}
        if "formdata" not in kwargs and not args and request.method == "POST" and request.is_json:
            kwargs["formdata"] = self._json_values()
        super().__init__(*args, **kwargs)
        self._init_version = None
        sets = store.list_sets(Path(current_app.config["HARK_DATA"]))
        self.dataset.choices = [c for c in self.dataset.choices if c[0] != "folder" and (
            c[0] != "mini" or jobs.dataset_available("mini"))] + [
            (s.key, f"Data set {s.title} ({sum(store.counts(s).values()):,} clips)")
            for s in sets if s.editable] + [("folder", "A folder on the server")]
        self.init.choices = self.init.choices[:1] + [
            (str(v.id), (f"{v.name} ({v.arch}, {len(v.labels or [])} labels"
                         f"{', active' if v.active else ''})"))
            for v in registry.all_versions() if registry.usable(Path(v.run_dir))]

    def _json_values(self):
        """The JSON body as form data, each value checked as JSON (errors kept for `validate`)."""
        body = request_json()
        several = body.pop("dataset") if isinstance(body, dict) and isinstance(
            body.get("dataset"), list) else None
        try:
            data = json_form_data(body)    # a 400 unless an object of single values
        finally:
            if several is not None:
                body["dataset"] = several
        if several is not None:
            if not several or not all(isinstance(key, str) for key in several):
                self._json_errors["dataset"] = ("dataset must be a data set's key or a list of "
                                                "keys (default, mini, user:<name>, folder)")
            for key in several:
                data.add("dataset", str(key))
        for name in [*(s.name for s in config.form_settings()), *BOXES]:
            if name not in body:            # left out: the setting's default, as for a blank number
                if name not in BOXES and config.setting(name).metadata["choices"]:
                    data[name] = config.setting(name).default
                continue
            value = body[name]
            data.pop(name, None)
            if name in BOXES:
                if not isinstance(value, bool) and value is not None:
                    self._json_errors[name] = f"{name} must be true or false"
                elif value:
                    data[name] = "y"
            elif name == "init":
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    self._json_errors[name] = "init must be a model version's id or name"
                else:
                    data[name] = str(value)
            elif name == "augment":
                if value in AUGMENT:
                    data[name] = value
                elif isinstance(value, bool) or value is None:
                    data[name] = AUGMENT_JSON[value]
                else:
                    self._json_errors[name] = "augment must be true, false or null (the architecture's own)"
            elif config.setting(name).metadata["choices"]:
                if isinstance(value, str):
                    data[name] = value
                elif value is not None:
                    choices = ", ".join(config.setting(name).metadata["choices"])
                    self._json_errors[name] = f"{name} must be one of {choices}"
            elif value is not None:
                message = _refusal(name, value)
                if message:
                    self._json_errors[name] = message
                    continue
                data[name] = str(int(value)) if _is_int(config.setting(name)) else repr(float(value))
        return data

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for name, message in self._json_errors.items():
            self[name].errors = [*self[name].errors, message]
        return ok and not self._json_errors and self._enough_labels()

    def settings(self) -> list:
        """The training settings' fields, in ml.config's order (the template loops over them)."""
        return [self[s.name] for s in config.form_settings()]

    def validate_dataset(self, field):
        keys = field.data or []
        if not keys:
            raise ValidationError("tick at least one data set")
        if "mini" in keys and not jobs.dataset_available("mini"):
            raise ValidationError("the mini Speech Commands set is not downloaded on this server "
                                  "(python -m ml data download)")
        for key in keys:
            if key.startswith(jobs.USER_SET):
                labels = _labels_with_clips(key)
                if not labels:
                    raise ValidationError(f"data set {key[len(jobs.USER_SET):]} has no clips yet")

    def validate_folder(self, field):
        if "folder" not in (self.dataset.data or []):
            return
        text = (field.data or "").strip()
        if not text:
            raise ValidationError("give the folder's path on the server")
        try:     # absolute, in the Speech Commands layout, audio in every label folder
            field.data = str(folders.check_folder(text, min_labels=2 if len(self.dataset.data) == 1 else 1,
                                                  every_label=True))
        except DataError as exc:
            raise ValidationError(str(exc)) from None

    def validate_init(self, field):
        if field.data in (None, ""):
            field.data = None
            return
        found = registry.all_versions()
        version = next((v for v in found if str(v.id) == field.data), None) or \
            next((v for v in found if v.name == field.data), None)
        if version is None:
            raise ValidationError(f"there is no model version {field.data[:60]!r} to start from")
        if not _has_weights(Path(version.run_dir)):
            raise ValidationError(f"model version {version.name} has no trained weights on disk "
                                  f"to start from")
        self._init_version = version

    def _enough_labels(self) -> bool:
        """Data sets of the admin's own alone must hold 2 labels (the version's count too);
        the built-in sets and server folders are checked to hold several on their own."""
        keys = self.dataset.data or []
        users = [k for k in keys if k.startswith(jobs.USER_SET)]
        if self.dataset.errors or self.init.errors or not users or len(users) < len(keys):
            return True
        labels = set().union(*(_labels_with_clips(k) for k in users))
        labels |= set(self._init_version.labels or []) if self._init_version else set()
        if len(labels) >= 2:
            return True
        self.dataset.errors = [*self.dataset.errors, (
            f"the data sets hold clips of {len(labels)} label(s); a model needs at least 2 "
            f"(record another word, or start from a version)")]
        return False

    def params(self, kind: str = "admin") -> TrainParams:
        """The validated form as job parameters (webapp.training.jobs.make_params)."""
        values = {field.name: field.data for field in self.settings()}
        values["augment"] = AUGMENT[values["augment"]]
        init_dir = None
        if self._init_version is not None:     # the job names the version; ml.train gets its folder
            values.update(init=self._init_version.name, arch=self._init_version.arch or values["arch"])
            init_dir = self._init_version.run_dir
        keys = self.dataset.data
        return jobs.make_params(
            dataset=keys[0] if len(keys) == 1 else keys, data=self.folder.data,
            activate=self.activate.data, init_dir=init_dir,
            prepare_data="rebuild" if self.rebuild.data else "missing", kind=kind, **values)


for _setting in config.form_settings():
    setattr(TrainForm, _setting.name, _setting_field(_setting))


def _labels_with_clips(key: str) -> set[str]:
    """The labels of a user data set that hold clips (none when it is gone)."""
    try:
        ds = store.get(Path(current_app.config["HARK_DATA"]), key)
    except store.DataSetError:
        return set()
    return {label for label, n in store.counts(ds).items() if n}


def _has_weights(run_dir: Path) -> bool:
    """A run training can start from: its trained model file(s), beside its serving export."""
    try:
        members = runs.members_of(run_dir)
    except (OSError, ValueError):
        return False
    return all((m / runs.MODEL_FILE).is_file() for m in (members or [run_dir]))

"""The admin's form (Flask-WTF): "start a training job", its settings derived from ml.config.

A FlaskForm reads an HTML form or a JSON body alike, so the admin page and the
admin API validate a job the same way: every number goes through
ml.config.check_value. A JSON body is checked as JSON first (`_json_values`):
a number must be a JSON number (2.5 or true is no epoch count, "sNaN" no learning
rate), a box true or false. Every message is written for a person.
"""
from __future__ import annotations

from pathlib import Path

from flask import request
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from ml import config
from ml.dataset import DataError
from webapp.security import json_form_data
from webapp.training import jobs

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


class TrainForm(FlaskForm):
    """Where the data comes from and what happens after, then every ml.config form setting."""
    dataset = RadioField("Data set", default="default", choices=[
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
        if not jobs.dataset_available("mini"):
            self.dataset.choices = [c for c in self.dataset.choices if c[0] != "mini"]

    def _json_values(self):
        """The JSON body as form data, each value checked as JSON (errors kept for `validate`)."""
        data = json_form_data()        # a 400 unless an object of single values
        body = request.get_json()
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
        return ok and not self._json_errors

    def settings(self) -> list:
        """The training settings' fields, in ml.config's order (the template loops over them)."""
        return [self[s.name] for s in config.form_settings()]

    def validate_dataset(self, field):
        if field.data == "mini" and not jobs.dataset_available("mini"):
            raise ValidationError("the mini Speech Commands set is not downloaded on this server "
                                  "(python -m ml data download)")

    def validate_folder(self, field):
        if self.dataset.data != "folder":
            return
        text = (field.data or "").strip()
        if not text:
            raise ValidationError("give the folder's path on the server")
        field.data = check_folder(text)

    def params(self, kind: str = "admin") -> dict:
        """The validated form as job parameters (webapp.training.jobs.make_params)."""
        values = {field.name: field.data for field in self.settings()}
        values["augment"] = AUGMENT[values["augment"]]
        return jobs.make_params(
            dataset=self.dataset.data, data=self.folder.data, activate=self.activate.data,
            prepare_data="rebuild" if self.rebuild.data else "missing", kind=kind, **values)


for _setting in config.form_settings():
    setattr(TrainForm, _setting.name, _setting_field(_setting))


def check_folder(path: Path | str) -> str:
    """A data folder in the Speech Commands layout, or a ValidationError saying what is wrong."""
    from ml.dataset import list_clips

    try:
        path = jobs.server_path(str(path))
    except DataError as exc:
        raise ValidationError(str(exc)) from None
    if not path.is_absolute():
        raise ValidationError("give an absolute path (it is a folder on the server)")
    try:
        if not path.is_dir():
            raise ValidationError(f"{path} is not a folder on the server")
        labels, clips = list_clips(path)
    except (DataError, OSError) as exc:
        raise ValidationError(str(exc)) from None
    if len(labels) < 2:
        raise ValidationError(f"{path} has {len(labels)} label folder(s); at least 2 are needed")
    empty = sorted(set(labels) - {c.label for c in clips})
    if empty:
        raise ValidationError(f"label folders without audio: {', '.join(empty)}")
    return str(path.resolve())

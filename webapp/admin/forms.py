"""The admin's form (Flask-WTF): "start a training job", its settings derived from ml.config.

A FlaskForm reads an HTML form or a JSON body alike, so the admin page and the
admin API validate a job the same way. Every message is written for a person.
"""
from __future__ import annotations

from pathlib import Path

from flask_wtf import FlaskForm
from wtforms import BooleanField, DecimalField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from ml import config
from webapp.training import jobs

AUGMENT = {"arch": None, "on": True, "off": False}


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
    what = meta["what"] or setting.name
    bounds = NumberRange(meta["low"], meta["high"],
                         message=f"{what} must be between {meta['low']:g} and {meta['high']:g}")
    # Left out or blank: the setting's default (webapp.training.jobs.make_params).
    if "int" in str(setting.type):
        return IntegerField(label, default=setting.default, validators=[Optional(), bounds])
    return DecimalField(label, default=setting.default, places=None, validators=[Optional(), bounds])


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
        super().__init__(*args, **kwargs)
        if not jobs.dataset_available("mini"):
            self.dataset.choices = [c for c in self.dataset.choices if c[0] != "mini"]

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
        field.data = check_folder(Path(text))

    def params(self, kind: str = "admin") -> dict:
        """The validated form as job parameters (webapp.training.jobs.make_params)."""
        values = {field.name: field.data for field in self.settings()}
        values["augment"] = AUGMENT[values["augment"]]
        if values["learning_rate"] is not None:
            values["learning_rate"] = float(values["learning_rate"])
        return jobs.make_params(
            dataset=self.dataset.data, data=self.folder.data, activate=self.activate.data,
            prepare_data="rebuild" if self.rebuild.data else "missing", kind=kind, **values)


for _setting in config.form_settings():
    setattr(TrainForm, _setting.name, _setting_field(_setting))


def check_folder(path: Path) -> str:
    """A data folder in the Speech Commands layout, or a ValidationError saying what is wrong."""
    from ml.dataset import DataError, list_clips

    path = path.expanduser()
    if not path.is_absolute():
        raise ValidationError("give an absolute path (it is a folder on the server)")
    if not path.is_dir():
        raise ValidationError(f"{path} is not a folder on the server")
    try:
        labels, clips = list_clips(path)
    except (DataError, OSError) as exc:
        raise ValidationError(str(exc)) from None
    if len(labels) < 2:
        raise ValidationError(f"{path} has {len(labels)} label folder(s); at least 2 are needed")
    empty = sorted(set(labels) - {c.label for c in clips})
    if empty:
        raise ValidationError(f"label folders without audio: {', '.join(empty)}")
    return str(path.resolve())

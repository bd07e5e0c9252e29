"""The admin's forms (Flask-WTF): login and "start a training job".

A FlaskForm reads an HTML form or a JSON body alike, so the admin page and the
admin API validate a job the same way. Every message is written for a person.
"""
from __future__ import annotations

from pathlib import Path

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from webapp import jobs
from webapp.archs import architectures

MAX_EPOCHS, MAX_BATCH = 500, 2048


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _positive(name: str, low, high):
    return NumberRange(low, high, message=f"{name} must be between {low:g} and {high:g}")


class TrainForm(FlaskForm):
    dataset = RadioField("Data set", default="default", choices=[
        ("default", "Default synthetic set"), ("mini", "Mini Speech Commands"),
        ("folder", "A folder on the server")])
    folder = StringField("Folder", validators=[Length(max=1024)],
                         description="one sub-folder per label with the audio files inside")
    arch = SelectField("Architecture", default="kws")
    epochs = IntegerField("Epochs", default=10, validators=[
        InputRequired("give the number of epochs"), _positive("epochs", 1, MAX_EPOCHS)])
    batch_size = IntegerField("Batch size", default=64, validators=[
        InputRequired("give a batch size"), _positive("the batch size", 1, MAX_BATCH)])
    learning_rate = DecimalField("Learning rate", default=0.003, places=None, validators=[
        InputRequired("give a learning rate"),
        NumberRange(min=0.000001, max=0.5, message="the learning rate must be between 1e-6 and 0.5")])
    patience = IntegerField("Early-stopping patience", default=6, validators=[
        Optional(), _positive("the patience", 1, MAX_EPOCHS)])
    augment = SelectField("Augmentation", default="arch", choices=[
        ("arch", "the architecture's default"), ("on", "on"), ("off", "off")])
    split = RadioField("Split", default="speaker", choices=[
        ("speaker", "by speaker"), ("random", "random clips")])
    activate = BooleanField("Make it the active model when it succeeds", default=False)
    rebuild = BooleanField("Build the default data set afresh first", default=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arch.choices = [(a.name, f"{a.name}: {a.about}") for a in architectures().values()]
        self.arch.validators = [InputRequired()]
        if not jobs.dataset_available("mini"):
            self.dataset.choices = [c for c in self.dataset.choices if c[0] != "mini"]

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
        """The validated form as job parameters (webapp.jobs.make_params)."""
        augment = {"arch": None, "on": True, "off": False}[self.augment.data]
        return jobs.make_params(
            dataset=self.dataset.data, data=self.folder.data, arch=self.arch.data,
            epochs=self.epochs.data, batch_size=self.batch_size.data,
            learning_rate=float(self.learning_rate.data), augment=augment, split=self.split.data,
            activate=self.activate.data, patience=self.patience.data or 6,
            prepare_data="rebuild" if self.rebuild.data else "missing", kind=kind)


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

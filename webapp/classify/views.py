"""The pages for classifying audio. They hold no data of their own: the scripts call the JSON API."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from webapp.classify.detection import sensitivity_choices

bp = Blueprint("pages", __name__)


@bp.get("/")
def listen():
    """Record one word, or listen continuously."""
    return render_template("listen.html", sensitivities=_sensitivities())


@bp.get("/upload")
def upload():
    """Classify audio files dropped or picked, one result card each."""
    return render_template("upload.html", sensitivities=_sensitivities())


def _sensitivities() -> list[dict]:
    return sensitivity_choices(current_app.extensions["hark.models"].peek())

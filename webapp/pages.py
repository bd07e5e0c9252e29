"""The HTML pages. They hold no data of their own: the scripts call the JSON API."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from ml import runs
from webapp.labels import display_names

bp = Blueprint("pages", __name__)

# (endpoint, title) of the main navigation; later pages add themselves here.
NAV = [("pages.listen", "Listen"), ("pages.upload", "Upload"), ("pages.training", "Training"),
       ("admin.index", "Admin")]


def _model_context() -> dict:
    store = current_app.extensions["hark.models"]
    classifier = store.peek()
    return {
        "classifier": classifier,
        "model_error": store.error,
        "display_names": display_names(classifier.labels) if classifier else {},
        "low_confidence": current_app.config["HARK_LOW_CONFIDENCE"],
        "max_upload": current_app.config["MAX_CONTENT_LENGTH"],
    }


@bp.app_context_processor
def navigation():
    return {"nav": NAV}


@bp.get("/")
def listen():
    """Record one word, or listen continuously."""
    return render_template("listen.html", page="pages.listen", **_model_context())


@bp.get("/upload")
def upload():
    """Classify audio files dropped or picked, one result card each."""
    return render_template("upload.html", page="pages.upload", **_model_context())


@bp.get("/training")
def training():
    """Training status: the active model, what it knows and how well it tested."""
    context = _model_context()
    classifier = context["classifier"]
    metrics = None
    if classifier is not None:
        metrics_file = classifier.run_dir / "metrics.json"
        metrics = runs.read_json(metrics_file) if metrics_file.is_file() else None
    from webapp.training_status import snapshot

    return render_template("training.html", page="pages.training", metrics=metrics,
                           status=snapshot(), **context)

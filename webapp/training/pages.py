"""The public Training page: the active model, the running job, the finished ones."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from ml import runs
from webapp.training.status import snapshot

bp = Blueprint("training", __name__)


@bp.get("/training")
def index():
    """Training status: the active model, what it knows and how well it tested."""
    classifier = current_app.extensions["hark.models"].peek()
    metrics = None
    if classifier is not None:
        metrics_file = classifier.run_dir / "metrics.json"
        metrics = runs.read_json(metrics_file) if metrics_file.is_file() else None
    return render_template("training.html", metrics=metrics, status=snapshot())

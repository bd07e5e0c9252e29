"""The public Training page (the running job first, then the active model, then finished
jobs) and one page per job: its curves, log, parameters, result and its version's gallery."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template, url_for

from ml import runs
from ml.config import JOB_SETTINGS, setting
from webapp.database import db
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.training.api import job_record, snapshot
from webapp.versions import accuracy

bp = Blueprint("training", __name__)


@bp.get("/training")
def index():
    """Training status: the running job, the active model and how well it tested, past jobs."""
    classifier = current_app.extensions["hark.models"].peek()
    metrics, measures = None, []
    if classifier is not None:
        metrics_file = classifier.run_dir / "metrics.json"
        metrics = runs.read_json(metrics_file) if metrics_file.is_file() else None
        measures = accuracy.measures(classifier.run_dir)
    return render_template("training.html", metrics=metrics, measures=measures, status=snapshot())


def _result_links(job: TrainingJob, public: dict) -> dict:
    """Where a job's outcome can be looked at: its version's gallery, its evaluation."""
    links: dict[str, str | list[dict] | None] = {"gallery": None, "measures": []}
    if public.get("evaluation"):
        links["gallery"] = url_for("gallery.index", source=f"eval:{public['evaluation']['id']}")
        return links
    version = db.session.scalar(db.select(ModelVersion).where(ModelVersion.job_id == job.id))
    run_dir = Path(version.run_dir) if version else (Path(job.run_dir) if job.run_dir else None)
    if run_dir is not None and (run_dir / "predictions.json").is_file():
        links["gallery"] = url_for("gallery.index", source=f"run:{run_dir.name}")
        links["measures"] = accuracy.measures(run_dir)
    return links


def _settings(public: dict) -> list[tuple[str, object]]:
    """(label, value) of the job's training settings, as the admin form names them."""
    out = []
    for name in JOB_SETTINGS:
        value = public.get(name)
        if value is None:
            continue
        meta = setting(name).metadata
        if name == "init":
            value = Path(str(value)).name          # a run, named, never a server path
        elif isinstance(value, bool):
            value = "on" if value else "off"
        elif meta.get("choices") and value in meta["choices"]:
            value = meta["choices"][value]
        out.append((meta.get("label") or name.replace("_", " ").capitalize(), value))
    return out


@bp.get("/training/jobs/<int:job_id>")
def job(job_id: int):
    """One job: live while it runs (static/js/job.js), its record once finished."""
    row, public = job_record(job_id)
    settings = [] if jobs.is_evaluation(row.params) else _settings(public)
    return render_template("job.html", job=public, settings=settings,
                           links=_result_links(row, public))

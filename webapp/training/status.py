"""Public, read-only training status: what trains now, how it goes, what finished before.

GET /api/training is polled every second by the Training page (and every few
seconds by the "no model yet" panel). Jobs are trainings and the admin's folder
evaluations (kind "evaluate": progress in clips, "steps", and the stored
evaluation's id and accuracy once done, "evaluation"). It shows no server paths and no user
names: the data set of a job is named by its kind, and the job's own folder
path is replaced in its log and error lines.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from ml.config import JOB_SETTINGS
from webapp import figures
from webapp.database import db
from webapp.errors import ApiError
from webapp.settings import ROOT
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs, versions

bp = Blueprint("training_status", __name__, url_prefix="/api")
PUBLIC = ("id", "kind", "what", "state", "stage", "stalled", "dataset", *JOB_SETTINGS, "epoch",
          "steps", "eta_s", "created_at", "started_at", "finished_at", "heartbeat_at",
          "cancel_requested", "error", "test_accuracy", "model", "evaluation", "version", "duration_s")


def _scrub(text: str | None, job: TrainingJob) -> str | None:
    """Server paths out of text shown to anyone."""
    if not text:
        return text
    data = (job.params or {}).get("data")
    if data:
        text = text.replace(data, jobs.dataset_label(job.params))
    for root, name in ((current_app.config["HARK_RUNS"], "runs"),
                       (current_app.config["HARK_DATA"], "data"), (str(ROOT), ".")):
        text = text.replace(str(Path(root).resolve()), name).replace(str(root), name)
    return text


def public_job(job: TrainingJob, detail: bool = False, summary: dict | None = None) -> dict:
    summary = summary or jobs.summary(job)
    out = {k: summary.get(k) for k in PUBLIC}
    out["error"] = _scrub(out["error"], job)
    if detail:
        rows = jobs.progress_rows(job)
        out["progress"] = rows
        out["log_tail"] = _scrub(job.log_tail, job)
        out["figures"] = figures.training_curves(rows) if rows else None
    return out


def snapshot() -> dict:
    """Everything the Training page shows, with `rev` changing whenever any of it does."""
    current = jobs.current()
    finished = jobs.recent(20, finished_only=True)
    active = db.session.scalar(db.select(ModelVersion).where(ModelVersion.active.is_(True)))
    store = current_app.extensions["hark.models"].peek()
    queued = db.session.scalar(db.select(db.func.count()).select_from(TrainingJob)
                               .where(TrainingJob.state == "queued")) or 0
    body = {
        "active_model": ({"name": active.name, "test_accuracy": active.test_accuracy,
                          "activated_at": versions.summary(active)["activated_at"]}
                         if active else ({"name": store.version, "test_accuracy": None,
                                          "activated_at": None} if store else None)),
        "current": public_job(current, detail=True) if current else None,
        "queued": queued,
        "history": [public_job(j, summary=s) for j, s in zip(finished, jobs.summaries(finished))],
    }
    body["rev"] = hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return body


@bp.get("/training")
def status():
    """The running (or next queued) job with its curves and log, and the finished jobs."""
    response = jsonify(snapshot())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/training/jobs/<int:job_id>")
def job_detail(job_id: int):
    """One job with its per-epoch rows, curves and log (finished jobs in the history)."""
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, f"no training job {job_id}")
    return jsonify(public_job(job, detail=True))

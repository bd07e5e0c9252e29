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
from typing import Any

from flask import Blueprint, current_app, jsonify

from ml.config import JOB_SETTINGS
from webapp import figures
from webapp.database import db, utcnow
from webapp.errors import ApiError
from webapp.security import privacy
from webapp.settings import ROOT
from webapp.tables import JobEpoch, ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.versions import accuracy, registry

bp = Blueprint("training_status", __name__, url_prefix="/api")
PUBLIC = ("id", "kind", "what", "state", "stage", "stalled", "dataset", *JOB_SETTINGS, "epoch",
          "steps", "eta_s", "created_at", "started_at", "finished_at", "heartbeat_at",
          "cancel_requested", "error", "test_accuracy", "model", "evaluation", "version", "version_id",
          "duration_s", "activation", "thin_labels")


def _scrub(text: str | None, job: TrainingJob) -> str | None:
    """Server paths out of text shown to anyone: the job's folders by name, then every other
    path (absolute or relative, e.g. an init version's run folder) cut to its last part."""
    if not text:
        return text
    params = jobs.params_of(job)
    for data in params.folders:
        if data:
            text = text.replace(data, params.label())
    for root, name in ((current_app.config["HARK_RUNS"], "runs"),
                       (current_app.config["HARK_DATA"], "data"), (str(ROOT), ".")):
        text = text.replace(str(Path(root).resolve()), name).replace(str(root), name)
    return privacy.scrub(text)


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


def eta_left_s(job: TrainingJob) -> float | None:
    """The job's estimate counted down since it was made (at its last epoch row, or its last
    report): a page polling every second shows time running out, not a figure frozen for a
    whole epoch, and 0 once the estimate has passed (the page then says "finishing")."""
    if job.state != "running" or job.eta_s is None:
        return None
    made = db.session.scalar(db.select(JobEpoch.created_at).where(JobEpoch.job_id == job.id)
                             .order_by(JobEpoch.epoch.desc()).limit(1)) or job.heartbeat_at
    if made is None:
        return job.eta_s
    return round(max(0.0, job.eta_s - (utcnow() - made).total_seconds()), 1)


def snapshot() -> dict:
    """Everything the Training page shows, with `rev` changing whenever any of it does."""
    current = jobs.current()
    finished = jobs.recent(20, finished_only=True)
    active = db.session.scalar(db.select(ModelVersion).where(ModelVersion.active.is_(True)))
    store = current_app.extensions["hark.models"].peek()
    queued = db.session.scalar(db.select(db.func.count()).select_from(TrainingJob)
                               .where(TrainingJob.state == "queued")) or 0
    body: dict[str, Any] = {
        "active_model": ({"name": active.name, "test_accuracy": active.test_accuracy,
                          "activated_at": registry.summary(active)["activated_at"]}
                         if active else ({"name": store.version, "test_accuracy": None,
                                          "activated_at": None} if store else None)),
        "current": public_job(current, detail=True) if current else None,
        "queued": queued,
        "history": [public_job(j, summary=s) for j, s in zip(finished, jobs.summaries(finished))],
        # With nothing running, the last finished job keeps its curves on the page.
        "last": public_job(finished[0], detail=True) if finished and not current else None,
    }
    body["rev"] = hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]
    if body["active_model"] is not None:    # each figure says what it was measured on
        body["active_model"]["measures"] = accuracy.measures(active.run_dir if active else store.run_dir)
    if current is not None:            # changes every second: outside `rev`
        body["current"]["eta_left_s"] = eta_left_s(current)
    return body


@bp.get("/training")
def status():
    """The running (or next queued) job with its curves and log, and the finished jobs."""
    response = jsonify(snapshot())
    response.headers["Cache-Control"] = "no-store"
    return response


def job_record(job_id: int) -> tuple[TrainingJob, dict]:
    """A job's row and its public detail (rows, curves, log, time left); 404 when unknown."""
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, f"no training job {job_id}")
    return job, {**public_job(job, detail=True), "eta_left_s": eta_left_s(job)}


@bp.get("/training/jobs/<int:job_id>")
def job_detail(job_id: int):
    """One job with its per-epoch rows, curves and log (finished jobs in the history)."""
    response = jsonify(job_record(job_id)[1])
    response.headers["Cache-Control"] = "no-store"
    return response

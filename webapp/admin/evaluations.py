"""Admin only: evaluate a model on a folder of the server and keep the result for the gallery.

POST /admin/api/evaluations checks the folder (a path, in the Speech Commands layout,
with labels the model knows: a few directory listings) and answers 202 with a queued
"evaluate" job; the queue consumer does the work (webapp/training/runner.py ->
webapp.versions.evaluations.evaluate_and_store), so a folder of any size never holds a
web worker. GET /gallery/evaluate is the form; its script follows the job's progress
(GET /admin/api/jobs/<id>, webapp/admin/api.py) and links the stored result when it is done.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from sqlalchemy import select

from ml.dataset import DataError, list_clips
from ml.folders import check_folder
from ml.runs import labels_of
from webapp.auth import admin_required, current_username
from webapp.database import db
from webapp.datasets import store
from webapp.errors import ApiError
from webapp.gallery import data as gallery_data
from webapp.security import rate_limited
from webapp.security.json_input import request_json
from webapp.settings import ROOT
from webapp.tables import TrainingJob
from webapp.training import jobs
from webapp.training.params import EvalParams
from webapp.versions import evaluations

log = logging.getLogger(__name__)
bp = Blueprint("gallery_admin", __name__)
MAX_CLIPS = 100_000     # one stored evaluation is one JSON file the gallery reads whole


def _evaluation_jobs(limit: int = 10) -> list[TrainingJob]:
    """The latest evaluation jobs, newest first (the form shows their progress)."""
    recent = db.session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(200))
    return [job for job in recent if jobs.is_evaluation(job.params)][:limit]


@bp.get("/gallery/evaluate")
@admin_required
def form():
    """Pick a model version and a server folder; the result opens in the gallery."""
    sources = gallery_data.list_sources()
    runs = [s for s in sources if s.kind == "run"]
    recent = jobs.summaries(_evaluation_jobs())
    follow = next((j for j in recent if j["state"] in ("queued", "running")), None)
    return render_template("gallery_evaluate.html", runs=runs,
                           evaluations=[s for s in sources if s.kind == "evaluation"],
                           max_clips=MAX_CLIPS, recent_jobs=recent, follow=follow)


def _values() -> dict:
    """The request's folder (or data set) and model: a JSON object or a form."""
    if not request.is_json:
        return {name: request.form.get(name) for name in ("folder", "dataset", "model")}
    body = request_json()
    if not isinstance(body, dict):
        raise ApiError(400, 'send a JSON object: {"folder": "/path/on/the/server", "model": "run:<id>"}')
    for name in ("folder", "dataset", "model"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ApiError(400, f"{name} must be a string")
    return body


def _folder(values: dict) -> str:
    """The folder to evaluate on: a data set by its key (a data set's page sends it, so no
    server path goes to the browser), else the folder typed."""
    if not values.get("dataset"):
        return values.get("folder") or ""
    try:
        return str(store.get(Path(current_app.config["HARK_DATA"]), values["dataset"]).path)
    except store.DataSetError as exc:
        raise ApiError(exc.status, str(exc)) from None


@bp.post("/admin/api/evaluations")
@admin_required
@rate_limited("HARK_RATE_UPLOAD")
def create():
    """Body (JSON or form): folder (absolute path on the server, or relative to the checkout),
    model (a run source key; default the active model). 202 with the queued job, `job_url`
    to follow it; the finished job names the stored evaluation."""
    values = _values()
    source = gallery_data.get_source(values.get("model") or None)
    if source.kind != "run" or source.model_dir is None:
        raise ApiError(400, "model must be a model version (run:<id>), not an evaluation")
    try:
        path = check_folder(_folder(values), base=ROOT)
        labels, clips = list_clips(path)
        known = labels_of(source.model_dir)
    except DataError as exc:
        raise ApiError(400, str(exc)) from None
    except (OSError, ValueError) as exc:      # ml.runs: the run's own files are unreadable
        raise ApiError(409, f"the model version {source.id} cannot be read: {exc}") from None
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ApiError(400, f"{path}: label(s) {', '.join(unknown)} unknown to the model "
                            f"(it knows {', '.join(known)})")
    if len(clips) > MAX_CLIPS:
        raise ApiError(413, f"{path} has {len(clips):,} clips; at most {MAX_CLIPS:,} are evaluated at once")
    try:
        job = jobs.submit(jobs.make_eval_params(path, source.model_dir, source.id, len(clips)),
                          current_username())
    except jobs.JobError as exc:      # the version was deleted meanwhile
        raise ApiError(exc.status, str(exc)) from None
    log.info("evaluation job %s: model %s on %s (%d clips)", job.id, source.id, path, len(clips))
    body = jobs.summary(job, admin=True)
    body["job_url"] = url_for("admin_api.job", job_id=job.id)
    return jsonify(body), 202


def run_job(job_id: int, params: EvalParams, log: jobs.LogTail, should_stop) -> dict:
    """An "evaluate" job in the queue consumer: its progress counted in clips; the job's metrics
    name the stored evaluation."""
    jobs.set_stage(job_id, "loading the model")
    log(f"{params.describe()}: {params.clips:,} clips")
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else None
        jobs.record_progress(job_id, done, total, eta)

    result = evaluations.evaluate_and_store(params.model_dir, params.folder, evaluations.folder(),
                                            log=log, progress=progress, should_stop=should_stop)
    log(f"evaluation {result['id']}: accuracy {result['accuracy']:.1%} on {result['n']:,} clips")
    return {k: result[k] for k in ("id", "accuracy", "n", "model")}

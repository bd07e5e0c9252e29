"""The admin's JSON API (/admin/api/...): the actions of the admin page (webapp/admin/views.py)
for programs and scripts; send the session cookie and the X-CSRFToken header. Every route
needs an admin login; refusals are JSON errors with their status.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from webapp.admin import activation
from webapp.admin.forms import TrainForm
from webapp.auth import admin_required, current_username
from webapp.database import db
from webapp.errors import ApiError
from webapp.security.json_input import request_json
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.training.params import TrainParams
from webapp.versions import registry

bp = Blueprint("admin_api", __name__, url_prefix="/admin/api")


def regenerate_params() -> TrainParams:
    """The default job on a freshly rebuilt default set ("activate" from the form or JSON body;
    the page's form posts the same)."""
    if request.is_json:
        body = request_json(empty={})
        if not isinstance(body, dict):
            raise ApiError(400, 'send a JSON object, e.g. {"activate": true}')
        activate = body.get("activate", False)
        if not isinstance(activate, bool):
            raise ApiError(400, "activate must be true or false")
    else:
        activate = request.form.get("activate") in ("y", "on", "true", "1")
    return jobs.make_params(epochs=current_app.config["HARK_AUTO_TRAIN_EPOCHS"],
                            activate=activate, prepare_data="rebuild")


def version_or_404(version_id: int) -> ModelVersion:
    version = db.session.get(ModelVersion, version_id)
    if version is None:
        raise ApiError(404, f"no model version {version_id}")
    return version


def _api(action):
    """Run a job or version action; its refusal (JobError, VersionError) is a JSON error."""
    try:
        return action()
    except (jobs.JobError, registry.VersionError) as exc:
        raise ApiError(exc.status, str(exc)) from None


@bp.get("/jobs")
@admin_required
def list_jobs():
    limit = min(max(request.args.get("limit", 30, type=int) or 30, 1), 200)
    return jsonify(jobs=jobs.summaries(jobs.recent(limit), admin=True))


@bp.post("/jobs")
@admin_required
def start_job():
    form = TrainForm()
    if not form.validate():
        first = next(iter(form.errors.items()))
        return jsonify(error=f"{first[0]}: {first[1][0]}", fields=form.errors), 400
    started = _api(lambda: jobs.submit(form.params(), current_username()))
    return jsonify(jobs.summary(started, admin=True)), 202


@bp.get("/jobs/<int:job_id>")
@admin_required
def job(job_id: int):
    row = db.session.get(TrainingJob, job_id)
    if row is None:
        raise ApiError(404, f"no training job {job_id}")
    summary = jobs.summary(row, admin=True)
    if summary["evaluation"]:
        summary["gallery_url"] = url_for("gallery.index", source=f"eval:{summary['evaluation']['id']}")
    return jsonify({**summary, "log_tail": row.log_tail, "progress": jobs.progress_rows(row)})


@bp.post("/jobs/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id: int):
    return jsonify(jobs.summary(_api(lambda: jobs.cancel(job_id)), admin=True))


@bp.post("/regenerate")
@admin_required
def regenerate():
    return jsonify(jobs.summary(jobs.submit(regenerate_params(), current_username()), admin=True)), 202


@bp.get("/versions")
@admin_required
def list_versions():
    return jsonify(versions=[registry.summary(v) for v in registry.all_versions()])


@bp.get("/versions/<int:version_id>/activation")
@admin_required
def activation_change(version_id: int):
    """What activating the version would change (the confirmation page's figures)."""
    return jsonify(activation.change(version_or_404(version_id)))


@bp.post("/versions/<int:version_id>/activate")
@admin_required
def activate(version_id: int):
    return jsonify(registry.summary(_api(lambda: registry.activate(version_id, current_username()))))


@bp.delete("/versions/<int:version_id>")
@admin_required
def delete_version(version_id: int):
    name = _api(lambda: registry.delete(version_id))
    return jsonify(deleted=name)

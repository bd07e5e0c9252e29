"""The admin side: start and cancel training jobs, activate and delete model versions.

Pages (/admin...) are HTML forms that post and redirect, so they work without
scripts; static/js/admin.js only refreshes the tables. The same actions are a
JSON API under /admin/api/ for programs (send the session cookie and the
X-CSRFToken header). Every route here needs an admin login.
"""
from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from webapp.admin import activation
from webapp.admin.forms import TrainForm
from webapp.auth import admin_required, current_username
from webapp.database import db
from webapp.errors import ApiError
from webapp.versions import accuracy
from webapp.json_input import request_json
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.versions import registry

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _context(form: TrainForm | None = None) -> dict:
    return {
        "form": form or TrainForm(formdata=None),
        "jobs": jobs.summaries(jobs.recent(30), admin=True),
        "versions": [{**registry.summary(v), "measures": accuracy.measures(v.run_dir)}
                     for v in registry.all_versions()],
        "mini_available": jobs.dataset_available("mini"),
        "default_ready": (jobs.default_data() / "dataset.json").is_file(),
        "can_activate": registry.pointer() is not None,
    }


def _regenerate_params() -> dict:
    """The default job on a freshly rebuilt default set ("activate" from the form or JSON body)."""
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


# ---- pages ---------------------------------------------------------------------------

@bp.get("")
@admin_required
def index():
    return render_template("admin.html", **_context())


@bp.get("/tables")
@admin_required
def tables():
    """The job and version tables alone, for admin.js to refresh in place."""
    return render_template("_admin_tables.html", **_context())


@bp.post("/jobs")
@admin_required
def start_job():
    form = TrainForm()
    if not form.validate():
        return render_template("admin.html", **_context(form), form_error=True), 400
    try:
        job = jobs.submit(form.params(), current_username())
    except jobs.JobError as exc:      # its version was deleted since the form was checked
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("admin.index"))
    flash(f"Training job {job.id} is queued.")
    return redirect(url_for("admin.index"))


@bp.post("/regenerate")
@admin_required
def regenerate():
    job = jobs.submit(_regenerate_params(), current_username())
    flash(f"Job {job.id} is queued: it rebuilds the default data set, then trains on it.")
    return redirect(url_for("admin.index"))


def _flash_action(action, done: str):
    try:
        action()
        flash(done)
    except jobs.JobError as exc:
        flash(str(exc).capitalize() + ".", "error")
    return redirect(url_for("admin.index"))


@bp.post("/jobs/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id: int):
    return _flash_action(lambda: jobs.cancel(job_id), f"Job {job_id}: cancelled or stopping.")


def _version_or_404(version_id: int) -> ModelVersion:
    version = db.session.get(ModelVersion, version_id)
    if version is None:
        raise ApiError(404, f"no model version {version_id}")
    return version


@bp.get("/versions/<int:version_id>/activation")
@admin_required
def confirm_activation(version_id: int):
    """What serving this version would change; the page's form activates it."""
    version = _version_or_404(version_id)
    return render_template("activate.html", version=registry.summary(version),
                           change=activation.change(version),
                           can_activate=registry.pointer() is not None)


@bp.post("/versions/<int:version_id>/activate")
@admin_required
def activate_version(version_id: int):
    version = db.session.get(ModelVersion, version_id)
    if version is not None and request.form.get("confirmed") != "yes" \
            and activation.change(version)["risky"]:
        flash("This version is worse or knows fewer words than the active one: read what changes "
              "and confirm to activate it.", "error")
        return redirect(url_for("admin.confirm_activation", version_id=version_id))
    return _flash_action(lambda: registry.activate(version_id, current_username()),
                         "The model is active: every worker serves it within a second or two.")


@bp.post("/versions/<int:version_id>/delete")
@admin_required
def delete_version(version_id: int):
    return _flash_action(lambda: registry.delete(version_id), "The model version is deleted.")


# ---- JSON API --------------------------------------------------------------------------

def _api(action):
    try:
        return action()
    except jobs.JobError as exc:
        raise ApiError(exc.status, str(exc)) from None


@bp.get("/api/jobs")
@admin_required
def api_jobs():
    limit = min(max(request.args.get("limit", 30, type=int) or 30, 1), 200)
    return jsonify(jobs=jobs.summaries(jobs.recent(limit), admin=True))


@bp.post("/api/jobs")
@admin_required
def api_start_job():
    form = TrainForm()
    if not form.validate():
        first = next(iter(form.errors.items()))
        return jsonify(error=f"{first[0]}: {first[1][0]}", fields=form.errors), 400
    job = _api(lambda: jobs.submit(form.params(), current_username()))
    return jsonify(jobs.summary(job, admin=True)), 202


@bp.get("/api/jobs/<int:job_id>")
@admin_required
def api_job(job_id: int):
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, f"no training job {job_id}")
    summary = jobs.summary(job, admin=True)
    if summary["evaluation"]:
        summary["gallery_url"] = url_for("gallery.index", source=f"eval:{summary['evaluation']['id']}")
    return jsonify({**summary, "log_tail": job.log_tail, "progress": jobs.progress_rows(job)})


@bp.post("/api/jobs/<int:job_id>/cancel")
@admin_required
def api_cancel_job(job_id: int):
    return jsonify(jobs.summary(_api(lambda: jobs.cancel(job_id)), admin=True))


@bp.post("/api/regenerate")
@admin_required
def api_regenerate():
    return jsonify(jobs.summary(jobs.submit(_regenerate_params(), current_username()), admin=True)), 202


@bp.get("/api/versions")
@admin_required
def api_versions():
    return jsonify(versions=[registry.summary(v) for v in registry.all_versions()])


@bp.get("/api/versions/<int:version_id>/activation")
@admin_required
def api_activation(version_id: int):
    """What activating the version would change (the confirmation page's figures)."""
    return jsonify(activation.change(_version_or_404(version_id)))


@bp.post("/api/versions/<int:version_id>/activate")
@admin_required
def api_activate(version_id: int):
    return jsonify(registry.summary(_api(lambda: registry.activate(version_id, current_username()))))


@bp.delete("/api/versions/<int:version_id>")
@admin_required
def api_delete_version(version_id: int):
    name = _api(lambda: registry.delete(version_id))
    return jsonify(deleted=name)

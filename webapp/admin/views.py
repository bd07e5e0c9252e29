"""The admin side: start and cancel training jobs, activate and delete model versions.

Pages (/admin...) are HTML forms that post and redirect, so they work without
scripts; static/js/admin.js only refreshes the tables. The same actions are a
JSON API under /admin/api/ for programs (webapp/admin/api.py). Every route here
needs an admin login.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from webapp.admin import activation
from webapp.admin.api import regenerate_params, version_or_404
from webapp.admin.forms import TrainForm
from webapp.auth import admin_required, current_username
from webapp.database import db
from webapp.tables import ModelVersion
from webapp.training import jobs
from webapp.versions import accuracy, registry

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
    job = jobs.submit(regenerate_params(), current_username())
    flash(f"Job {job.id} is queued: it rebuilds the default data set, then trains on it.")
    return redirect(url_for("admin.index"))


def _flash_action(action, done: str):
    try:
        action()
        flash(done)
    except (jobs.JobError, registry.VersionError) as exc:
        flash(str(exc).capitalize() + ".", "error")
    return redirect(url_for("admin.index"))


@bp.post("/jobs/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id: int):
    return _flash_action(lambda: jobs.cancel(job_id), f"Job {job_id}: cancelled or stopping.")


@bp.get("/versions/<int:version_id>/activation")
@admin_required
def confirm_activation(version_id: int):
    """What serving this version would change; the page's form activates it."""
    version = version_or_404(version_id)
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

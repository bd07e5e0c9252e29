"""The admin's data sets: list them, make one, record or upload clips, play and delete them.

Pages (/admin/datasets...) are HTML forms that post and redirect, so everything but
recording works without scripts; static/js/datasets.js records in the browser and
sends each kept clip to the JSON API (/admin/api/datasets..., webapp/datasets/api.py),
which programs can use too. Every route needs an admin login (the blueprint is guarded as a whole). What is
stored and how: webapp/datasets/store.py. A version is evaluated on a data set with
the gallery's evaluation job (the page posts to /admin/api/evaluations).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ml.audio import AudioError
from webapp.auth import admin_only_blueprint, current_username
from webapp.datasets import store
from webapp.datasets.api import data_dir, data_set, labels_text, public_value, request_body, upload
from webapp.gallery import data as gallery_data
from webapp.security import rate_limited
from webapp.training import jobs, teaching

bp = Blueprint("datasets", __name__)
admin_only_blueprint(bp)


def _page(action, done, back: str):
    """Run a store action for a form: flash what happened, then go `back`."""
    try:
        result = action()
        flash(done(result) if callable(done) else done)
    except (store.DataSetError, AudioError) as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
    return redirect(back)


def _evaluations(ds: store.DataSet) -> list:
    """Stored evaluations on this data set's folder, newest first (the gallery keeps them)."""
    folder = ds.path.resolve()
    found = []
    for source in gallery_data.list_sources():
        if source.kind == "evaluation" and source.data and Path(source.data) == folder:
            found.append(source)
    return found


# ---- pages ----------------------------------------------------------------------------------

@bp.get("/admin/datasets")
def index():
    sets = [store.summary(ds) for ds in store.list_sets(data_dir())]
    return render_template("datasets.html", sets=sets, suggested=store.SUGGESTED_LABELS)


@bp.post("/admin/datasets")
def create_page():
    def make():
        body = request_body()
        return store.create(data_dir(), body.get("name"), labels_text(body.get("labels")))

    try:
        ds = make()
    except store.DataSetError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.index"))
    flash(f"Data set {ds.title} is made: record or upload its clips below.")
    return redirect(url_for("datasets.page", key=ds.key))


@bp.get("/admin/datasets/<key>")
def page(key: str):
    ds = data_set(key)
    label = request.args.get("label") or None
    page_no = request.args.get("page", 1, type=int) or 1
    try:
        clips = store.list_clips(ds, label, page_no, 40)
    except store.DataSetError:
        label, clips = None, store.list_clips(ds, None, 1, 40)
    runs = [s for s in gallery_data.list_sources() if s.kind == "run"]
    return render_template("dataset.html", ds=ds, info=store.summary(ds), clips=clips, label=label,
                           teaching=teaching.plan(ds.path) if ds.editable else None,
                           runs=runs, evaluations=_evaluations(ds), suggested=store.SUGGESTED_LABELS,
                           max_clip_s=store.MAX_CLIP_SECONDS)


@bp.post("/admin/datasets/<key>/labels")
def add_label_page(key: str):
    ds = data_set(key)
    label = request.form.get("label", "").strip()
    return _page(lambda: store.add_label(ds, label), f"Label {label[:32]} added.",
                 url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/clips")
@rate_limited("HARK_RATE_UPLOAD")
def upload_page(key: str):
    ds = data_set(key)

    def done(result):
        skipped = f" ({len(result['ignored'])} other file(s) in the archive left out)" if result["ignored"] else ""
        odd = [f"{r['file']} ({', '.join(r['problems'])})" for r in result["added"] if r["problems"]]
        check = (f" {len(odd)} look like fragments of a word, listen to them: {'; '.join(odd[:5])}"
                 f"{' ...' if len(odd) > 5 else ''}." if odd else "")
        return f"{len(result['added'])} clip(s) added to {request.form.get('label')}{skipped}.{check}"
    return _page(lambda: upload(ds), done, url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/clips/<label>/<name>/delete")
def delete_clip_page(key: str, label: str, name: str):
    ds = data_set(key)
    return _page(lambda: store.delete_clip(ds, label, name), f"Clip {label}/{name} deleted.",
                 url_for("datasets.page", key=ds.key, label=request.args.get("label") or None))


@bp.post("/admin/datasets/<key>/teach")
def teach_page(key: str):
    """"Teach these words": queue the job, then follow it on its page."""
    ds = data_set(key)
    try:
        job = teaching.submit(ds.key, ds.path, current_username())
    except jobs.JobError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.page", key=ds.key))
    flash(f"Teaching {', '.join(teaching.plan(ds.path)['words'])}: job #{job.id} is queued.")
    return redirect(url_for("training.job", job_id=job.id))


@bp.post("/admin/datasets/<key>/public")
def public_page(key: str):
    """The page's switch: anyone may hear this set's clips, or only the admin."""
    ds = data_set(key)
    return _page(lambda: store.set_public(ds, public_value(request.form.get("public"))),
                 lambda public: f"The clips of {ds.title} are " + (
                     "public: anyone may play them in the gallery." if public
                     else "private: only the admin hears them."),
                 url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/delete")
def delete_page(key: str):
    ds = data_set(key)
    try:
        store.delete_set(ds)
    except store.DataSetError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.page", key=ds.key))
    flash(f"Data set {ds.title} and its clips are deleted.")
    return redirect(url_for("datasets.index"))

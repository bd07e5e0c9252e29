"""The admin's data sets: list them, make one, record or upload clips, play and delete them.

Pages (/admin/datasets...) are HTML forms that post and redirect, so everything but
recording works without scripts; static/js/datasets.js records in the browser and
sends each kept clip to the JSON API (/admin/api/datasets...), which programs can use
too. Every route needs an admin login (the blueprint is guarded as a whole). What is
stored and how: webapp/datasets/store.py. A version is evaluated on a data set with
the gallery's evaluation job (the page posts to /admin/api/evaluations).
"""
from __future__ import annotations

from pathlib import Path

from flask import (Blueprint, current_app, flash, jsonify, redirect, render_template, request,
                   send_file, url_for)

from ml.audio import AudioError, take_problems
from ml.config import SILENCE
from webapp.classify.audio_input import display_name
from webapp.auth import admin_only_blueprint, current_username
from webapp.datasets import store
from webapp.errors import ApiError
from webapp.gallery import data as gallery_data
from webapp.json_input import request_json
from webapp.security import rate_limited
from webapp.training import jobs, teaching

bp = Blueprint("datasets", __name__)
admin_only_blueprint(bp)
ERRORS_SHOWN = 8       # refused files named in one answer


def _data_dir() -> Path:
    return Path(current_app.config["HARK_DATA"])


def _get(key: str) -> store.DataSet:
    try:
        return store.get(_data_dir(), key)
    except store.DataSetError as exc:
        raise ApiError(exc.status, str(exc)) from None


def _api(action):
    """Run a store action; its refusals become JSON errors with their status."""
    try:
        return action()
    except store.DataSetError as exc:
        raise ApiError(exc.status, str(exc)) from None
    except AudioError as exc:
        raise ApiError(400, str(exc)) from None


def _page(action, done, back: str):
    """Run a store action for a form: flash what happened, then go `back`."""
    try:
        result = action()
        flash(done(result) if callable(done) else done)
    except (store.DataSetError, AudioError) as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
    return redirect(back)


# ---- what a request sends ------------------------------------------------------------------

def _body() -> dict:
    body = request_json() if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        raise ApiError(400, 'send a JSON object, e.g. {"name": "my-voice"}')
    return body


def _labels_text(value) -> list[str]:
    """Labels as a JSON list or as text ("yes, no up")."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise store.DataSetError("labels must be a list of words, or words separated by spaces")


def _upload(ds: store.DataSet) -> dict:
    """The request's files (or ZIPs) converted and added to one label, all or nothing."""
    label = store.check_label(request.form.get("label"))
    speaker = store.check_speaker(request.form.get("speaker"))
    recording = request.form.get("source") == "recording"
    files = [f for name in ("files", "file") for f in request.files.getlist(name) if f.filename is not None]
    if not files:
        raise store.DataSetError("no files: send audio files (WAV, FLAC or OGG) or ZIPs of them "
                                 "in the multipart field 'files'")
    new, ignored, refused = [], [], []
    for upload in files:
        data, name = upload.read(), display_name(upload.filename)
        if store.is_zip(data):
            members, left = store.zip_members(data, name)
            ignored += [f"{name}: {m}" for m in left]
            items = [(display_name(m), content, f"zip:{name}/{display_name(m)}") for m, content in members]
        else:
            items = [(name, data, "recording" if recording else f"upload:{name}")]
        for shown, content, source in items:
            try:
                new.append(store.prepare(content, label, shown, speaker, source))
            except AudioError as exc:
                refused.append(str(exc))
    if refused:
        more = f" (and {len(refused) - ERRORS_SHOWN} more)" if len(refused) > ERRORS_SHOWN else ""
        raise store.DataSetError(f"nothing was stored: {len(refused)} of {len(refused) + len(new)} "
                                 f"file(s) refused: " + "; ".join(refused[:ERRORS_SHOWN]) + more)
    added = store.add(ds, new)
    rows = [_clip_row(ds, f) for f in added]
    for row, clip in zip(rows, new):    # kept, but said to look like fragments of a word
        row["problems"] = [] if clip.label == SILENCE else take_problems(clip.wave / 32768.0)
    return {"added": rows, "ignored": ignored, "labels": store.counts(ds),
            "fragments": sum(bool(r["problems"]) for r in rows)}


def _clip_row(ds: store.DataSet, file: str) -> dict:
    label, name = file.split("/", 1)
    return {"label": label, "file": name,
            "audio_url": url_for("datasets.api_clip", key=ds.key, label=label, name=name)}


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
    sets = [store.summary(ds) for ds in store.list_sets(_data_dir())]
    return render_template("datasets.html", sets=sets, suggested=store.SUGGESTED_LABELS)


@bp.post("/admin/datasets")
def create_page():
    def make():
        body = _body()
        return store.create(_data_dir(), body.get("name"), _labels_text(body.get("labels")))

    try:
        ds = make()
    except store.DataSetError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.index"))
    flash(f"Data set {ds.title} is made: record or upload its clips below.")
    return redirect(url_for("datasets.page", key=ds.key))


@bp.get("/admin/datasets/<key>")
def page(key: str):
    ds = _get(key)
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
    ds = _get(key)
    label = request.form.get("label", "").strip()
    return _page(lambda: store.add_label(ds, label), f"Label {label[:32]} added.",
                 url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/clips")
@rate_limited("HARK_RATE_UPLOAD")
def upload_page(key: str):
    ds = _get(key)

    def done(result):
        skipped = f" ({len(result['ignored'])} other file(s) in the archive left out)" if result["ignored"] else ""
        odd = [f"{r['file']} ({', '.join(r['problems'])})" for r in result["added"] if r["problems"]]
        check = (f" {len(odd)} look like fragments of a word, listen to them: {'; '.join(odd[:5])}"
                 f"{' ...' if len(odd) > 5 else ''}." if odd else "")
        return f"{len(result['added'])} clip(s) added to {request.form.get('label')}{skipped}.{check}"
    return _page(lambda: _upload(ds), done, url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/clips/<label>/<name>/delete")
def delete_clip_page(key: str, label: str, name: str):
    ds = _get(key)
    return _page(lambda: store.delete_clip(ds, label, name), f"Clip {label}/{name} deleted.",
                 url_for("datasets.page", key=ds.key, label=request.args.get("label") or None))


@bp.post("/admin/datasets/<key>/teach")
def teach_page(key: str):
    """"Teach these words": queue the job, then follow it on its page."""
    ds = _get(key)
    try:
        job = teaching.submit(ds.key, ds.path, current_username())
    except jobs.JobError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.page", key=ds.key))
    flash(f"Teaching {', '.join(teaching.plan(ds.path)['words'])}: job #{job.id} is queued.")
    return redirect(url_for("training.job", job_id=job.id))


def _public_value(value) -> bool:
    """The per-set switch as JSON (true/false) or a form ("true"/"false", "on"/"off")."""
    if isinstance(value, str) and value.strip().lower() in ("true", "on", "1", "yes", "false", "off", "0", "no"):
        return value.strip().lower() in ("true", "on", "1", "yes")
    if isinstance(value, bool):
        return value
    raise store.DataSetError('public must be true or false, e.g. {"public": true}')


@bp.post("/admin/datasets/<key>/public")
def public_page(key: str):
    """The page's switch: anyone may hear this set's clips, or only the admin."""
    ds = _get(key)
    return _page(lambda: store.set_public(ds, _public_value(request.form.get("public"))),
                 lambda public: f"The clips of {ds.title} are {'public: anyone may play them in the gallery' if public else 'private: only the admin hears them'}.",
                 url_for("datasets.page", key=ds.key))


@bp.post("/admin/datasets/<key>/delete")
def delete_page(key: str):
    ds = _get(key)
    try:
        store.delete_set(ds)
    except store.DataSetError as exc:
        flash(str(exc)[:1].upper() + str(exc)[1:], "error")
        return redirect(url_for("datasets.page", key=ds.key))
    flash(f"Data set {ds.title} and its clips are deleted.")
    return redirect(url_for("datasets.index"))


# ---- JSON API ---------------------------------------------------------------------------------

@bp.get("/admin/api/datasets")
def api_list():
    return jsonify(datasets=[store.summary(ds) for ds in store.list_sets(_data_dir())])


@bp.post("/admin/api/datasets")
def api_create():
    """{"name": "my-voice", "labels": ["yes", "no"]} -> 201 with the new data set."""
    body = _body()
    ds = _api(lambda: store.create(_data_dir(), body.get("name"), _labels_text(body.get("labels"))))
    return jsonify(store.summary(ds)), 201


@bp.get("/admin/api/datasets/<key>")
def api_get(key: str):
    return jsonify(store.summary(_get(key)))


@bp.patch("/admin/api/datasets/<key>")
def api_update(key: str):
    """{"public": true | false}: whether anyone may hear the set's clips (only the admin's own
    sets have the switch; Hark's own are public). 200 with the data set."""
    ds = _get(key)
    body = _body()
    if set(body) != {"public"}:
        raise ApiError(400, 'send {"public": true} or {"public": false}')
    _api(lambda: store.set_public(ds, _public_value(body["public"])))
    return jsonify(store.summary(ds))


@bp.delete("/admin/api/datasets/<key>")
def api_delete(key: str):
    ds = _get(key)
    _api(lambda: store.delete_set(ds))
    return jsonify(deleted=ds.key)


@bp.post("/admin/api/datasets/<key>/labels")
def api_add_label(key: str):
    """{"label": "hey"} -> 201 with the data set."""
    ds = _get(key)
    _api(lambda: store.add_label(ds, _body().get("label")))
    return jsonify(store.summary(ds)), 201


@bp.get("/admin/api/datasets/<key>/clips")
def api_clips(key: str):
    """?label=&page=&per_page=: the clips, newest first, with speaker, source and audio URL."""
    ds = _get(key)
    page = _api(lambda: store.list_clips(ds, request.args.get("label") or None,
                                         request.args.get("page", 1, type=int) or 1,
                                         request.args.get("per_page", 50, type=int) or 50))
    for row in page["clips"]:
        row["audio_url"] = url_for("datasets.api_clip", key=ds.key, label=row["label"], name=row["file"])
    return jsonify(page)


@bp.post("/admin/api/datasets/<key>/clips")
@rate_limited("HARK_RATE_UPLOAD")
def api_add_clips(key: str):
    """Multipart: label, speaker, files (audio or ZIPs; or one `file`), source=recording for a
    recording made in the browser. 201 with the clips added; a bad file stores nothing."""
    ds = _get(key)
    return jsonify(_api(lambda: _upload(ds))), 201


@bp.post("/admin/api/datasets/<key>/teach")
def api_teach(key: str):
    """Teach the data set's new words to the active version (a job; 409 with the reason when
    there is nothing to teach). 202 with the job."""
    ds = _get(key)
    try:
        job = teaching.submit(ds.key, ds.path, current_username())
    except jobs.JobError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return jsonify({**jobs.summary(job, admin=True), "teaching": teaching.plan(ds.path)}), 202


@bp.get("/admin/api/datasets/<key>/clips/<label>/<name>")
def api_clip(key: str, label: str, name: str):
    path = _api(lambda: store.clip_path(_get(key), label, name))
    response = send_file(path, mimetype="audio/wav" if path.suffix.lower() == ".wav" else
                         "application/octet-stream", conditional=True, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.delete("/admin/api/datasets/<key>/clips/<label>/<name>")
def api_delete_clip(key: str, label: str, name: str):
    ds = _get(key)
    _api(lambda: store.delete_clip(ds, label, name))
    return jsonify(deleted=f"{label}/{name}", labels=store.counts(ds))

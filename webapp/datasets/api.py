"""The admin's data sets as JSON (/admin/api/datasets...): static/js/datasets.js sends each
clip recorded in the browser here, and programs can use it too (send the session cookie and
the X-CSRFToken header). Every route needs an admin login (the blueprint is guarded as a
whole). The pages are webapp/datasets/views.py; what is stored and how, webapp/datasets/store.py.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from ml.audio import AudioError, take_problems
from ml.config import SILENCE
from webapp.auth import admin_only_blueprint, current_username
from webapp.classify.audio_input import display_name
from webapp.datasets import store
from webapp.errors import ApiError
from webapp.security import rate_limited
from webapp.security.json_input import request_json
from webapp.training import jobs, teaching

bp = Blueprint("datasets_api", __name__, url_prefix="/admin/api/datasets")
admin_only_blueprint(bp)
ERRORS_SHOWN = 8       # refused files named in one answer


def data_dir() -> Path:
    return Path(current_app.config["HARK_DATA"])


def data_set(key: str) -> store.DataSet:
    try:
        return store.get(data_dir(), key)
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


# ---- what a request sends ------------------------------------------------------------------

def request_body() -> dict:
    body = request_json() if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        raise ApiError(400, 'send a JSON object, e.g. {"name": "my-voice"}')
    return body


def labels_text(value) -> list[str]:
    """Labels as a JSON list or as text ("yes, no up")."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise store.DataSetError("labels must be a list of words, or words separated by spaces")


def upload(ds: store.DataSet) -> dict:
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
    rows = [clip_row(ds, f) for f in added]
    for row, clip in zip(rows, new):    # kept, but said to look like fragments of a word
        row["problems"] = [] if clip.label == SILENCE else take_problems(clip.wave / 32768.0)
    return {"added": rows, "ignored": ignored, "labels": store.counts(ds),
            "fragments": sum(bool(r["problems"]) for r in rows)}


def clip_row(ds: store.DataSet, file: str) -> dict:
    label, name = file.split("/", 1)
    return {"label": label, "file": name,
            "audio_url": url_for("datasets_api.clip", key=ds.key, label=label, name=name)}


def public_value(value) -> bool:
    """The per-set switch as JSON (true/false) or a form ("true"/"false", "on"/"off")."""
    if isinstance(value, str) and value.strip().lower() in ("true", "on", "1", "yes", "false", "off", "0", "no"):
        return value.strip().lower() in ("true", "on", "1", "yes")
    if isinstance(value, bool):
        return value
    raise store.DataSetError('public must be true or false, e.g. {"public": true}')


# ---- JSON API ---------------------------------------------------------------------------------

@bp.get("")
def list_sets():
    return jsonify(datasets=[store.summary(ds) for ds in store.list_sets(data_dir())])


@bp.post("")
def create():
    """{"name": "my-voice", "labels": ["yes", "no"]} -> 201 with the new data set."""
    body = request_body()
    ds = _api(lambda: store.create(data_dir(), body.get("name"), labels_text(body.get("labels"))))
    return jsonify(store.summary(ds)), 201


@bp.get("/<key>")
def get_set(key: str):
    return jsonify(store.summary(data_set(key)))


@bp.patch("/<key>")
def update(key: str):
    """{"public": true | false}: whether anyone may hear the set's clips (only the admin's own
    sets have the switch; Hark's own are public). 200 with the data set."""
    ds = data_set(key)
    body = request_body()
    if set(body) != {"public"}:
        raise ApiError(400, 'send {"public": true} or {"public": false}')
    _api(lambda: store.set_public(ds, public_value(body["public"])))
    return jsonify(store.summary(ds))


@bp.delete("/<key>")
def delete(key: str):
    ds = data_set(key)
    _api(lambda: store.delete_set(ds))
    return jsonify(deleted=ds.key)


@bp.post("/<key>/labels")
def add_label(key: str):
    """{"label": "hey"} -> 201 with the data set."""
    ds = data_set(key)
    _api(lambda: store.add_label(ds, request_body().get("label")))
    return jsonify(store.summary(ds)), 201


@bp.get("/<key>/clips")
def clips(key: str):
    """?label=&page=&per_page=: the clips, newest first, with speaker, source and audio URL."""
    ds = data_set(key)
    page = _api(lambda: store.list_clips(ds, request.args.get("label") or None,
                                         request.args.get("page", 1, type=int) or 1,
                                         request.args.get("per_page", 50, type=int) or 50))
    for row in page["clips"]:
        row["audio_url"] = url_for("datasets_api.clip", key=ds.key, label=row["label"], name=row["file"])
    return jsonify(page)


@bp.post("/<key>/clips")
@rate_limited("HARK_RATE_UPLOAD")
def add_clips(key: str):
    """Multipart: label, speaker, files (audio or ZIPs; or one `file`), source=recording for a
    recording made in the browser. 201 with the clips added; a bad file stores nothing."""
    ds = data_set(key)
    return jsonify(_api(lambda: upload(ds))), 201


@bp.post("/<key>/teach")
def teach(key: str):
    """Teach the data set's new words to the active version (a job; 409 with the reason when
    there is nothing to teach). 202 with the job."""
    ds = data_set(key)
    try:
        job = teaching.submit(ds.key, ds.path, current_username())
    except jobs.JobError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return jsonify({**jobs.summary(job, admin=True), "teaching": teaching.plan(ds.path)}), 202


@bp.get("/<key>/clips/<label>/<name>")
def clip(key: str, label: str, name: str):
    path = _api(lambda: store.clip_path(data_set(key), label, name))
    response = send_file(path, mimetype="audio/wav" if path.suffix.lower() == ".wav" else
                         "application/octet-stream", conditional=True, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.delete("/<key>/clips/<label>/<name>")
def delete_clip(key: str, label: str, name: str):
    ds = data_set(key)
    _api(lambda: store.delete_clip(ds, label, name))
    return jsonify(deleted=f"{label}/{name}", labels=store.counts(ds))

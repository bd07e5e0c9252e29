"""Admin only: evaluate a model on a folder of the server and keep the result for the gallery.

POST /admin/api/evaluations runs `webapp.gallery.evaluations.evaluate_and_store` inside
the request, which suits folders of a few thousand clips (about a second per
thousand); larger folders are refused with a clear message rather than holding a
worker for minutes. GET /gallery/evaluate is the form for it.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, render_template, request, url_for

from ml.dataset import DataError, list_clips
from webapp.gallery import data as gallery_data
from webapp.gallery import evaluations
from webapp.auth import admin_required
from webapp.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("gallery_admin", __name__)
MAX_CLIPS_IN_REQUEST = 5000


@bp.get("/gallery/evaluate")
@admin_required
def form():
    """Pick a model version and a server folder; the result opens in the gallery."""
    sources = gallery_data.list_sources()
    runs = [s for s in sources if s.kind == "run"]
    return render_template("gallery_evaluate.html", runs=runs,
                           evaluations=[s for s in sources if s.kind == "evaluation"],
                           max_clips=MAX_CLIPS_IN_REQUEST)


@bp.post("/admin/api/evaluations")
@admin_required
def create():
    """Body (JSON or form): folder (absolute path on the server), model (a run source key;
    default the active model). 201 with the stored evaluation's summary and gallery URL."""
    if request.is_json:
        values = request.get_json(silent=True)
        values = values if isinstance(values, dict) else {}
    else:
        values = request.form
    folder = str(values.get("folder") or "").strip()
    source = gallery_data.get_source(str(values.get("model") or "") or None)
    if source.kind != "run" or source.model_dir is None:
        raise ApiError(400, "model must be a model version (run:<id>), not an evaluation")
    try:
        path = evaluations.check_folder(folder)
        n = len(list_clips(path)[1])
        if n > MAX_CLIPS_IN_REQUEST:
            raise ApiError(413, f"{path} has {n:,} clips; at most {MAX_CLIPS_IN_REQUEST:,} "
                                "can be evaluated from the web page")
        summary = evaluations.evaluate_and_store(source.model_dir, path,
                                                 gallery_data.evaluations_folder(),
                                                 log=log.info)
    except DataError as exc:
        raise ApiError(400, str(exc)) from None
    log.info("evaluation %s: model %s on %s, accuracy %.3f", summary["id"], summary["model"],
             summary["folder"], summary["accuracy"])
    summary.pop("file", None)
    summary["gallery_url"] = url_for("gallery.index", source=f"eval:{summary['id']}")
    return jsonify(summary), 201

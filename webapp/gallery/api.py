"""The gallery's JSON endpoints, under /api/gallery (errors are JSON like the rest of /api).

Clips are named by (source key, index in the source's rows): the server finds
the file itself, inside the source's data folder, and never opens a path a
request names.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from webapp import figures
from webapp.classify import inference
from webapp.classify.api import analysis
from webapp.errors import ApiError
from webapp.gallery import classifiers, thumbnails
from webapp.gallery import compare as gallery_compare
from webapp.gallery import data as gallery_data
from webapp.gallery.audio_build import audio_state
from webapp.gallery.data import Source
from webapp.labels import display_name, display_names
from webapp.security import rate_limited

bp = Blueprint("gallery_api", __name__, url_prefix="/api/gallery")
MIMETYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg"}


def clip_url(source: Source, index: int, what: str) -> str:
    return url_for(f"gallery_api.{what}", source=source.key, index=index)


def _cards(source: Source, rows: list[dict], indices: list[int]) -> list[dict]:
    status = source.audio_status()
    root = str(source.data_root.resolve()) if status["available"] or status["partial"] else None
    return [gallery_data.card(source, i, rows[i], root, clip_url) for i in indices]


@bp.get("/sources")
def sources():
    """Every model version with a test split, and every stored evaluation."""
    return jsonify(sources=[{"key": s.key, "kind": s.kind, "id": s.id, "title": s.title,
                             "active": s.active} for s in gallery_data.list_sources()])


@bp.get("/<source>/clips")
def clips(source: str):
    """One page of cards: filters true, pred, errors, min, max, sort, page, per_page."""
    src = gallery_data.get_source(source)
    gallery_data.check_audible(src)
    rows = gallery_data.rows_of(src)
    labels = gallery_data.labels_of(src, rows)
    f = gallery_data.parse_filters(request.args, labels)
    picked = gallery_data.select(rows, f)
    shown, page, pages = gallery_data.paginate(picked, f.page, f.per_page)
    return jsonify(source=src.key, total=len(rows), matched=len(picked), page=page, pages=pages,
                   per_page=f.per_page, filters=f.as_args(), audio=audio_state(src),
                   items=_cards(src, rows, shown))


@bp.get("/<source>/clips/<int:index>/audio")
def audio(source: str, index: int):
    """The clip's audio file, found by index inside the source's own data folder."""
    path = gallery_data.clip_path(gallery_data.get_source(source), index)
    response = send_file(path, mimetype=MIMETYPES.get(path.suffix.lower(), "application/octet-stream"),
                         conditional=True, max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/<source>/clips/<int:index>/thumbnail")
def thumbnail(source: str, index: int):
    """A small PNG spectrogram of the clip, drawn once and then read from the cache."""
    path = gallery_data.clip_path(gallery_data.get_source(source), index)
    try:
        png = thumbnails.thumbnail(path, gallery_data.cache_folder() / "thumbnails")
    except ValueError as exc:      # ml.audio.AudioError: a broken file in the data set
        raise ApiError(404, f"clip {index} cannot be drawn: {exc}") from None
    return send_file(png, mimetype="image/png", conditional=True, max_age=86400)


@bp.get("/<source>/clips/<int:index>/analyze")
@rate_limited("HARK_RATE_ANALYZE")      # the same work as POST /api/analyze, the same limit
def analyze(source: str, index: int):
    """The clip through its source's model: the same answer as POST /api/analyze, plus the truth."""
    started = time.perf_counter()
    src = gallery_data.get_source(source)
    rows = gallery_data.rows_of(src)
    path = gallery_data.clip_path(src, index, rows)
    classifier = classifiers.classifier_for(src.model_dir, current_app.extensions["hark.models"])
    result = inference.run(classifier, path.read_bytes(), path.name,
                           current_app.config["HARK_MAX_SECONDS"], started)
    body = analysis(classifier, result)
    row = rows[index]
    body["clip"] = {"id": index, "path": row.get("path", ""), "true": row["true"],
                    "true_name": display_name(row["true"]), "stored_pred": row["pred"],
                    "stored_confidence": row["confidence"],
                    "audio_url": clip_url(src, index, "audio")}
    return jsonify(body)


@bp.get("/<source>/evaluation")
def evaluation(source: str):
    """The evaluation panel's charts (confusion matrix, training curves) and latency."""
    src = gallery_data.get_source(source)
    rows = gallery_data.rows_of(src)
    report = gallery_data.report_of(src)
    labels = gallery_data.labels_of(src, rows)
    body: dict[str, Any] = {"source": src.key, "labels": labels, "display_names": display_names(labels),
            "figures": {}, "latency": None}
    if report:
        body["figures"]["confusion"] = figures.confusion_matrix(report)
    history = gallery_data.history_of(src)
    if history:
        body["figures"].update(figures.training_curves(history))
    if src.model_dir is not None and src.model_dir.is_dir() and request.args.get("latency") != "0":
        try:
            body["latency"] = classifiers.latency(src.model_dir, gallery_data.cache_folder(),
                                                     current_app.extensions["hark.models"])
        except ApiError:
            body["latency"] = None
    return jsonify(body)


@bp.get("/compare")
def compare():
    """Clips two sources label differently: a, b (source keys), which, page, per_page."""
    a = gallery_data.get_source(request.args.get("a"))
    b = gallery_data.get_source(request.args.get("b"))
    which = request.args.get("which") or "all"
    if which not in gallery_compare.WHICH:
        raise ApiError(400, f"which must be one of {', '.join(gallery_compare.WHICH)}")
    gallery_data.check_audible(a)
    gallery_data.check_audible(b)
    f = gallery_data.parse_filters({k: v for k, v in request.args.items()
                                    if k in ("page", "per_page")}, [])
    pairs = gallery_compare.disagreements(a, b, which)
    shown, page, pages = gallery_data.paginate(pairs, f.page, f.per_page)
    rows_a, rows_b = gallery_data.rows_of(a), gallery_data.rows_of(b)
    cards = _cards(a, rows_a, [i for i, _ in shown])
    for item, (_, j) in zip(cards, shown):
        rb = rows_b[j]
        item.update(id_b=j, pred_b=rb["pred"], pred_b_name=display_name(rb["pred"]),
                    confidence_b=rb["confidence"], correct_b=rb["pred"] == rb["true"],
                    analyze_url_b=clip_url(b, j, "analyze"))
    return jsonify(a=a.key, b=b.key, test_sets=gallery_compare.test_sets(a, b), which=which,
                   matched=len(pairs), page=page, pages=pages, per_page=f.per_page,
                   audio=a.audio_status(), items=cards)

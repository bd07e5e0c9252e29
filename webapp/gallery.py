"""The gallery pages: a model version's test clips with its evaluation, and two versions compared.

The pages render the figures that are cheap to know (accuracy, per-class table,
model facts) and hand the rest to static/js/gallery*.js through data- attributes
and the JSON endpoints of webapp/gallery_api.py.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template, request, url_for

from webapp import figures, gallery_api, gallery_compare, gallery_data, gallery_models
from webapp.errors import ApiError
from webapp.labels import display_name, display_names

bp = Blueprint("gallery", __name__, url_prefix="/gallery")
NAV_ENTRY = ("gallery.index", "Gallery")


def _page_context() -> dict:
    """What base.html expects of every page (footer, settings on <body>)."""
    store = current_app.extensions["hark.models"]
    classifier = store.peek()
    return {"classifier": classifier,
            "display_names": display_names(classifier.labels) if classifier else {},
            "low_confidence": current_app.config["HARK_LOW_CONFIDENCE"],
            "max_upload": current_app.config["MAX_CONTENT_LENGTH"]}


def _facts(source: gallery_data.Source, rows: list[dict]) -> dict:
    """Accuracy and model facts of a source, for the evaluation panel."""
    report = gallery_data.report_of(source) or {}
    config = source.extra.get("config") or {}
    facts = {"accuracy": report.get("accuracy"), "n": report.get("n", len(rows)),
             "errors": sum(1 for r in rows if r["true"] != r["pred"]),
             "arch": config.get("arch"), "parameters": config.get("parameters"),
             "created": str(config.get("created", ""))[:16].replace("T", " ") or None,
             "epochs_run": config.get("epochs_run"), "split": config.get("split"),
             "data": source.data, "size": None, "model": None}
    if source.kind == "evaluation":
        record = source.extra["record"]
        facts.update(created=str(record.get("created", ""))[:16].replace("T", " "),
                     model=record.get("model"))
    if source.model_dir is not None and source.model_dir.is_dir():
        facts["size"] = gallery_models.model_size(source.model_dir)
        if source.kind == "evaluation":
            config = gallery_data.read_cached(source.model_dir / "config.json") or {}
            facts.update(arch=config.get("arch"), parameters=config.get("parameters"))
    return facts


@bp.get("")
def index():
    """One source's clips as cards, with its evaluation panel beside them."""
    context = _page_context()
    sources = gallery_data.list_sources()
    if not sources:
        return render_template("gallery.html", page="gallery.index", source=None, sources=[],
                               **context)
    source = gallery_data.get_source(request.args.get("source"))
    rows = gallery_data.rows_of(source)
    labels = gallery_data.labels_of(source, rows)
    filters = gallery_data.parse_filters(request.args, labels)
    report = gallery_data.report_of(source)
    others = [s for s in sources if s.key != source.key and s.kind == "run"]
    return render_template(
        "gallery.html", page="gallery.index", sources=sources, source=source, labels=labels,
        label_names=display_names(labels), filters=filters, facts=_facts(source, rows),
        per_class=figures.per_class_rows(report) if report else [],
        audio=source.audio_status(), compare_with=others[0].key if others else None,
        clips_url=url_for("gallery_api.clips", source=source.key),
        evaluation_url=url_for("gallery_api.evaluation", source=source.key), **context)


@bp.get("/compare")
def compare():
    """Two versions side by side: accuracy, per-class figures, the clips they disagree on."""
    context = _page_context()
    sources = gallery_data.list_sources()
    if len(sources) < 2:
        return render_template("compare.html", page="gallery.index", sources=sources, a=None,
                               b=None, **context)
    a = gallery_data.get_source(request.args.get("a") or sources[0].key)
    default_b = next((s.key for s in sources if s.key != a.key), a.key)
    b = gallery_data.get_source(request.args.get("b") or default_b)
    which = request.args.get("which") or "all"
    if which not in gallery_compare.WHICH:
        raise ApiError(400, f"which must be one of {', '.join(gallery_compare.WHICH)}")
    report_a = gallery_data.report_of(a) or {}
    report_b = gallery_data.report_of(b) or {}
    labels = list(dict.fromkeys(report_a.get("labels", []) + report_b.get("labels", [])))
    table = []
    for label in labels:
        ca = report_a.get("per_class", {}).get(label)
        cb = report_b.get("per_class", {}).get(label)
        table.append({"name": display_name(label), "a": ca, "b": cb,
                      "delta": (cb["f1"] - ca["f1"]) if ca and cb else None})
    chart = figures.compare_per_class(report_a, report_b, "A", "B")
    return render_template(
        "compare.html", page="gallery.index", sources=sources, a=a, b=b, which=which,
        summary_a=gallery_compare.summary(a), summary_b=gallery_compare.summary(b),
        test_sets=gallery_compare.test_sets(a, b), table=table, chart=chart,
        disagreements_url=url_for("gallery_api.compare", a=a.key, b=b.key, which=which),
        **context)


def register(app: Flask) -> None:
    """The gallery's pages, its API, the admin's evaluate endpoint, and its nav entry."""
    from webapp import evaluations_admin, pages

    app.register_blueprint(bp)
    app.register_blueprint(gallery_api.bp)
    app.register_blueprint(evaluations_admin.bp)
    if NAV_ENTRY not in pages.NAV:       # after Training, before what only admins use
        after = [i for i, (endpoint, _) in enumerate(pages.NAV) if endpoint == "pages.training"]
        pages.NAV.insert(after[0] + 1 if after else len(pages.NAV), NAV_ENTRY)

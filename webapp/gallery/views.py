"""The gallery pages: a model version's test clips with its evaluation, and two versions compared.

The pages render the figures that are cheap to know (accuracy, per-class table,
model facts) and hand the rest to static/js/gallery*.js through data- attributes
and the JSON endpoints of webapp/gallery/api.py.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template, request, url_for

from ml.measure import sizes
from webapp import figures
from webapp.errors import ApiError
from webapp.gallery import compare as gallery_compare
from webapp.gallery import data as gallery_data
from webapp.gallery.audio_build import audio_state
from webapp.labels import display_name, display_names
from webapp.versions import accuracy

bp = Blueprint("gallery", __name__, url_prefix="/gallery")


def _facts(source: gallery_data.Source, rows: list[dict]) -> dict:
    """Accuracy and model facts of a source, for the evaluation panel."""
    report = gallery_data.report_of(source) or {}
    config = source.extra.get("config") or {}
    facts = {"accuracy": report.get("accuracy"), "n": report.get("n", len(rows)),
             "errors": sum(1 for r in rows if r["true"] != r["pred"]),
             "arch": config.get("arch"), "parameters": config.get("parameters"),
             "created": str(config.get("created", ""))[:16].replace("T", " ") or None,
             "epochs_run": config.get("epochs_run"), "split": config.get("split"),
             "data": source.shown_data, "size": None, "model": None}
    # What the headline accuracy was measured on, and the version's other measures.
    facts["on"] = accuracy.test_split_name(config)
    facts["measures"] = [m for m in accuracy.measures(source.model_dir) if m["kind"] != "test"] \
        if source.kind == "run" else []
    if source.kind == "evaluation":
        record = source.extra["record"]
        facts.update(created=str(record.get("created", ""))[:16].replace("T", " "),
                     model=record.get("model"), on=f"the folder {Path(source.shown_data).name}",
                     measures=[])
    if source.model_dir is not None and source.model_dir.is_dir():
        facts["size"] = sizes(source.model_dir)
        if source.kind == "evaluation":
            config = gallery_data.read_cached(source.model_dir / "config.json") or {}
            facts.update(arch=config.get("arch"), parameters=config.get("parameters"))
    return facts


def _confusion_rows(report: dict, labels: list[str]) -> dict | None:
    """The confusion matrix as rows of counts, for the keyboard-reachable table beside the chart."""
    matrix, names = report.get("confusion"), report.get("labels") or labels
    if not matrix or len(matrix) != len(names):
        return None
    return {"labels": names, "names": [display_name(n) for n in names], "rows": matrix}


@bp.get("")
def index():
    """One source's clips as cards, with its evaluation panel beside them."""
    sources = gallery_data.list_sources()
    if not sources:
        return render_template("gallery.html", source=None, sources=[])
    source = gallery_data.get_source(request.args.get("source"))
    rows = gallery_data.rows_of(source)
    labels = gallery_data.labels_of(source, rows)
    filters = gallery_data.parse_filters(request.args, labels)
    report = gallery_data.report_of(source)
    others = [s for s in sources if s.key != source.key and s.kind == "run"]
    return render_template(
        "gallery.html", sources=sources, source=source, labels=labels,
        label_names=display_names(labels), filters=filters, facts=_facts(source, rows),
        per_class=figures.per_class_rows(report) if report else [],
        confusion=_confusion_rows(report, labels) if report else None,
        audio=audio_state(source), compare_with=others[0].key if others else None,
        audible=source.audible(), clips_url=url_for("gallery_api.clips", source=source.key),
        evaluation_url=url_for("gallery_api.evaluation", source=source.key))


@bp.get("/compare")
def compare():
    """Two versions side by side: accuracy, per-class figures, the clips they disagree on."""
    sources = gallery_data.list_sources()
    if len(sources) < 2:
        return render_template("compare.html", sources=sources, a=None, b=None)
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
    test_sets = gallery_compare.test_sets(a, b)
    if not (a.audible() and b.audible()):     # figures for anyone, private clips for the admin
        test_sets = {**test_sets, "common": 0, "kind": "private",
                     "message": "The clips of one of them come from a data set that is not public: "
                                "log in as the admin to see the clips they disagree on."}
    return render_template(
        "compare.html", sources=sources, a=a, b=b, which=which,
        summary_a=gallery_compare.summary(a), summary_b=gallery_compare.summary(b),
        test_sets=test_sets, table=table, chart=chart,
        disagreements_url=url_for("gallery_api.compare", a=a.key, b=b.key, which=which))


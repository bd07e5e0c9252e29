"""What every page's template gets: the model, label names, limits, the navigation.

One context processor, so views hand templates only what is theirs. The
current navigation entry comes from the request's endpoint and blueprint.
"""
from __future__ import annotations

from flask import Flask, current_app, request

from webapp.labels import SILENCE, UNKNOWN, display_names

# (endpoint, title, blueprints whose pages belong to it) of the main navigation
NAV = [
    ("pages.listen", "Listen", ()),
    ("pages.upload", "Upload", ()),
    ("training.index", "Training", ("training",)),
    ("gallery.index", "Gallery", ("gallery", "gallery_admin")),
    ("admin.index", "Admin", ("admin", "datasets")),
]


def _section() -> str | None:
    for endpoint, _, blueprints in NAV:
        if request.endpoint == endpoint or request.blueprint in blueprints:
            return endpoint
    return None


def page_context() -> dict:
    store = current_app.extensions["hark.models"]
    classifier = store.peek()
    return {
        "classifier": classifier,
        "model_error": store.error,
        "display_names": display_names(classifier.labels) if classifier else {},
        "special_labels": {"silence": SILENCE, "unknown": UNKNOWN},
        "low_confidence": current_app.config["HARK_LOW_CONFIDENCE"],
        "max_upload": current_app.config["MAX_CONTENT_LENGTH"],
        "max_seconds": current_app.config["HARK_MAX_SECONDS"],
        "max_detect_upload": current_app.config["HARK_MAX_DETECT_UPLOAD_MB"] * 1024 * 1024,
        "max_detect_seconds": current_app.config["HARK_MAX_DETECT_SECONDS"],
        "nav": [(endpoint, title) for endpoint, title, _ in NAV if endpoint in current_app.view_functions],
        "page": _section(),
    }


def init_app(app: Flask) -> None:
    app.context_processor(page_context)

"""The admin's data sets: record clips in the browser, upload files or ZIPs, add labels (pages and API)."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.datasets import api, store, views

    app.register_blueprint(views.bp)       # /admin/datasets...
    app.register_blueprint(api.bp)         # /admin/api/datasets...
    try:      # a worker killed mid-upload (a timeout) leaves a batch half linked: undo it now
        store.recover_all(Path(app.config["HARK_DATA"]))
    except OSError as exc:
        logging.getLogger(__name__).warning("data sets: leftovers of killed uploads not cleaned: %s", exc)

"""The admin's data sets: record clips in the browser, upload files or ZIPs, add labels (pages and API)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.datasets import views

    app.register_blueprint(views.bp)

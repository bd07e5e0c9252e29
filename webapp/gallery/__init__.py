"""The gallery: every model version's test predictions and stored evaluations, browsable and compared."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The gallery's pages and its JSON API."""
    from webapp.gallery import api, views

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)

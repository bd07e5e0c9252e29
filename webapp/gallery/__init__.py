"""The gallery: every model version's test predictions and stored evaluations, browsable and compared."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The gallery's pages, its JSON API and the admin's evaluate-a-folder endpoint."""
    from webapp.gallery import api, evaluate, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(evaluate.bp)

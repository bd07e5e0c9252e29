"""The admin side: start and cancel training jobs, activate and delete model versions (pages and API)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.admin import views

    app.register_blueprint(views.bp)

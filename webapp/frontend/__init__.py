"""What every page gets besides its view: the template context (the model, label names, the
navigation: context.py) and static files with a content version, Plotly.js from its package
(assets.py, /vendor)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.frontend import assets, context

    assets.init_app(app)
    context.init_app(app)

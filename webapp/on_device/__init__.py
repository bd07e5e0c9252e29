"""Classifying on the device: the active model for a page that runs it itself (Listen's "On
this device", LiteRT.js) and the detector's decisions for the window probabilities it sends,
so no audio leaves the browser (api.py)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.on_device import api

    app.register_blueprint(api.bp)

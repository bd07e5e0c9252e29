"""Classifying: record or upload a word and see what the active model hears (pages and API).

views.py serves the Listen and Upload pages, api.py the JSON routes (/api/predict,
/api/analyze, /api/detect, /api/health); inference.py runs the model on one upload,
detection.py listens for words in a longer recording, audio_input.py reads uploads
(file_kind.py names what a refused file is).
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.classify import api, views

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)

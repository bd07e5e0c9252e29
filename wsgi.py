"""WSGI entry point: `gunicorn wsgi:app` serves Hark (settings from HARK_* variables)."""
from webapp import create_app

app = create_app()

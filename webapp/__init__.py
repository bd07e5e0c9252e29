"""Hark's web app: record or upload a spoken word and see how the model hears it."""
from __future__ import annotations

import logging

from flask import Flask

from webapp import assets, errors, settings
from webapp.model_store import ModelStore


def create_app(config: dict | None = None) -> Flask:
    """Application factory: environment defaults, then `config` on top."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(settings.from_environment())
    app.config.update(config or {})
    app.json.sort_keys = False
    app.extensions["hark.models"] = ModelStore(
        app.config["HARK_MODEL"], check_s=app.config["HARK_MODEL_CHECK_S"],
        threads=app.config["HARK_MODEL_THREADS"])

    from webapp import api, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    assets.register(app)
    errors.register(app)
    if not app.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return app

"""Hark's web app (application factory): record or upload a word, train, browse, administer."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from webapp import errors, settings
from webapp.versions.model_store import ModelStore


def create_app(config: dict | None = None) -> Flask:
    """Application factory: environment defaults, then `config` on top."""
    values = {**settings.from_environment(), **(config or {})}
    instance = Path(values["HARK_INSTANCE"]).resolve()
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=str(instance))
    app.config.update(values)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's documented setting
    if not app.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from webapp import (
        admin,
        auth,
        classify,
        cli,
        database,
        datasets,
        frontend,
        gallery,
        on_device,
        security,
        training,
        versions,
    )
    from webapp.versions import registry

    security.configure(app)          # secret key, cookie flags, proxy headers
    database.init_app(app)           # and migrations
    if not app.config["HARK_MODEL"]:
        app.config["HARK_MODEL"] = str(registry.default_pointer(app))
    app.extensions["hark.models"] = ModelStore(
        app.config["HARK_MODEL"], check_s=app.config["HARK_MODEL_CHECK_S"],
        threads=app.config["HARK_MODEL_THREADS"])

    classify.init_app(app)           # /, /upload, /api/predict, /api/analyze, /api/detect
    on_device.init_app(app)          # /api/model.json, /api/model*.tflite, /api/decide
    training.init_app(app)           # the task queue, /training, /api/training
    versions.init_app(app)           # the Download menus
    gallery.init_app(app)            # /gallery, /api/gallery, the admin's evaluations
    admin.init_app(app)              # /admin, /admin/api
    datasets.init_app(app)           # /admin/datasets, /admin/api/datasets
    frontend.init_app(app)           # /vendor, what every template gets
    errors.init_app(app)
    auth.init_app(app)               # /login, /logout, the admin accounts
    cli.init_app(app)
    # Last: CSRF, rate limits and security headers cover every route registered above.
    security.init_app(app)
    return app

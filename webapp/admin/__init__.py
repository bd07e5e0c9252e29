"""The admin side: start and cancel training jobs, activate and delete model versions, evaluate
a version on a folder of the server (pages and API)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.admin import api, evaluations, views
    from webapp.training import runner
    from webapp.training.params import EVALUATE

    app.register_blueprint(views.bp)           # /admin...
    app.register_blueprint(api.bp)             # /admin/api/jobs, /admin/api/versions...
    app.register_blueprint(evaluations.bp)     # /gallery/evaluate, /admin/api/evaluations
    runner.add_job_kind(app, EVALUATE, evaluations.run_job)

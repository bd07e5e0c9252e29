"""The admin side: start and cancel training jobs, activate and delete model versions, evaluate
a version on a folder of the server (pages and API)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.admin import evaluations, views
    from webapp.training import jobs, runner

    app.register_blueprint(views.bp)
    app.register_blueprint(evaluations.bp)     # /gallery/evaluate, /admin/api/evaluations
    runner.add_job_kind(app, jobs.EVALUATE, evaluations.run_job)

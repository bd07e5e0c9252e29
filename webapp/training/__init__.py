"""Training jobs: the queue, its consumer, startup repairs, the Training page and its API."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The task queue (its task runs webapp.training.runner), the Training page and its API."""
    from webapp.training import api, jobs, queue, runner, views
    from webapp.versions import registry

    queue.init_app(app, runner.run_job)
    registry.add_holder(app, jobs.holding)     # a version a job uses is never deleted under it
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)

"""Training jobs and model versions: the queue, its consumer, startup repairs, the status page and API."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The task queue (its task runs webapp.training.runner), the Training page and its API."""
    from webapp.training import downloads, pages, queue, runner, status

    queue.init_app(app, runner.run_job)
    app.register_blueprint(pages.bp)
    app.register_blueprint(status.bp)
    app.register_blueprint(downloads.bp)      # Download menus: exports of model versions

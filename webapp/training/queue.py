"""The task queue: Huey, with its SQLite storage by default and Redis when configured.

Training never runs in a web request or a gunicorn worker: a route writes the
job row, then puts its id on this queue, and the consumer (`python -m
webapp.training.worker`, started by scripts/run.sh) runs it. The queue message carries
only the job id; everything else lives in the database, so a lost message is
repaired by re-enqueueing queued jobs at the consumer's start (webapp/training/startup.py).

- SQLite (default): `instance/queue.db`, no server; consumers on this machine.
- Redis (HARK_REDIS_URL): consumers on any number of machines, sharing the
  database through HARK_DATABASE_URL.
- Immediate (HARK_QUEUE_IMMEDIATE, unit tests): a task runs inside the call
  that enqueues it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from huey import MemoryHuey, RedisHuey, SqliteHuey

log = logging.getLogger(__name__)
RUN_JOB = "hark.run_job"


class TaskQueue:
    """The app's Huey instance and its task, bound to the app that made it.

    `run(job_id)` is what a consumer does with a job (webapp.training.runner.run_job),
    called inside an app context.
    """

    def __init__(self, app: Flask, huey, run: Callable[[int], None]):
        self.app, self.huey = app, huey

        def run_job(job_id: int) -> None:
            with app.app_context():
                run(job_id)

        self._run_job = huey.task(name=RUN_JOB)(run_job)

    def enqueue(self, job_id: int) -> None:
        self._run_job(job_id)

    def pending_job_ids(self) -> set[int]:
        """Job ids waiting in the queue (not yet taken by a consumer)."""
        return {task.args[0] for task in self.huey.pending()
                if type(task).__name__ == RUN_JOB and task.args}

    def consumer(self, **options):
        # One worker thread: jobs run one after another (two trainings would halve each's speed).
        # max_delay 1 s: a queued job starts within a second of being submitted.
        settings = {"workers": 1, "worker_type": "thread", "periodic": False,
                    "max_delay": 1.0, "shutdown_timeout": 30, **options}
        return self.huey.create_consumer(**settings)


def make_huey(app: Flask):
    if app.config.get("HARK_QUEUE_IMMEDIATE"):
        return MemoryHuey("hark", immediate=True, results=False)
    if app.config.get("HARK_REDIS_URL"):
        return RedisHuey("hark", url=app.config["HARK_REDIS_URL"], results=False)
    return SqliteHuey("hark", filename=str(Path(app.instance_path) / "queue.db"), results=False,
                      timeout=15)


def init_app(app: Flask, run: Callable[[int], None]) -> None:
    app.extensions["hark.queue"] = TaskQueue(app, make_huey(app), run)


def queue(app: Flask) -> TaskQueue:
    return app.extensions["hark.queue"]

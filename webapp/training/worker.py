"""The queue consumer: `python -m webapp.training.worker` (scripts/run.sh starts it beside gunicorn).

Runs the startup check first (orphaned jobs, half-written files, the first
model), then Huey's consumer with one worker thread, and once a minute looks
for jobs whose worker (on any machine) has gone silent. Ctrl-C (SIGINT) stops
gracefully: a training in progress ends after its current batch and is marked
failed as interrupted. SIGTERM stops at once; so does kill -9, after which the
next start marks the job failed.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

log = logging.getLogger("webapp.training.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.training.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--no-auto-train", action="store_true",
                        help="do not enqueue the default training job when there is no model")
    parser.add_argument("--fail-jobs-of", type=int, metavar="PID",
                        help="only mark the running jobs of this machine's consumer PID failed (scripts/"
                             "supervise.py, when that consumer crashed), then exit")
    parser.add_argument("--reason", default=None, help="the error those jobs get")
    args = parser.parse_args(argv)
    # Started in the background by a script, SIGINT arrives ignored: until Huey installs its
    # own handlers, let Ctrl-C stop the start-up instead of being lost.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    from webapp import create_app
    from webapp.database import db
    from webapp.tables import TrainingJob
    from webapp.training import jobs, runner, startup
    from webapp.training.queue import queue

    app = create_app()
    if args.fail_jobs_of is not None:
        with app.app_context():
            for line in startup.fail_jobs_of(app, args.fail_jobs_of, args.reason or startup.ORPHAN):
                log.warning("%s", line)
        return 0
    startup.check(app, auto_train=not args.no_auto_train)
    consumer = queue(app).consumer()

    def relay_stop():
        consumer.stop_flag.wait()
        runner.SHUTDOWN.set()

    def housekeeping():
        # Every minute, beside the queue (whose one worker may be busy training for an hour):
        # jobs left running by a worker on another machine that went silent become failed.
        while not runner.SHUTDOWN.wait(60):
            try:
                with app.app_context():
                    startup.fail_orphans(app)
            except Exception:
                log.exception("housekeeping")

    threading.Thread(target=relay_stop, daemon=True, name="stop-relay").start()
    threading.Thread(target=housekeeping, daemon=True, name="housekeeping").start()
    log.info("queue consumer %s ready", jobs.worker_id())
    consumer.run()
    runner.SHUTDOWN.set()
    with app.app_context():   # a job still marked as ours did not finish: say so now
        mine = db.session.scalars(db.select(TrainingJob).where(
            TrainingJob.state == "running", TrainingJob.worker == jobs.worker_id())).all()
        for job in mine:
            jobs.finish(job.id, "failed", error="interrupted: the worker was stopped while this "
                                                "job ran; start it again")
            log.warning("job %s interrupted by the worker's shutdown", job.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())

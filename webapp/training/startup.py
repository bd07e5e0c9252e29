"""The startup check: find and repair what a crash or kill -9 can leave half-done.

Run by the queue consumer before it takes work (and by `flask --app wsgi
check`, which scripts/run.sh calls first). Each repair is idempotent and is
reported in the log:

- a job left "running" by a worker that is gone: failed, with the reason;
- runs/.tmp-* (a run directory being written) and data/.tmp-default-* (a data
  set being rebuilt): removed, or a finished rebuild swapped into place;
- a pointer naming a missing or broken run: back to the last active version
  whose files still exist (by activated_at), else to models/default;
- run directories not in the versions table (the shipped default, CLI runs):
  registered; the table's active flag: set from the pointer;
- a queued job whose queue message was lost: enqueued again;
- no model at all (first start): the default training job is enqueued.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from webapp.database import db
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.training.queue import queue
from webapp.versions import registry

log = logging.getLogger("webapp.training.startup")
ORPHAN = "the worker stopped while this job ran (killed, crashed or restarted); start it again"


def check(app: Flask, auto_train: bool = True, log_report: bool = True) -> list[str]:
    """Every repair in order; returns what was done, one line each (also logged)."""
    report: list[str] = []
    with app.app_context():
        report += fail_orphans(app, at_start=True)
        report += clean_debris(app)
        report += repair_pointer(app)
        report += register_runs(app)
        with registry.lock(app):          # an activation meanwhile would be undone otherwise
            registry.reconcile(app)
        report += requeue_lost(app)
        if auto_train:
            report += first_model(app)
    for line in report if log_report else []:
        log.warning("startup check: %s", line)
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:    # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _orphaned(job: TrainingJob, app: Flask, at_start: bool) -> bool:
    host, _, worker_pid = (job.worker or ":").rpartition(":")
    if host == socket.gethostname() and worker_pid.isdigit():
        pid = int(worker_pid)
        if pid == os.getpid():
            return at_start      # this process is only starting: the job cannot be ours
        if not _alive(pid):
            return True
    return jobs.is_stalled(job, app)   # another machine's worker, silent for too long


def fail_orphans(app: Flask, at_start: bool = False) -> list[str]:
    """Running jobs whose worker is gone become failed (also checked every minute by the consumer)."""
    report = []
    running = db.session.scalars(select(TrainingJob).where(TrainingJob.state == "running")).all()
    for job in running:
        if _orphaned(job, app, at_start):
            _fail(job, ORPHAN)
            report.append(f"job {job.id} was left running by {job.worker}: marked failed")
    return report


def fail_jobs_of(app: Flask, pid: int, reason: str) -> list[str]:
    """The running jobs of this machine's consumer `pid`, which has ended, become failed with
    `reason` (scripts/supervise.py, at once when a consumer crashes, before it restarts one)."""
    if _alive(pid):
        return [f"consumer pid {pid} is still alive: its jobs are left alone"]
    worker = f"{socket.gethostname()}:{pid}"
    report = []
    for job in db.session.scalars(select(TrainingJob).where(TrainingJob.state == "running",
                                                            TrainingJob.worker == worker)).all():
        _fail(job, reason)
        report.append(f"job {job.id} was running in consumer {worker}, which ended: marked failed")
    return report


def _fail(job: TrainingJob, reason: str) -> None:
    tail = (job.log_tail + "\n" if job.log_tail else "") + f"failed: {reason}"
    jobs.finish(job.id, "failed", error=reason, log_tail=tail[-jobs.LOG_CHARS:])


def clean_debris(app: Flask) -> list[str]:
    """Half-written run directories and data sets (only while no job runs anywhere)."""
    if db.session.scalar(select(TrainingJob.id).where(TrainingJob.state == "running")):
        return []
    report = []
    runs_root = Path(app.config["HARK_RUNS"])
    for tmp in sorted(runs_root.glob(".tmp-*")) if runs_root.is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)
        report.append(f"removed the unfinished run directory {tmp}")
    data_root = Path(app.config["HARK_DATA"])
    default = data_root / "default"
    for fresh in sorted(data_root.glob(".tmp-default-*")) if data_root.is_dir() else []:
        if not default.exists() and (fresh / "dataset.json").is_file():
            fresh.rename(default)
            report.append(f"finished an interrupted data set swap: {fresh.name} -> default")
        else:
            shutil.rmtree(fresh, ignore_errors=True)
            report.append(f"removed the unfinished data set {fresh}")
    for old in sorted(data_root.glob(".old-default-*")) if data_root.is_dir() else []:
        if not default.exists():
            old.rename(default)
            report.append(f"restored the previous default data set from {old.name}")
        else:
            shutil.rmtree(old, ignore_errors=True)
            report.append(f"removed the replaced data set {old}")
    return report


def repair_pointer(app: Flask) -> list[str]:
    """A pointer naming a missing or incomplete run goes back to the last active version
    that still exists, and only when there is none to the shipped default model."""
    pointer = registry.pointer(app)
    if pointer is None:
        return []
    with registry.lock(app):      # not while an admin activates or deletes a version
        return _repair_pointer(app, pointer)


def _repair_pointer(app: Flask, pointer: Path) -> list[str]:
    default = Path(app.config["HARK_DEFAULT_MODEL"])
    missing = not pointer.exists()
    target = None if missing else registry.active_run_dir(app)
    if not missing and registry.usable(target):
        return []
    problem = (f"the active-model pointer {pointer} was missing" if missing
               else f"the active model {target} is missing or incomplete")
    pointer.parent.mkdir(parents=True, exist_ok=True)
    previous = registry.last_active(exclude=target)
    if previous is not None:
        registry.write_pointer(pointer, Path(previous.run_dir))
        return [f"{problem}: restored the last active version {previous.name} ({previous.run_dir})"]
    if missing:
        registry.write_pointer(pointer, default)
        return [f"{problem}: now names {default}"]
    if registry.usable(default) and target != default.resolve():
        registry.write_pointer(pointer, default)
        return [f"{problem}: fell back to {default}"]
    return [f"no usable model: {target} is missing or incomplete (a training job will make one)"]


def register_runs(app: Flask) -> list[str]:
    """The shipped default and any complete run under runs/ become versions the admin can pick."""
    report = []
    default = Path(app.config["HARK_DEFAULT_MODEL"])
    candidates = [(default, "default")]
    runs_root = Path(app.config["HARK_RUNS"])
    if runs_root.is_dir():
        candidates += [(p, "imported") for p in sorted(runs_root.iterdir())
                       if p.is_dir() and not p.name.startswith(".")]
    known = {v.name for v in db.session.scalars(select(ModelVersion))}
    for run_dir, source in candidates:
        if source == "imported" and _run_id(run_dir) in known:
            continue     # a copy of a version already listed (models/default is one of runs/)
        if registry.usable(run_dir) and registry.find(run_dir) is None:
            try:
                version = registry.register(run_dir, source=source)
                known.add(version.name)
                report.append(f"registered model version {version.name}")
            except Exception as exc:  # noqa: BLE001  one broken run must not stop the check
                db.session.rollback()
                report.append(f"could not register {run_dir}: {exc}")
    for version in db.session.scalars(select(ModelVersion)):
        if not registry.usable(Path(version.run_dir)):
            report.append(f"model version {version.name}: its files are missing ({version.run_dir})")
    return report


def _run_id(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "config.json").read_text()).get("run_id") or run_dir.name
    except (OSError, ValueError):
        return run_dir.name


def requeue_lost(app: Flask) -> list[str]:
    if app.config.get("HARK_QUEUE_IMMEDIATE"):
        return []
    q = queue(app)
    waiting = q.pending_job_ids()
    report = []
    for job in db.session.scalars(select(TrainingJob).where(TrainingJob.state == "queued")):
        if job.id not in waiting:
            q.enqueue(job.id)
            report.append(f"job {job.id} was queued but not on the queue: enqueued again")
    return report


def first_model(app: Flask) -> list[str]:
    """No usable model and nothing training: enqueue the default job (data set first if missing)."""
    if not app.config.get("HARK_AUTO_TRAIN") or registry.usable(registry.active_run_dir(app)):
        return []
    if registry.pointer(app) is None or jobs.has_pending():
        return []
    params = jobs.make_params(epochs=app.config["HARK_AUTO_TRAIN_EPOCHS"], activate=True,
                              kind="auto", app=app)
    job = jobs.submit(params, user="hark (first start)")
    return [f"no model yet: enqueued the default training job {job.id}"]

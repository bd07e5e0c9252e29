"""Jobs in the database: submit, cancel, and the state changes a running job makes.

A job trains a model (params "kind" "admin" or "auto") or evaluates one on a
folder of the server ("kind" "evaluate"); both go through the same queue and
consumer. Progress is counted in `epoch` of `epochs` for a training, in clips
done of clips in all for an evaluation (summary's "steps" says which).

Every change is one short transaction, so the web workers and the consumer
never hold a lock across a training step. State moves only forward:
queued -> running -> succeeded | failed | cancelled, and queued -> cancelled.
The consumer claims a job with a conditional UPDATE, so a job put on the
queue twice still runs once.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import cast

from flask import current_app
from sqlalchemy import CursorResult, select, update

from ml import config
from webapp.database import db, iso, utcnow
from webapp.instance import versions_lock
from webapp.security import privacy
from webapp.tables import FINISHED, JobEpoch, ModelVersion, TrainingJob
from webapp.training import params as job_params
from webapp.training.params import EVALUATE, USER_SET, EvalParams, JobParams, TrainParams

LOG_LINES, LOG_CHARS = 200, 20_000


class JobError(ValueError):
    """A request about a job that cannot be done; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---- data sets -------------------------------------------------------------

def default_data(app=None) -> Path:
    return Path((app or current_app).config["HARK_DATA"]) / "default"


def mini_data(app=None) -> Path:
    return Path((app or current_app).config["HARK_DATA"]) / "mini_speech_commands"


def user_data(name: str, app=None) -> Path:
    return Path((app or current_app).config["HARK_DATA"]) / "user" / name


def dataset_available(kind: str, app=None) -> bool:
    """The default set can always be chosen (a job builds it when missing); mini only when downloaded."""
    return kind == "default" or (kind == "mini" and mini_data(app).is_dir())


def make_params(dataset: str | list = "default", data: str | None = None, activate: bool = False,
                prepare_data: str = "missing", kind: str = "admin", app=None,
                init_dir: str | None = None, **settings) -> TrainParams:
    """A training job's parameters: its data, what follows training, and every ml.config
    job setting (None or left out: the setting's default). Already validated by the caller.

    `dataset` is one key or a list of them ("default", "mini", "user:<name>", "folder": the
    folder `data`); one is stored as a string and its folder as `data`, several as lists.
    `init` (a setting) names the version to start from, `init_dir` its run directory.
    """
    unknown = set(settings) - set(config.JOB_SETTINGS)
    if unknown:
        raise TypeError(f"not a job setting: {', '.join(sorted(unknown))}")
    values = {name: config.setting(name).default for name in config.JOB_SETTINGS}
    values.update({name: value for name, value in settings.items() if value is not None})
    keys = [dataset] if isinstance(dataset, str) else list(dataset)
    folders = []
    for key in keys:
        if key == "default":
            folder = default_data(app)
        elif key == "mini":
            folder = mini_data(app)
        elif key.startswith(USER_SET):
            folder = user_data(key[len(USER_SET):], app)
        else:
            assert data, "the caller checked that a folder data set names its folder"
            folder = Path(data)
        folders.append(str(folder.resolve()))
    return TrainParams(train=config.TrainConfig(data=folders, **values), datasets=keys, kind=kind,
                       activate=bool(activate),
                       prepare_data=prepare_data if "default" in keys else "none",
                       init_dir=None if init_dir is None else str(init_dir))


def make_eval_params(folder: Path, model_dir: Path, model: str, clips: int) -> EvalParams:
    """An evaluation job: run `model_dir` on every clip of `folder` (already checked), for the gallery."""
    return EvalParams(folder=str(folder), model_dir=str(model_dir), model=model, clips=clips)


def params_of(job: TrainingJob) -> JobParams:
    """A job row's parameters, typed (webapp/training/params.py)."""
    return job_params.of(job.params)


def is_evaluation(stored: dict | None) -> bool:
    """Does a job row's stored params (`TrainingJob.params`) ask for an evaluation?"""
    return (stored or {}).get("kind") == EVALUATE


# ---- requests from the web -------------------------------------------------

def submit(params: JobParams, user: str | None) -> TrainingJob:
    """Store a queued job, then put it on the queue (the row first: a lost message is recoverable).

    A job that starts from a version or evaluates one is stored under the versions' lock once
    that version's folder is seen to be there: a delete, which refuses while a queued job uses
    the version (job_using), cannot slip in between (409 when it came first)."""
    used = [Path(p) for p in ((params.model_dir,) if isinstance(params, EvalParams)
                              else (params.init_dir,)) if p]
    with versions_lock(current_app.instance_path) if used else contextlib.nullcontext():
        gone = [p for p in used if not p.is_dir()]
        if gone:
            raise JobError(f"the model version {gone[0].name} is not on this machine any more "
                           f"(it was just deleted?): pick another one", 409)
        epochs = params.train.epochs if isinstance(params, TrainParams) else None
        job = TrainingJob(params=params.to_json(), state="queued", stage="waiting for the worker",
                          created_by=user, epochs=epochs, log_tail="")
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    current_app.extensions["hark.queue"].enqueue(job_id)
    return db.session.get_one(TrainingJob, job_id, populate_existing=True)


def cancel(job_id: int) -> TrainingJob:
    """Queued: cancelled at once. Running: asked to stop (it stops after the current batch)."""
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise JobError(f"no training job {job_id}", 404)
    done = cast(CursorResult, db.session.execute(      # an UPDATE's result counts its rows
        update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.state == "queued")
        .values(state="cancelled", stage=None, finished_at=utcnow(), cancel_requested=True)))
    if not done.rowcount:
        db.session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.state == "running")
            .values(cancel_requested=True))
    db.session.commit()
    job = db.session.get_one(TrainingJob, job_id, populate_existing=True)
    if job.state in FINISHED and not done.rowcount:
        raise JobError(f"job {job_id} has already finished ({job.state})", 409)
    return job


def has_pending(kind: str | None = None) -> bool:
    """Is a job queued or running (optionally only jobs of `kind`, e.g. "auto")?"""
    jobs = db.session.scalars(select(TrainingJob).where(TrainingJob.state.in_(("queued", "running"))))
    return any(kind is None or params_of(j).kind == kind for j in jobs)


def job_using(run_dir: Path, name: str) -> TrainingJob | None:
    """A queued or running job that starts from this version, evaluates it or reads data
    inside its folder: the version must stay until it ends (jobs.submit checks under the
    same lock that a version it names is still there; registry.delete asks `holding`)."""
    run_dir = Path(run_dir).resolve()

    def inside(path) -> bool:
        try:
            return bool(path) and Path(str(path)).resolve().is_relative_to(run_dir)
        except (OSError, RuntimeError, ValueError):
            return False

    pending = db.session.scalars(select(TrainingJob).where(TrainingJob.state.in_(("queued", "running")))
                                 .order_by(TrainingJob.id))
    for job in pending:
        p = params_of(job)
        if any(inside(folder) for folder in p.folders):
            return job
        if isinstance(p, EvalParams):
            if inside(p.model_dir):
                return job
        elif inside(p.init_dir) or (p.train.init == name and not p.init_dir):
            return job
    return None



def holding(run_dir: Path, name: str) -> str | None:
    """What holds a version, for webapp.versions.registry.delete: "job #3 (queued: ...)", or None."""
    job = job_using(run_dir, name)
    return None if job is None else f"job #{job.id} ({job.state}: {params_of(job).describe()})"


# ---- what the running job reports ------------------------------------------

def claim(job_id: int) -> bool:
    """queued -> running for this process; False when it was cancelled or taken already."""
    now = utcnow()
    done = cast(CursorResult, db.session.execute(      # an UPDATE's result counts its rows
        update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.state == "queued")
        .values(state="running", started_at=now, heartbeat_at=now, worker=worker_id(),
                stage="starting")))
    db.session.commit()
    return bool(done.rowcount)


def _update(job_id: int, **values) -> None:
    db.session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(**values))
    db.session.commit()


def set_stage(job_id: int, stage: str) -> None:
    _update(job_id, stage=stage, heartbeat_at=utcnow())


def heartbeat(job_id: int) -> None:
    _update(job_id, heartbeat_at=utcnow())


def record_progress(job_id: int, done: int, total: int, eta_s: float | None) -> None:
    """An evaluation's progress: `done` clips of `total`."""
    _update(job_id, epoch=done, epochs=total, eta_s=eta_s, heartbeat_at=utcnow(),
            stage=f"evaluating: {done:,} of {total:,} clips")


def record_epoch(job_id: int, row: dict) -> None:
    """One finished epoch: a progress row and the job's epoch/ETA, in one transaction."""
    db.session.add(JobEpoch(job_id=job_id, epoch=row["epoch"], loss=row.get("loss"),
                            accuracy=row.get("accuracy"), val_loss=row.get("val_loss"),
                            val_accuracy=row.get("val_accuracy"), elapsed_s=row.get("elapsed_s"),
                            eta_s=row.get("eta_s")))
    db.session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(
        epoch=row["epoch"], epochs=row.get("epochs"), eta_s=row.get("eta_s"),
        heartbeat_at=utcnow(), stage=row.get("stage") or "training"))
    db.session.commit()


class LogTail:
    """The last lines a job logged, mirrored into its row so pages can show them."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        earlier = db.session.execute(select(TrainingJob.log_tail).where(TrainingJob.id == job_id)).scalar()
        self.lines.extend((earlier or "").splitlines())

    def __call__(self, message: str) -> None:
        stamp = utcnow().strftime("%H:%M:%S")
        for line in str(message).splitlines() or [""]:
            self.lines.append(f"{stamp} {line}")
        current_app.logger.info("job %s: %s", self.job_id, message)
        _update(self.job_id, log_tail=self.text(), heartbeat_at=utcnow())

    def text(self) -> str:
        return "\n".join(self.lines)[-LOG_CHARS:]


def stop_requested(job_id: int) -> bool:
    # A query of its own, not the ORM identity map: the flag is set by another process.
    value = db.session.execute(
        select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id)).scalar()
    db.session.commit()    # end the read transaction, so the next look sees new commits
    return bool(value)


def finish(job_id: int, state: str, error: str | None = None, run_dir: str | None = None,
           metrics: dict | None = None, log_tail: str | None = None) -> None:
    values: dict[str, object] = {"state": state, "stage": None, "finished_at": utcnow(), "error": error,
                                 "eta_s": None}
    if run_dir is not None:
        values["run_dir"] = run_dir
    if metrics is not None:
        values["metrics"] = metrics
    if log_tail is not None:
        values["log_tail"] = log_tail
    _update(job_id, **values)


# ---- reading -----------------------------------------------------------------

def is_stalled(job: TrainingJob, app=None) -> bool:
    """A running job whose worker has not been heard of for a while (dead or stopped)."""
    stale = timedelta(seconds=(app or current_app).config["HARK_JOB_STALE_S"])
    return job.state == "running" and (job.heartbeat_at is None or utcnow() - job.heartbeat_at > stale)


_LOOK_UP = object()


def summary(job: TrainingJob, admin: bool = False, version=_LOOK_UP) -> dict:
    """A job as JSON; `admin` adds the parameters as given (paths included) and who asked."""
    p = params_of(job)
    evaluation = isinstance(p, EvalParams)
    train = p if isinstance(p, TrainParams) else None
    if version is _LOOK_UP:
        version = db.session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    metrics = job.metrics or {}
    settings = train.settings() if train else dict.fromkeys(config.JOB_SETTINGS)
    total = job.epochs or (train.train.epochs if train else cast(EvalParams, p).clips)
    out = {
        "id": job.id, "kind": p.kind, "what": p.describe(), "state": job.state,
        "stage": job.stage, "stalled": is_stalled(job), "dataset": p.label(), **settings,
        # the epochs asked for (None: the method's default); steps: the progress bar's count, an
        # ensemble's members' epochs all together
        "epochs": settings["epochs"], "epoch": None if evaluation else job.epoch,
        "steps": {"done": job.epoch or 0, "total": total, "unit": _unit(p)},
        "eta_s": job.eta_s,
        "prepare_data": train.prepare_data if train else None,
        "activate": train.activate if train else None,
        "created_at": iso(job.created_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at), "heartbeat_at": iso(job.heartbeat_at),
        # the error names files, never where the server keeps them (the log has the rest)
        "cancel_requested": job.cancel_requested, "error": privacy.scrub(job.error),
        "test_accuracy": None if evaluation else metrics.get("accuracy"),
        # {"activated": bool, "why": reason it was not, "guard": both versions' figures}
        "activation": None if evaluation else metrics.get("activation"),
        "thin_labels": None if evaluation else metrics.get("thin_labels"),
        "model": p.model if isinstance(p, EvalParams) else None,
        "evaluation": ({k: metrics.get(k) for k in ("id", "accuracy", "n")}
                       if evaluation and metrics.get("id") else None),
        "version": version.name if version else None,
        "version_id": version.id if version else None,
    }
    if job.started_at and job.finished_at:
        out["duration_s"] = round((job.finished_at - job.started_at).total_seconds(), 1)
    if admin:
        out.update(params=job.params or {}, created_by=job.created_by, worker=job.worker,
                   run_dir=job.run_dir)
    return out


def _unit(params: JobParams) -> str:
    """What a job's steps count."""
    if isinstance(params, EvalParams):
        return "clips"
    ensemble = bool(config.ARCHS.get(params.train.arch or "kws", config.ARCHS["kws"]).members)
    return "epochs of all members" if ensemble and params.train.mode != "teach" else "epochs"


def record_mode(job_id: int, mode: str) -> None:
    """The method a job with mode "auto" turned out to take (its pages say what it does)."""
    job = db.session.get_one(TrainingJob, job_id)
    params = params_of(job)
    assert isinstance(params, TrainParams), "only a training has a method"
    params.train.mode = mode
    job.params = params.to_json()
    db.session.commit()


def summaries(job_list: list[TrainingJob], admin: bool = False) -> list[dict]:
    """`summary` of many jobs, with their versions fetched in one query."""
    ids = [j.id for j in job_list]
    found: Iterable[ModelVersion] = (
        db.session.scalars(select(ModelVersion).where(ModelVersion.job_id.in_(ids))) if ids else [])
    by_job = {v.job_id: v for v in found}
    return [summary(j, admin, version=by_job.get(j.id)) for j in job_list]


def progress_rows(job: TrainingJob) -> list[dict]:
    return [{"epoch": r.epoch, "loss": r.loss, "accuracy": r.accuracy, "val_loss": r.val_loss,
             "val_accuracy": r.val_accuracy, "elapsed_s": r.elapsed_s, "eta_s": r.eta_s}
            for r in db.session.scalars(
                select(JobEpoch).where(JobEpoch.job_id == job.id).order_by(JobEpoch.epoch))]


def current() -> TrainingJob | None:
    """The job pages follow: the running one, else the oldest queued one."""
    for state, order in (("running", TrainingJob.started_at.desc()), ("queued", TrainingJob.id)):
        job = db.session.scalar(select(TrainingJob).where(TrainingJob.state == state).order_by(order))
        if job is not None:
            return job
    return None


def recent(limit: int = 20, finished_only: bool = False) -> list[TrainingJob]:
    query = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit)
    if finished_only:
        query = query.where(TrainingJob.state.in_(FINISHED))
    return list(db.session.scalars(query))


"""What the queue consumer does with one job (never runs in a web worker).

A training job: claim -> (build the default data set) -> ml.train.train with
progress rows and a cancel flag read from the database -> register the model
version -> activate it when asked -> succeeded. A job of another kind (the
admin's folder evaluation, kind "evaluate") is done by the function its package
registered with `add_job_kind`, with the same log, heartbeat and cancel flag, and
succeeds with the metrics it returns. Any failure marks the job
failed with its error and log tail; a cancelled job ends "cancelled". Neither
changes the active model: activation is the very last step of a successful
training, and ml.train leaves no run directory behind when it is cancelled or fails.
"""
from __future__ import annotations

import gc
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import current_app

from webapp.database import db
from webapp.settings import ROOT
from webapp.tables import TrainingJob
from webapp.training import jobs
from webapp.training.params import EvalParams, TrainParams
from webapp.versions import registry

log = logging.getLogger(__name__)
# Set by the consumer when it is asked to stop: a running training ends after its batch.
SHUTDOWN = threading.Event()
HEARTBEAT_S = 10.0
STOP_CHECK_S = 0.5


class _Heartbeat(threading.Thread):
    """Tells the database every few seconds that this job's worker is alive."""

    def __init__(self, app, job_id: int):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.app, self.job_id, self.done = app, job_id, threading.Event()

    def run(self):
        while not self.done.wait(HEARTBEAT_S):
            try:
                with self.app.app_context():
                    jobs.heartbeat(self.job_id)
            except Exception:
                log.exception("heartbeat for job %s", self.job_id)


class _StopFlag:
    """should_stop for ml.train: the job's cancel flag (looked up at most twice a second) or shutdown."""

    def __init__(self, job_id: int):
        self.job_id, self.next_look, self.cancelled = job_id, 0.0, False

    def __call__(self) -> bool:
        if SHUTDOWN.is_set():
            return True
        now = time.monotonic()
        if now >= self.next_look:
            self.next_look = now + STOP_CHECK_S
            self.cancelled = jobs.stop_requested(self.job_id)
        return self.cancelled


JOB_KINDS = "hark.job_kinds"
# run(job_id, params, log, should_stop) -> the job's metrics
KindRunner = Callable[[int, EvalParams, jobs.LogTail, Callable[[], bool]], dict]


def add_job_kind(app, kind: str, run: KindRunner) -> None:
    """Let another package's jobs (params "kind") go through this queue and consumer: `run` does
    the work and returns the job's metrics; claiming, heartbeat, failure and cancel are done here,
    as for a training. Registered by that package's init_app, as the queue is given run_job."""
    app.extensions.setdefault(JOB_KINDS, {})[kind] = run


def run_job(job_id: int) -> None:
    """Run one job to its end state; never raises (the queue has nothing to retry)."""
    if not jobs.claim(job_id):
        log.info("job %s is no longer queued; skipped", job_id)
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the app behind the proxy
    job = db.session.get_one(TrainingJob, job_id)
    params, requested_by = jobs.params_of(job), job.created_by
    tail = jobs.LogTail(job_id)
    stop = _StopFlag(job_id)
    beat = _Heartbeat(app, job_id)
    beat.start()
    run_dir = None
    try:
        if isinstance(params, EvalParams):
            metrics = app.extensions[JOB_KINDS][params.kind](job_id, params, tail, stop)
            jobs.finish(job_id, "succeeded", log_tail=tail.text(), metrics=metrics)
            return
        data: Path | list[Path] | None = teach_folders(params)
        if data is not None:
            jobs.record_mode(job_id, "teach")
            params.train.mode = "teach"
        else:
            data = prepare_data(job_id, params, tail)
        if stop():
            raise _cancelled()
        jobs.set_stage(job_id, "loading data")
        run_dir = _train(job_id, params, data, tail, stop)
        jobs.set_stage(job_id, "measuring the model")
        version = registry.register(run_dir, source="job", job_id=job_id)
        tail(f"model version {version.name}: test accuracy "
             f"{(version.test_accuracy or 0):.1%}, {(version.size_bytes or 0) / 1024:.0f} KB, "
             f"{version.latency_ms:.2f} ms per clip")
        run_dir = None   # registered: from here on it is a version, never removed as debris
        metrics = dict(version.metrics or {})
        if params.activate or not registry.usable(registry.active_run_dir()):
            metrics["activation"] = _guarded_activate(job_id, version, requested_by, tail)
        jobs.finish(job_id, "succeeded", run_dir=version.run_dir, metrics=metrics,
                    log_tail=tail.text())
    except BaseException as exc:
        db.session.rollback()
        _fail(job_id, exc, tail)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise
    finally:
        beat.done.set()
        _free_memory()


def _cancelled():
    from ml.cancel import Cancelled

    return Cancelled("training was cancelled")


def _fail(job_id: int, exc: BaseException, tail: jobs.LogTail) -> None:
    from ml.cancel import Cancelled
    from ml.dataset import DataError

    if isinstance(exc, Cancelled):
        if jobs.stop_requested(job_id):
            tail("cancelled")
            jobs.finish(job_id, "cancelled", log_tail=tail.text())
            return
        error = "interrupted: the worker was stopped while this job ran; start it again"
    elif isinstance(exc, DataError):
        error = str(exc)
    else:
        log.error("job %s failed", job_id, exc_info=exc)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        tail(f"failed: {error}")
    except Exception:  # the database may be what failed; try the row anyway
        log.exception("job %s: could not log the failure", job_id)
    jobs.finish(job_id, "failed", error=error, log_tail=tail.text())


def _guarded_activate(job_id: int, version, requested_by: str | None, tail: jobs.LogTail) -> dict:
    """Activate the job's version unless the guard finds it worse than the active one
    (ml/guard.py); what was decided and why, for the job's metrics and pages."""
    active = registry.active_run_dir()
    verdict = None
    if current_app.config["HARK_GUARD"] and active is not None and registry.usable(active):
        jobs.set_stage(job_id, "checking it against the active version")
        verdict = check_against_active(Path(version.run_dir), active, tail)
        if not verdict["ok"]:
            why = "; ".join(verdict["reasons"])
            tail(f"succeeded, not activated: {why}")
            return {"activated": False, "why": why, "guard": verdict}
    try:
        registry.activate(version.id, requested_by or "job")
        tail(f"model version {version.name} is now the active model")
        return {"activated": True, "guard": verdict}
    except registry.VersionError as exc:
        tail(f"not activated: {exc}")
        return {"activated": False, "why": str(exc), "guard": verdict}


def check_against_active(run_dir: Path, active: Path, tail) -> dict:
    """The guard's verdict on a version against the active one, logged figure by figure."""
    from ml import guard, runs
    from ml.classifier import Classifier

    stick = guard.yardstick(Path(current_app.config["HARK_DATA"]) / "check",
                            Path(current_app.config["HARK_REAL_SPEECH"]), log=tail)
    verdict = guard.compare(Classifier(run_dir), Classifier(active), stick)
    verdict["active_version"] = runs.read_json(Path(active) / "config.json").get("run_id", Path(active).name)
    for name, figures in verdict["candidate"].items():
        old = verdict["active"].get(name, {})
        if name == "recording":
            tail(f"check recording: {figures['hits']} of {figures['commands']} commands found "
                 f"(active version {old.get('hits')})")
        else:
            tail(f"{name}: accuracy {figures['accuracy']:.1%}, confidence of right answers "
                 f"{figures['confidence']:.1%} (active version {old.get('accuracy', 0):.1%}, "
                 f"{old.get('confidence', 0):.1%}; {figures['n']} clips)")
    return verdict


# ---- data ----------------------------------------------------------------------

def teach_folders(params: TrainParams) -> list[Path] | None:
    """The folders of a job that teaches new words (ml/teach.py) to the version it starts
    from: its data sets but the default one, which the version's rehearsal pack stands for
    (never built or embedded for it); None when the job trains every member."""
    from ml import teach

    own = [Path(f) for k, f in zip(params.datasets, params.folders) if k != "default"]
    if not own or not params.train.init or params.train.mode == "full":
        return None
    cfg = params.train_config([str(f) for f in own], current_app.config["HARK_RUNS"])
    return own if teach.can_teach(cfg) else None


def prepare_data(job_id: int, params: TrainParams, tail: jobs.LogTail) -> Path | list[Path]:
    """The folder (or folders) to train on; the default set is built first when it is one of
    them and missing, or asked to."""
    folders = [Path(p) for p in params.folders]
    if "default" in params.datasets:
        _prepare_default(job_id, params, tail)
    return folders[0] if len(folders) == 1 else folders


def _prepare_default(job_id: int, params: TrainParams, tail: jobs.LogTail) -> Path:
    dest = jobs.default_data()
    rebuild = params.prepare_data == "rebuild"
    if not rebuild and (dest / "dataset.json").is_file():
        return dest
    jobs.set_stage(job_id, "building the default data set")
    per_word = current_app.config.get("HARK_DEFAULT_PER_WORD")
    tail(f"building the default data set in {dest.name}/ "
         f"({'afresh' if rebuild else 'it is missing'}; a few minutes at full size)")
    if rebuild:
        rebuild_default(dest, per_word, job_id)
    else:
        _generate(dest, per_word)
    tail("default data set ready")
    return dest


def _generate(dest: Path, per_word: int | None) -> dict:
    from ml.synth.generate import DEFAULT_PER_WORD, generate

    dest.parent.mkdir(parents=True, exist_ok=True)
    return generate(dest, per_word=per_word or DEFAULT_PER_WORD, workers=min(2, os.cpu_count() or 1),
                    progress=False)


def rebuild_default(dest: Path, per_word: int | None, job_id: int) -> None:
    """Build a fresh set beside the old one, then swap the folders (startup repairs a torn swap)."""
    fresh = dest.parent / f".tmp-default-{job_id}"
    old = dest.parent / f".old-default-{job_id}"
    shutil.rmtree(fresh, ignore_errors=True)
    _generate(fresh, per_word)
    if dest.exists():
        dest.rename(old)
    fresh.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


# ---- training --------------------------------------------------------------------

def _data_arg(path: Path) -> str:
    """Paths inside the checkout are recorded relative to it (config.json stays portable)."""
    path = Path(path).resolve()
    if Path.cwd().resolve() == ROOT and path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return str(path)


def _train(job_id: int, params: TrainParams, data: Path | list[Path], tail: jobs.LogTail, stop) -> Path:
    from ml import teach
    from ml.train import train

    folders = [_data_arg(p) for p in data] if isinstance(data, list) else _data_arg(data)
    cfg = params.train_config(folders, current_app.config["HARK_RUNS"])
    Path(cfg.runs).mkdir(parents=True, exist_ok=True)
    if teach.can_teach(cfg):
        assert cfg.init      # a version to teach (can_teach checked it)
        tail(f"teaching {', '.join(teach.new_words(Path(cfg.init), cfg.folders()))} to "
             f"{params.train.init} from the {params.label()} (the default set: the "
             f"version's rehearsal pack)")
    else:
        resolved = cfg.resolved()
        start = f", starting from {params.train.init}" if params.train.init else ""
        tail(f"training {cfg.arch} on {params.label()}{start}: {resolved.epochs} "
             f"epochs, batch {cfg.batch_size}, learning rate {resolved.learning_rate:g}, "
             f"split by {cfg.split}")

    def on_epoch(row: dict) -> None:
        if "epoch" not in row:          # a stage starts (ml.train, ml.teach)
            jobs.set_stage(job_id, row["stage"])
            tail(row["stage"])
            return
        jobs.record_epoch(job_id, row)
        val = f", val accuracy {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
        tail(f"{row['stage']}: loss {row.get('loss', 0):.4f}, "
             f"accuracy {row.get('accuracy', 0):.3f}{val}")

    return Path(train(cfg, on_epoch=on_epoch, should_stop=stop, verbose=0, log=tail))


def _free_memory() -> None:
    """A long-lived consumer trains many models: drop the last one's graph."""
    try:
        import sys

        if "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()
    except Exception:  # a leak is better than a failed job
        log.exception("could not clear the Keras session")
    gc.collect()

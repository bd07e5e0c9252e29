"""Model versions: register a run, measure it, make it the active model, delete old ones.

What serves is decided by one small file, the pointer named by HARK_MODEL
(`instance/active-model` by default). Activating writes it with os.replace, so
every gunicorn worker's ModelStore sees either the old or the new run (never a
half-written one) and switches within HARK_MODEL_CHECK_S; a request in flight
keeps the Classifier it started with. The database's `active` flag mirrors the
pointer and is reconciled from it at startup (webapp/training/startup.py).
A version a queued or running job holds is never deleted: the training package
registers that check here (`add_holder`), so this module knows nothing of jobs.

Activating and deleting exclude each other: both hold one lock between
processes (`lock()`, a file in the instance folder, also taken by the startup
repair) across the re-check of the version and the change, and the database
statements are conditional too (a version is deleted only while not active,
activated only while its row exists), so two admins racing on one version get
one success and one clear 404/409, and the pointer never names a deleted run.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from flask import Flask, current_app
from sqlalchemy import CursorResult, select, update
from sqlalchemy import delete as sql_delete

from ml import runs
from ml.measure import measure
from ml.teach import MIN_TEST_PER_LABEL  # fewer test clips of a label: its figures mean little
from webapp.database import db, iso, utcnow
from webapp.instance import ensure_pointer, pointer_text, versions_lock, write_atomic
from webapp.tables import ModelVersion
from webapp.versions.model_store import resolve

log = logging.getLogger(__name__)
HOLDERS = "hark.version_holders"


class VersionError(ValueError):
    """A change to a version that cannot be done; `status` is the HTTP answer (404, 409)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def add_holder(app: Flask, holder: Callable[[Path, str], str | None]) -> None:
    """Something that may hold a version (a queued or running job): `holder(run_dir, name)` says
    what holds it ("job #3 (queued: ...)"), or None; `delete` refuses while one does."""
    app.extensions.setdefault(HOLDERS, []).append(holder)


def default_pointer(app: Flask) -> Path:
    return ensure_pointer(Path(app.instance_path), Path(app.config["HARK_DEFAULT_MODEL"]))


def pointer(app: Flask | None = None) -> Path | None:
    """The pointer file activation writes, or None when HARK_MODEL names a run directory itself."""
    source = Path((app or current_app).config["HARK_MODEL"])
    return None if source.is_dir() else source


def active_run_dir(app: Flask | None = None) -> Path | None:
    """The run directory the pointer names (resolved), whether or not it is usable."""
    source = Path((app or current_app).config["HARK_MODEL"])
    try:
        return resolve(source).resolve() if source.exists() else None
    except OSError:
        return None


def usable(run_dir: Path | None) -> bool:
    """A complete run with its serving export (what ModelStore and Classifier need)."""
    return runs.is_complete(run_dir)


# ---- registering -------------------------------------------------------------

def _metrics_summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    m = runs.read_json(path)
    f1 = [c.get("f1", 0.0) for c in (m.get("per_class") or {}).values()]
    thin = [label for label, c in (m.get("per_class") or {}).items()
            if c.get("support", 0) < MIN_TEST_PER_LABEL]
    return {"accuracy": m.get("accuracy"), "n": m.get("n"),
            "macro_f1": round(sum(f1) / len(f1), 4) if f1 else None,
            "thin_labels": thin}   # too few test clips for their figures to mean much


def find(run_dir: Path) -> ModelVersion | None:
    return db.session.scalar(select(ModelVersion).where(
        ModelVersion.run_dir == str(Path(run_dir).resolve())))


def register(run_dir: Path, source: str = "job", job_id: int | None = None) -> ModelVersion:
    """Add a run to the versions table (once; a second call returns the same row)."""
    run_dir = Path(run_dir).resolve()
    existing = find(run_dir)
    if existing is not None:
        return existing
    config = runs.read_json(run_dir / "config.json")
    metrics = _metrics_summary(run_dir)
    version = ModelVersion(
        name=config.get("run_id") or run_dir.name,     # what Classifier.version and the API say
        run_dir=str(run_dir), source=source, job_id=job_id, arch=config.get("arch"),
        labels=runs.labels_of(run_dir), test_accuracy=(metrics or {}).get("accuracy"),
        metrics=metrics, **measure(run_dir))
    db.session.add(version)
    db.session.commit()
    log.info("registered model version %s (%s)", version.name, run_dir)
    return version


# ---- activating and deleting --------------------------------------------------

@contextmanager
def lock(app: Flask | None = None):
    """Held while the active model or the set of versions changes (every process of this machine)."""
    with versions_lock((app or current_app).instance_path):
        yield


def _fresh(version_id: int) -> ModelVersion:
    """The version as the database has it now (another process may have deleted it)."""
    version = db.session.scalar(select(ModelVersion).where(ModelVersion.id == version_id)
                                .execution_options(populate_existing=True))
    if version is None:
        raise VersionError(f"no model version {version_id} (it may have just been deleted)", 404)
    return version


def _check_loads(version: ModelVersion) -> None:
    """Its files are complete and load: never point every worker at a broken model."""
    run_dir = Path(version.run_dir)
    if not usable(run_dir):
        raise VersionError(f"model version {version.name} is incomplete or missing on disk", 409)
    from ml.classifier import Classifier

    try:
        Classifier(run_dir)
    except Exception as exc:     # noqa: BLE001  any failure means "do not activate"
        raise VersionError(f"model version {version.name} does not load: {exc}", 409) from None


def activate(version_id: int, user: str | None) -> ModelVersion:
    """Make a version the served model: checked, then the pointer replaced atomically."""
    target = pointer()
    if target is None:
        raise VersionError("HARK_MODEL names a run directory, so the active model is fixed; "
                       "point HARK_MODEL at a pointer file to switch models here", 409)
    _check_loads(_fresh(version_id))      # the slow load happens before the lock
    with lock():
        version = _fresh(version_id)      # deleted while it loaded: 404, nothing changed
        if not usable(Path(version.run_dir)):
            raise VersionError(f"model version {version.name} is incomplete or missing on disk", 409)
        if not _mark_active(version.id, user):
            db.session.rollback()
            raise VersionError(f"no model version {version_id} (it was just deleted)", 404)
        write_pointer(target, Path(version.run_dir))
        db.session.commit()
        db.session.refresh(version)      # read while no one can delete it: the answer is whole
    log.info("model version %s activated by %s", version.name, user)
    return version


def write_pointer(target: Path, run_dir: Path) -> None:
    write_atomic(target, pointer_text(target, run_dir))


def _mark_active(version_id: int, user: str | None) -> bool:
    """Flag `version_id` as the active one (uncommitted); False when its row is gone."""
    db.session.execute(update(ModelVersion).where(ModelVersion.id != version_id)
                       .where(ModelVersion.active.is_(True)).values(active=False))
    # An UPDATE's or DELETE's result is a CursorResult (rowcount); Session.execute is typed Result.
    marked = cast(CursorResult[Any], db.session.execute(
        update(ModelVersion).where(ModelVersion.id == version_id)
        .values(active=True, activated_at=utcnow(), activated_by=user)))
    return marked.rowcount == 1


def last_active(exclude: Path | None = None) -> ModelVersion | None:
    """The most recently activated version whose files are still usable (the startup repair's pick)."""
    ever_active = select(ModelVersion).where(ModelVersion.activated_at.is_not(None)) \
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
    for version in db.session.scalars(ever_active):
        run_dir = Path(version.run_dir)
        if usable(run_dir) and (exclude is None or run_dir.resolve() != Path(exclude).resolve()):
            return version
    return None


def reconcile(app: Flask) -> ModelVersion | None:
    """Set the table's active flag from the pointer (the truth); returns the active version."""
    run_dir = active_run_dir(app)
    version = find(run_dir) if run_dir else None
    current = db.session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).all()
    if [v.id for v in current] != ([version.id] if version else []):
        db.session.execute(update(ModelVersion).values(active=False))
        if version is not None:
            db.session.execute(update(ModelVersion).where(ModelVersion.id == version.id)
                               .values(active=True))
        db.session.commit()
    return version


def delete(version_id: int) -> str:
    """Forget a version and remove its run directory; never the active one or the shipped default."""
    with lock():
        version = _fresh(version_id)
        run_dir, name = Path(version.run_dir), version.name
        active = active_run_dir()
        in_use = f"{name} is the active model; activate another one first"
        if version.active or (active is not None and run_dir.resolve() == active):
            raise VersionError(in_use, 409)
        if version.source == "default":
            raise VersionError("the shipped default model cannot be deleted", 409)
        for holder in current_app.extensions.get(HOLDERS, []):
            held = holder(run_dir, name)
            if held:
                raise VersionError(f"{name} is in use by {held}; wait for it to finish or cancel it, "
                                   f"then delete the version", 409)
        gone = cast(CursorResult[Any], db.session.execute(
            sql_delete(ModelVersion).where(ModelVersion.id == version_id)
            .where(ModelVersion.active.is_(False))))
        if gone.rowcount != 1:           # activated by a process this lock does not reach
            db.session.rollback()
            raise VersionError(in_use, 409)
        db.session.commit()
        # Only run directories this installation made are removed from disk.
        runs_root = Path(current_app.config["HARK_RUNS"]).resolve()
        if run_dir.resolve().parent == runs_root and run_dir.is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)
    return name


def summary(version: ModelVersion) -> dict:
    return {
        "id": version.id, "name": version.name, "source": version.source, "arch": version.arch,
        "labels": version.labels, "test_accuracy": version.test_accuracy,
        "macro_f1": (version.metrics or {}).get("macro_f1"),
        "test_clips": (version.metrics or {}).get("n"),
        "size_bytes": version.size_bytes, "latency_ms": version.latency_ms,
        "created_at": iso(version.created_at), "activated_at": iso(version.activated_at),
        "activated_by": version.activated_by, "active": version.active, "job_id": version.job_id,
        "on_disk": usable(Path(version.run_dir)),
    }


def all_versions() -> list[ModelVersion]:
    return list(db.session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(),
                                                                 ModelVersion.id.desc())))

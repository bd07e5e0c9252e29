"""Teaching a data set's new words to the active version: what it would do, and the job.

The data set page's "Teach these words" and `POST /admin/api/datasets/<key>/teach` both
submit the job of issue 25's contract: the default set (its rehearsal pack) and the data
set, from the active version, activated if the guard finds it no worse (ml/teach.py,
ml/guard.py). The page first says what teaching would do (`plan`).
"""
from __future__ import annotations

from pathlib import Path

from ml import teach
from webapp.tables import TrainingJob
from webapp.training import jobs
from webapp.versions import registry


def _active():
    """The active version's row (JobError 409 when none is registered and usable)."""
    run_dir = registry.active_run_dir()
    version = registry.find(run_dir) if run_dir is not None and registry.usable(run_dir) else None
    if version is None:
        raise jobs.JobError("there is no active model version to teach", 409)
    return version


def plan(folder: Path) -> dict:
    """What teaching the data set in `folder` to the active version would do (see ml.teach.plan),
    with the version's name; "why" says why it cannot where it cannot."""
    try:
        version = _active()
    except jobs.JobError as exc:
        return {"words": [], "taken_from_unknown": [], "few_takes": {}, "why": str(exc), "version": None}
    return {**teach.plan(Path(version.run_dir), [folder]), "version": version.name}


def submit(key: str, folder: Path, user: str | None) -> TrainingJob:
    """Queue the teaching job (JobError with a reason where the data set cannot be taught)."""
    version = _active()
    why = teach.plan(Path(version.run_dir), [folder])["why"]
    if why:
        raise jobs.JobError(f"nothing to teach: {why}", 409)
    params = jobs.make_params(dataset=["default", key], activate=True, init_dir=version.run_dir,
                              init=version.name, arch=version.arch, mode="teach")
    return jobs.submit(params, user)

"""The default data set's audio, made again on a machine that lacks it, so the gallery plays.

A fresh checkout ships models/default but not data/default, whose clips its gallery
cards play. The set is deterministic (ml/synth/generate.py: the same arguments and
engines give the same files), so the first time the gallery shows a source whose
audio should be in the default data folder and is not, the server builds that folder
in a child process (`python -m ml data default`, a few minutes on two cores; web
workers never import the speech engines). The child holds a lock on a `.building`
file while it lives, so every worker knows whether it runs, even after a crash; the
gallery shows its progress (clips on disk of the plan's total, read from the
generator's progress line) and turns the cards on when the folder is complete.
Only the configured default data folder (HARK_DATA/default) is ever built, and only
when no training job is about to build it itself.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from webapp import child_builds
from webapp.database import db
from webapp.gallery.data import Source, cache_folder
from webapp.tables import TrainingJob
from webapp.training import jobs
from webapp.training.params import TrainParams

log = logging.getLogger(__name__)
RETRY_FAILED_S = 300        # a failed build is reported this long before a visit tries again
LABEL_DIRS = ("_silence_", "_unknown_", "down", "go", "left", "no", "right", "stop", "up", "yes")
_TOTAL = re.compile(rb"\b(\d+)/(\d+) ")


def default_folder() -> Path:
    return (Path(current_app.config["HARK_DATA"]) / "default").resolve()


def target(source: Source) -> Path | None:
    """The folder to build for `source`: the default data folder, when it is one of the
    source's folders and its audio is not complete."""
    if not source.data:
        return None
    try:
        folders = [f.resolve() for f in source.folders()]
    except OSError:
        return None
    root = default_folder()
    if root not in folders or (root / "dataset.json").is_file():
        return None
    if root.is_dir() and not (root / ".synth-plan.json").is_file() and not _files("build.building").exists():
        return None            # a folder someone else made: not ours to fill
    return root


def _files(name: str) -> Path:
    folder = cache_folder() / "default-audio"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _job_building() -> int | None:
    """A queued or running training job that will build the default set itself."""
    pending = db.session.scalars(select(TrainingJob).where(TrainingJob.state.in_(("queued", "running"))))
    for job in pending:
        p = jobs.params_of(job)
        if isinstance(p, TrainParams) and "default" in p.datasets \
                and p.prepare_data in ("missing", "rebuild"):
            return job.id
    return None


def _clips_on_disk(dest: Path) -> int:
    count = 0
    for label in LABEL_DIRS:
        try:
            with os.scandir(dest / label) as entries:
                count += sum(1 for e in entries if e.name.endswith(".wav"))
        except OSError:
            pass
    return count


def _total() -> int | None:
    """The plan's clip count, from the generator's progress line in the child's log."""
    try:
        with open(_files("build.log"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            found = _TOTAL.findall(f.read())
    except OSError:
        return None
    return int(found[-1][1]) if found else None


def _record_failure(marker: Path) -> None:
    try:
        output = _files("build.log").read_text(errors="replace")
    except OSError:
        output = ""
    lines = [line for line in output.replace("\r", "\n").splitlines() if line.strip()]
    reason = lines[-1][-300:] if lines else "the builder stopped without a word"
    log.error("building the default data set failed:\n%s", output[-3000:])
    _files("build.failed").write_text(json.dumps({"error": reason, "at": time.time()}))
    marker.unlink(missing_ok=True)


def _first(source: Source, dest: Path) -> Path:
    """The file listing the source's clips under `dest`, which the build makes first: the
    page's cards play within seconds, the rest of the set follows."""
    from webapp.gallery.data import rows_of

    root = source.data_root.resolve()
    wanted = []
    for row in rows_of(source):
        path = (root / str(row.get("path", ""))).resolve()
        if path.is_relative_to(dest):
            wanted.append(str(path.relative_to(dest)))
    listing = _files("first.txt")
    listing.write_text("\n".join(wanted) + "\n")
    return listing


def _start(source: Source, dest: Path, marker: Path) -> None:
    per_word = current_app.config.get("HARK_DEFAULT_PER_WORD")
    command = ["ml", "data", "default", "--dest", str(dest), "--workers", str(min(2, os.cpu_count() or 1)),
               "--first", str(_first(source, dest))]
    if per_word:
        command += ["--per-word", str(per_word)]
    pid = child_builds.start(command, marker, _files("build.log"))
    log.info("building the default data set into %s for the gallery (pid %d)", dest, pid)


def ensure(source: Source, start: bool = True) -> dict | None:
    """The state of `source`'s audio build, starting it when needed and allowed; None when
    there is nothing to build. {"state": building|job|failed, "done", "total", "message"}."""
    dest = target(source)
    if dest is None:
        return None
    marker = _files("build.building")
    with open(_files(".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if (dest / "dataset.json").is_file():
            return None
        job_id = _job_building()
        if job_id is not None:
            return {"state": "job", "job": job_id, "done": _clips_on_disk(dest), "total": None,
                    "message": f"Training job #{job_id} builds the default data set first; "
                               "the cards play once it has."}
        if marker.exists() and not child_builds.running(marker):
            _record_failure(marker)
        failure = child_builds.recent_failure(_files("build.failed"), RETRY_FAILED_S)
        if failure is not None:
            return {"state": "failed", "done": _clips_on_disk(dest), "total": None,
                    "message": f"Making the audio failed: {failure['error']}"}
        if not marker.exists():
            if not start:
                return None
            _start(source, dest, marker)
    done, total = _clips_on_disk(dest), _total()
    of = f" of {total:,}" if total else ""
    so_far = f"{done:,}{of} clips so far" if done else "loading the voices"
    return {"state": "building", "done": done, "total": total,
            "message": f"Making the audio of the default set's clips on this server from its "
                       f"recipe, this page's clips first (they play as they are made; the whole "
                       f"set takes a few minutes): {so_far}."}


def audio_state(source: Source) -> dict:
    """source.audio_status() with, when its audio is being made here, the build's progress."""
    status = source.audio_status()
    building = ensure(source)
    if building is not None:           # a half-made folder is not offered, file by file
        status.update(available=False, building=building, message=building["message"])
    return status

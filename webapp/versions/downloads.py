"""Download a model version as Keras, TFLite, TFLite int8 or a bundle (ml/export/formats.py).

The active model may be downloaded by anyone, other versions by the admin only.
Exporting needs TensorFlow, which a web worker never imports: each file is built
once per version and format by `python -m ml export` in a child process, into
instance/cache/exports/<version>/, and the exporter writes it atomically. While
it is built the request is answered 202 (a page that reloads itself, or JSON
for the menu's script, static/js/downloads.js), so no worker waits for it. A
child holds a lock on its `.building` file while it lives, so every worker
knows whether a build is still running, even after a crash.

The file's name carries a fingerprint of the run's files, so a run exported
again (another `_unknown_` weight) gets a new file and a new ETag; responses
are `Cache-Control: private, no-cache` with that ETag, so browsers keep the
file and ask again (a 304) with the permission checked every time.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, render_template, request, send_file, url_for
from flask_login import current_user

from ml import runs
from ml.export import formats
from ml.export.formats import FORMATS, ExportError
from webapp import child_builds
from webapp.database import db
from webapp.errors import ApiError, respond
from webapp.security import privacy
from webapp.settings import ROOT
from webapp.tables import ModelVersion
from webapp.versions import registry
from webapp.versions.evaluations import folder as evaluations_folder
from webapp.versions.evaluations import list_evaluations
from webapp.versions.run_files import read_cached

log = logging.getLogger(__name__)
bp = Blueprint("downloads", __name__)

RETRY_FAILED_S = 60          # a failed build is reported this long before a request tries again
BUILD_LIMIT_S = 30 * 60      # a build still running after this is stopped and reported failed
POLL_S = 2                   # how often the "preparing" page reloads
WAITING_BUILDS = 2           # builds that may wait for the one running (HARK_EXPORT_WAITING); then 503
RETRY_BUSY_S = 30            # Retry-After of that 503: about one build
FINGERPRINTED = ("model.keras", "metrics.json")    # besides the served files (ml.runs.serving_files)


# ---- which version, and may this visitor have it ------------------------------------------

def _version(version_id: int) -> ModelVersion:
    version = db.session.get(ModelVersion, version_id)
    if version is None:
        raise ApiError(404, f"no model version {version_id}")
    return version


def is_active(version: ModelVersion) -> bool:
    active = registry.active_run_dir()
    return active is not None and Path(version.run_dir).resolve() == active


def may_download(version: ModelVersion) -> bool:
    return current_user.is_authenticated or is_active(version)


def _config(version: ModelVersion) -> dict:
    return read_cached(Path(version.run_dir) / "config.json") or {}


def data_folder(config: dict) -> Path:
    """The run's training data as the export's child process sees it (relative: from the checkout)."""
    path = Path(config.get("data") or "").expanduser()
    return path if path.is_absolute() else ROOT / path


def unavailable_reason(version: ModelVersion, fmt: str) -> str | None:
    """Why `fmt` cannot be built for this version here, in words for people; None when it can."""
    if not registry.usable(Path(version.run_dir)):
        return f"the files of model version {version.name} are not on this machine"
    config = _config(version)
    try:
        spec = formats.check_format(config, fmt)
    except ExportError as exc:
        return str(exc)
    missing = formats.missing_files(Path(version.run_dir), config)
    if missing:
        return f"{', '.join(missing)} of model version {version.name} is not on this machine"
    if spec.needs_data and not data_folder(config).is_dir():
        return (f"{spec.title} is calibrated on the training clips, and their folder "
                f"{privacy.shown_folder(config.get('data'))} is not on this machine")
    return None


# ---- the cache: one file per version, format and state of the run's files -----------------

@dataclass(frozen=True)
class Export:
    version: ModelVersion
    fmt: str
    path: Path                  # the finished file
    fingerprint: str
    evaluations: tuple[Path, ...]

    @property
    def download_name(self) -> str:
        return formats.file_name(self.version.name, self.fmt)

    def sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)


def _evaluations_of(run_dir: Path) -> tuple[Path, ...]:
    """Stored gallery evaluations of this run (quoted in its bundle's model card): those on
    public clips only, as anyone may download the active model's bundle (webapp/security/privacy.py)."""
    folder = evaluations_folder()
    found = []
    for path in list_evaluations(folder):
        record = read_cached(path)
        if isinstance(record, dict) and record.get("report") and record.get("model_dir") \
                and Path(record["model_dir"]).resolve() == run_dir \
                and privacy.folder_public(record.get("folder")):
            found.append(path)
    return tuple(sorted(found))


def _export_of(version: ModelVersion, fmt: str) -> Export:
    run_dir = Path(version.run_dir).resolve()
    evaluations = _evaluations_of(run_dir) if fmt == "bundle" else ()
    parts = [formats.EXPORT_VERSION, fmt, str(run_dir)]
    try:
        served = runs.serving_files(run_dir)
    except (OSError, ValueError):
        served = []
    for path in [run_dir / name for name in FINGERPRINTED] + served + list(evaluations):
        try:
            st = path.stat()
            parts.append([path.name, st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append([path.name, None])
    fingerprint = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
    folder = Path(current_app.instance_path) / "cache" / "exports" / _safe(version.name)
    path = folder / f"{fmt}-{fingerprint}{FORMATS[fmt].suffix}"
    return Export(version, fmt, path, fingerprint, evaluations)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "version"


def state(export: Export, start: bool) -> dict:
    """{"state": "ready" | "building" | "failed", "error", "status"}; starts a build if asked."""
    folder = export.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if export.path.is_file():
            return {"state": "ready"}
        marker = export.sibling(".building")
        if marker.exists():
            if child_builds.running(marker):
                return {"state": "building", "waiting": not _stop_if_stuck(marker)}
            _record_failure(export)
        failure = _failure(export)
        if failure is not None:
            return failure
        if not start:
            return {"state": "absent"}
        _start(export)
        return {"state": "building"}


def _stop_if_stuck(marker: Path) -> bool:
    """True when this build holds the machine's build slot; stopped if it has held it too long
    (the time it waited for the slot does not count)."""
    info = child_builds.holder(marker.parent.parent / ".slot")
    if not info or not info.get("pid") or info["pid"] != child_builds.marker_pid(marker):
        return False
    if time.time() - info.get("started", time.time()) > BUILD_LIMIT_S:
        log.error("export %s ran over %d s: stopping it", marker.name, BUILD_LIMIT_S)
        try:
            os.killpg(int(info["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return True         # it holds the slot until it ends, stopped or not


def _record_failure(export: Export) -> None:
    """The child ended without writing the file: keep its reason, drop its marker."""
    output = ""
    try:
        output = export.sibling(".log").read_text(errors="replace")
    except OSError:
        pass
    refusals = [line[len("error: "):] for line in output.splitlines() if line.startswith("error: ")]
    if refusals:
        failure = {"status": 409, "error": f"the export was refused: {privacy.scrub(refusals[-1])}"}
    else:
        failure = {"status": 500, "error": "the export failed (the server log has the details)"}
        log.error("export of %s as %s failed:\n%s", export.version.name, export.fmt, output[-3000:])
    export.sibling(".failed").write_text(json.dumps({**failure, "at": time.time()}))
    export.sibling(".building").unlink(missing_ok=True)


def _failure(export: Export) -> dict | None:
    failure = child_builds.recent_failure(export.sibling(".failed"), RETRY_FAILED_S)
    if failure is None:
        return None
    return {"state": "failed", "status": failure.get("status", 500), "error": failure.get("error")}


class _Busy(Exception):
    """As many builds as allowed are running or waiting on this machine."""


@bp.errorhandler(_Busy)
def _busy(exc: _Busy):
    return respond(503, str(exc), [("Retry-After", str(RETRY_BUSY_S))], code="busy")


def _start(export: Export) -> None:
    """Run `python -m ml export` for this file in a child process holding the `.building` lock.

    One build at a time per machine (each child waits for the exports' `.slot` lock before it
    imports TensorFlow, ~700 MB), and at most WAITING_BUILDS waiting: counted and started under
    one lock, so two gunicorn workers cannot both take the last place."""
    root = export.path.parent.parent
    with open(root / ".queue-lock", "a") as queue_lock:
        fcntl.flock(queue_lock.fileno(), fcntl.LOCK_EX)
        live = [m for m in root.glob("*/*.building") if child_builds.running(m)]
        if len(live) > current_app.config.get("HARK_EXPORT_WAITING", WAITING_BUILDS):
            raise _Busy(f"{len(live)} exports are being built or waiting on this server (one at a "
                        f"time): try again in {RETRY_BUSY_S} s")
        _start_child(export, root / ".slot")


def _start_child(export: Export, slot: Path) -> None:
    earlier = re.compile(rf"{re.escape(export.fmt)}-[0-9a-f]{{16}}[^/]*")   # the run's older states
    for old in export.path.parent.iterdir():
        if earlier.fullmatch(old.name) and not old.name.startswith(export.path.name) \
                and old.suffix != ".building":
            old.unlink(missing_ok=True)
    command = ["ml", "export", "--model", export.version.run_dir, "--format", export.fmt,
               "--out", str(export.path)]
    for path in export.evaluations:
        command += ["--evaluation", str(path)]
    pid = child_builds.start(command, export.sibling(".building"), export.sibling(".log"),
                             env={"TF_CPP_MIN_LOG_LEVEL": "2"}, slot=slot)
    log.info("exporting model version %s as %s (pid %d)", export.version.name, export.fmt, pid)


# ---- routes -----------------------------------------------------------------------------------

def _checked(version_id: int, fmt: str) -> Export:
    version = _version(version_id)
    if not may_download(version):
        raise _Refused()
    if fmt not in FORMATS:
        raise ApiError(404, f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    reason = unavailable_reason(version, fmt)
    if reason:
        raise ApiError(404 if fmt not in formats.formats_of(_config(version)) else 409, reason)
    return _export_of(version, fmt)


def _now(export: Export) -> dict:
    """state() for this visitor: only a logged-in user starts a build; anyone else gets what
    is built already (the active model's files), else 404."""
    now = state(export, start=current_user.is_authenticated)
    if now["state"] == "absent":
        raise ApiError(404, f"{export.download_name} has not been built on this server yet "
                            "(an administrator's download builds it)", code="not_built")
    return now


class _Refused(Exception):
    """Not the active model, and nobody is logged in: the login page (or 401 JSON) answers."""


@bp.errorhandler(_Refused)
def _refused(_exc):
    return current_app.login_manager.unauthorized()


def _send(export: Export):
    response = send_file(export.path, mimetype=FORMATS[export.fmt].content_type, as_attachment=True,
                         download_name=export.download_name, etag=export.fingerprint,
                         conditional=True, max_age=None)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/versions/<int:version_id>/download/<fmt>")
def download(version_id: int, fmt: str):
    """The file; 202 and a page that reloads itself while it is being built."""
    export = _checked(version_id, fmt)
    now = _now(export)
    if now["state"] == "ready":
        return _send(export)
    if now["state"] == "failed":
        raise ApiError(now["status"], now["error"])
    referrer = urlsplit(request.referrer or "")
    back = (referrer.path or "/") if referrer.netloc == request.host else url_for("gallery.index")
    page = render_template("download.html", export=export, title=FORMATS[fmt].title,
                           poll_s=POLL_S, back=back)
    return page, 202, {"Retry-After": str(POLL_S), "Cache-Control": "no-store"}


@bp.get("/api/versions/<int:version_id>/exports/<fmt>")
def status(version_id: int, fmt: str):
    """{"state", "url", "file_name"}: starts the build; the menu's script polls it until ready."""
    export = _checked(version_id, fmt)
    now = _now(export)
    if now["state"] == "failed":
        raise ApiError(now["status"], now["error"])
    body = {"state": now["state"], "waiting": now.get("waiting", False), "format": fmt,
            "file_name": export.download_name,
            "url": url_for("downloads.download", version_id=version_id, fmt=fmt)}
    return jsonify(body), 200 if now["state"] == "ready" else 202, {"Cache-Control": "no-store"}


# ---- the Download menu, for templates -------------------------------------------------------

def download_menu(version_id: int | None = None, run_dir: str | Path | None = None) -> dict | None:
    """The menu of a version (by id, or by its run directory) if this visitor may download it."""
    if version_id is not None:
        version = db.session.get(ModelVersion, version_id)
    elif run_dir is not None:
        version = registry.find(Path(run_dir))
    else:
        version = None
    if version is None or not may_download(version):
        return None
    items = []
    for fmt in formats.formats_of(_config(version)):
        items.append({"format": fmt, "title": FORMATS[fmt].title, "about": FORMATS[fmt].about,
                      "file_name": formats.file_name(version.name, fmt),
                      "url": url_for("downloads.download", version_id=version.id, fmt=fmt),
                      "status_url": url_for("downloads.status", version_id=version.id, fmt=fmt),
                      "unavailable": unavailable_reason(version, fmt) or _not_built(version, fmt)})
    return {"version": version.name, "id": version.id, "items": items} if items else None


def _not_built(version: ModelVersion, fmt: str) -> str | None:
    """For visitors who may not start a build: the formats not built yet."""
    if current_user.is_authenticated or _export_of(version, fmt).path.is_file():
        return None
    return "not built on this server yet"


@bp.app_context_processor
def _menu_context():
    return {"download_menu": download_menu}

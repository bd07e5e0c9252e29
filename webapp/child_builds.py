"""Long builds in a child process (a model export, the default set's audio), one at a time.

The web worker starts `python -m ml ...` with a marker file locked (flock) and
hands the lock to the child, so "is it still building?" is "is the marker still
locked?", true across workers and restarts, and false the moment the child ends,
however it ends. The marker holds the child's pid and start time.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from webapp.settings import ROOT

_children: list[subprocess.Popen] = []     # builds this worker started (reaped as they end)


def start(command: list[str], marker: Path, log_file: Path, env: dict | None = None) -> int:
    """Run `python -m <command...>` from the checkout, output to `log_file`; returns its pid."""
    _children[:] = [child for child in _children if child.poll() is None]
    fd = os.open(marker, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    try:
        with open(log_file, "w") as output:
            child = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": path, **(env or {})},
                                     stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=subprocess.STDOUT, pass_fds=(fd,),
                                     start_new_session=True)
        os.write(fd, json.dumps({"pid": child.pid, "started": time.time()}).encode())
    finally:
        os.close(fd)       # the child keeps the lock (its copy of fd) until it ends
    _children.append(child)
    return child.pid


def running(marker: Path) -> bool:
    """True while a child holds the lock on `marker`."""
    try:
        fd = os.open(marker, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)       # closing drops the test lock we may have taken
    return False


def recent_failure(path: Path, retry_after_s: float) -> dict | None:
    """A failure recorded in `path` (JSON with "at"), or None once it is older than
    `retry_after_s` (then the file is removed, so the build may be tried again)."""
    try:
        failure = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if time.time() - failure.get("at", 0) > retry_after_s:
        path.unlink(missing_ok=True)
        return None
    return failure

"""Long builds in a child process (a model export, the default set's audio), one at a time.

The web worker starts `python -m ml ...` with a marker file locked (flock) and
hands the lock to the child, so "is it still building?" is "is the marker still
locked?", true across workers and restarts, and false the moment the child ends,
however it ends. The marker holds the child's pid and start time.

Given a `slot` file, the child first waits for the lock on it and only then imports
what it runs, so builds sharing a slot run one at a time on this machine (a waiting
child is a bare interpreter, ~10 MB, not a TensorFlow process); the slot names its
holder's pid and when it got the slot. Each child is reaped by a thread of the worker
that started it the moment it ends, so none is left a zombie.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from webapp.settings import ROOT

# `python -c` of a child given a slot: wait for the slot's lock, say so in it, then run the module
# as `python -m` would (nothing heavy is imported before the lock is held).
_AFTER_SLOT = """import fcntl, json, os, runpy, sys, time
slot = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
fcntl.flock(slot, fcntl.LOCK_EX)
os.ftruncate(slot, 0)
os.write(slot, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def start(command: list[str], marker: Path, log_file: Path, env: dict | None = None,
          slot: Path | None = None) -> int:
    """Run `python -m <command...>` from the checkout, output to `log_file`; returns its pid.
    With `slot`, the child waits for the slot's lock before it runs `command`."""
    fd = os.open(marker, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    run = ["-m", *command] if slot is None else ["-c", _AFTER_SLOT, str(slot), *command]
    try:
        with open(log_file, "w") as output:
            child = subprocess.Popen([sys.executable, *run], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": path, **(env or {})},
                                     stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=subprocess.STDOUT, pass_fds=(fd,),
                                     start_new_session=True)
        os.write(fd, json.dumps({"pid": child.pid, "started": time.time()}).encode())
    finally:
        os.close(fd)       # the child keeps the lock (its copy of fd) until it ends
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return child.pid


def marker_pid(marker: Path) -> int | None:
    try:
        return int(json.loads(marker.read_text() or "{}").get("pid"))
    except (OSError, ValueError, TypeError):
        return None


def holder(slot: Path) -> dict | None:
    """{"pid", "started"} of the child holding `slot` now (started: when it got it), or None."""
    if not running(slot):
        return None
    try:
        return json.loads(slot.read_text() or "{}") or None
    except (OSError, ValueError):
        return None


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

"""The repository's gunicorn, started for a bench on a free 127.0.0.1 port.

Shared by the benches that drive a real server over loopback: find a free port,
start gunicorn with gunicorn.conf.py serving wsgi:app, wait for /api/health,
and read the master's worker processes from /proc.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, settings: dict, defaults: dict | None = None, log=None) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:`port`; its environment is this one with `settings` on top.

    `defaults` apply only where this environment leaves them unset. Output goes to
    the open file `log` when given; otherwise stdout is dropped and stderr kept as
    a pipe, for wait_healthy to show should the server exit.
    """
    env = {**(defaults or {}), **os.environ, **settings,
           "HARK_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=log or subprocess.DEVNULL, stderr=log or subprocess.PIPE, text=True)


def wait_healthy(port: int, server: subprocess.Popen, log_path: Path | None = None,
                 timeout: float = 120) -> dict:
    """The /api/health answer, once there is one; exits when gunicorn exits or takes too long."""
    url = f"http://127.0.0.1:{port}/api/health"
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            output = log_path.read_text()[-3000:] if log_path else server.stderr.read()
            raise SystemExit(f"gunicorn exited:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.load(r)
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not become healthy in time")


def children(master_pid: int) -> dict[int, dict]:
    """The gunicorn master's children, from /proc: {pid: fields of /proc/pid/status}."""
    children = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(master_pid):
            children[int(status.parent.name)] = fields
    return children

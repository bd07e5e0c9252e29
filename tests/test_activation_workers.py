"""Activation reaches every gunicorn worker: real gunicorn, two workers, real HTTP.

The admin logs in and activates another model version over HTTP; then bursts
of concurrent /api/predict requests (tagged in the URL) must all answer with
the new version, and gunicorn's access log must show that every worker process
served some of them. The same is checked for the old version before.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, ROOT, audio_bytes, copy_run

pytestmark = pytest.mark.slow
WORKERS = 2
BOUNDARY = "harktestboundary"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A cookie-keeping HTTP client that never follows redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self._NoRedirect)

    def request(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {}, method=method)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def predict(base: str, phase: str) -> str:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + audio_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/predict?phase={phase}", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["model"]


def pids_serving(access_log: Path, phase: str) -> set[str]:
    pattern = re.compile(rf"^<(\d+)> .*phase={phase}\b")
    return {m.group(1) for line in access_log.read_text().splitlines() if (m := pattern.match(line))}


def burst(base: str, phase: str, access_log: Path, workers: set[str], rounds: int = 40) -> set[str]:
    """Concurrent requests until every worker has answered some; returns the versions seen."""
    seen: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            seen |= set(pool.map(lambda _: predict(base, phase), range(16)))
            time.sleep(0.2)      # the access log is written after each response
            if pids_serving(access_log, phase) >= workers:
                return seen
    raise AssertionError(f"not every worker answered: {pids_serving(access_log, phase)} of {workers}")


@pytest.fixture
def server(tmp_path, tiny_run):
    other = copy_run(tiny_run, tmp_path / "runs" / "20990101-000000-kws")
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(tmp_path / "runs"),
           "HARK_DATA": str(tmp_path / "data"), "HARK_DEFAULT_MODEL": str(tiny_run),
           "HARK_AUTO_TRAIN": "0", "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_BIND": f"127.0.0.1:{port}",
           "HARK_WORKERS": str(WORKERS), "HARK_ACCESS_LOG": str(access_log),
           "GUNICORN_CMD_ARGS": "--access-logformat '%(p)s %(r)s %(s)s'"}
    env.pop("HARK_MODEL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    check = subprocess.run(flask + ["check"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert "registered model version" in check.stdout
    with open(tmp_path / "gunicorn.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
        time.sleep(0.3)
    workers = set()
    while len(workers) < WORKERS:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        workers = set(children)
        time.sleep(0.2)
    yield base, access_log, workers, other
    proc.terminate()
    proc.wait(timeout=30)


def test_activation_switches_every_gunicorn_worker(server, tiny_run):
    base, access_log, workers, other = server
    old = json.loads((tiny_run / "config.json").read_text()).get("run_id", tiny_run.name)
    assert burst(base, "before", access_log, workers) == {old}

    admin = Browser(base)
    status, page = admin.request("/login")
    token = re.search(rb'name="csrf-token" content="([^"]+)"', page).group(1).decode()
    form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": token})
    status, _ = admin.request("/login", data=form.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302
    status, body = admin.request("/admin/api/versions")
    listed = {v["name"]: v for v in json.loads(body)["versions"]}
    assert listed[old]["active"] and other.name in listed
    status, body = admin.request(f"/admin/api/versions/{listed[other.name]['id']}/activate", data=b"",
                                 headers={"X-CSRFToken": token}, method="POST")
    assert status == 200, body

    deadline = time.monotonic() + 30      # ModelStore looks once a second; allow a slow machine
    while predict(base, "switching") != other.name:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.5)                        # now past every worker's next look
    assert burst(base, "after", access_log, workers) == {other.name}

"""Activate and delete of the same model version, raced.

The attack: one admin session activates a version while another deletes it, a
few milliseconds apart. Before the fix activate answered 500, the pointer named
the deleted run and every worker answered 503 until `flask check` fell back to
models/default. Here the race runs many times, with real threads on one app and
with real HTTP clients against real gunicorn workers, on a real SQLite database;
every try must end with one success and one clear 404/409, a pointer naming a
run that exists, and health and predict answering 200 (also after the workers
restart). The worker-side and startup-side halves of the fix are tested alone too.
"""
from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import PASSWORD, ROOT, audio_bytes, copy_run, login, make_app
from webapp.database import db
from webapp.tables import ModelVersion
from webapp.training import startup
from webapp.versions import registry
from webapp.versions.model_store import ModelStore, NoModel, resolve

TRIES = 16
ACTIVATE_LOST = (404, 409)       # the version was deleted first: gone, or its files half-removed


def race(activate, delete, delay_s: float) -> tuple[int, int]:
    """Start both calls together (delete `delay_s` later); returns their HTTP statuses."""
    start = threading.Barrier(2)
    statuses = {}

    def run(name, call, wait):
        start.wait()
        time.sleep(wait)
        statuses[name] = call()

    threads = [threading.Thread(target=run, args=("activate", activate, 0.0)),
               threading.Thread(target=run, args=("delete", delete, delay_s))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses["activate"], statuses["delete"]


def new_version(app, name: str) -> tuple[int, Path]:
    """A copy of the default run under runs/, registered as a version of its own."""
    run_dir = copy_run(Path(app.config["HARK_DEFAULT_MODEL"]), Path(app.config["HARK_RUNS"]) / name)
    with app.app_context():
        return registry.register(run_dir, source="imported").id, run_dir


def check_outcome(app, statuses: tuple[int, int], run_dir: Path) -> str:
    """Exactly one of the two won, and the pointer and the table agree on a run that exists."""
    activated, deleted = statuses
    assert (activated, deleted) in [(200, 409)] + [(s, 200) for s in ACTIVATE_LOST], statuses
    serving = resolve(Path(app.config["HARK_MODEL"])).resolve()
    assert registry.usable(serving), f"the pointer names {serving}, which is gone"
    with app.app_context():
        active = db.session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).all()
        assert [Path(v.run_dir).resolve() for v in active] == [serving]
    if activated == 200:
        assert serving == run_dir.resolve()
        return "activate"
    assert not run_dir.exists() and serving != run_dir.resolve()
    return "delete"


def predict_ok(post) -> str:
    status, body = post()
    assert status == 200, body
    return body["model"]


# ---- the race on one app, real threads ------------------------------------------------

def test_activate_and_delete_raced_in_threads_leave_a_serving_model(app_factory):
    app = app_factory(HARK_AUTO_TRAIN=False)
    with app.app_context():
        startup.check(app, auto_train=False)
    activator, deleter = app.test_client(), app.test_client()       # two admin sessions
    headers = {"X-CSRFToken": login(activator)}
    delete_headers = {"X-CSRFToken": login(deleter)}
    winners = []
    for i in range(TRIES):
        version_id, run_dir = new_version(app, f"20990101-0000{i:02d}-kws")
        statuses = race(
            lambda v=version_id: activator.post(f"/admin/api/versions/{v}/activate", headers=headers).status_code,
            lambda v=version_id: deleter.delete(f"/admin/api/versions/{v}", headers=delete_headers).status_code,
            delay_s=(i % 4) * 0.004)
        winners.append(check_outcome(app, statuses, run_dir))
        assert activator.get("/api/health").status_code == 200
    print("winners:", winners)

    def post():
        r = activator.post("/api/predict", data={"file": (io.BytesIO(audio_bytes()), "a.wav")})
        return r.status_code, r.get_json()

    serving = resolve(Path(app.config["HARK_MODEL"])).resolve()
    assert predict_ok(post) == json.loads((serving / "config.json").read_text())["run_id"]


def test_the_loser_gets_a_clear_json_answer(app_factory):
    app = app_factory(HARK_AUTO_TRAIN=False)
    admin = app.test_client()
    headers = {"X-CSRFToken": login(admin)}
    version_id, run_dir = new_version(app, "20990102-000000-kws")
    assert admin.delete(f"/admin/api/versions/{version_id}", headers=headers).status_code == 200
    r = admin.post(f"/admin/api/versions/{version_id}/activate", headers=headers)
    assert r.status_code == 404 and "no model version" in r.get_json()["error"]
    version_id, run_dir = new_version(app, "20990102-000001-kws")
    assert admin.post(f"/admin/api/versions/{version_id}/activate", headers=headers).status_code == 200
    r = admin.delete(f"/admin/api/versions/{version_id}", headers=headers)
    assert r.status_code == 409 and "active model" in r.get_json()["error"]
    assert run_dir.is_dir()


# ---- the two halves of the repair -------------------------------------------------------

def test_a_worker_keeps_its_model_when_the_pointer_target_vanishes(tiny_run, tmp_path):
    first = copy_run(tiny_run, tmp_path / "first")
    pointer = tmp_path / "active-model"
    pointer.write_text("first\n")
    store = ModelStore(pointer, check_s=0.0)         # the real Classifier loader
    serving = store.get()
    shutil.rmtree(first)                             # deleted under the worker's feet
    assert store.get() is serving and store.peek() is serving
    with pytest.raises(NoModel):                     # a new worker has nothing: the repair's job
        ModelStore(pointer, check_s=0.0).get()
    copy_run(tiny_run, tmp_path / "second")
    pointer.write_text("second\n")
    assert store.get() is not serving and store.get().version == "second"


def test_the_startup_repair_restores_the_last_active_version_that_exists(app_factory):
    app = app_factory(HARK_AUTO_TRAIN=False)
    older, older_dir = new_version(app, "20990103-000000-kws")
    newer, newer_dir = new_version(app, "20990103-000001-kws")
    latest, latest_dir = new_version(app, "20990103-000002-kws")
    with app.app_context():
        for version_id in (older, newer, latest):
            registry.activate(version_id, "admin")
    shutil.rmtree(latest_dir)        # the active run is gone (the attack's end state) ...
    shutil.rmtree(newer_dir)         # ... and so is the one active before it
    result = app.test_cli_runner().invoke(args=["check", "--no-auto-train"])
    assert result.exit_code == 0, result.output
    assert "restored the last active version 20990103-000000-kws" in result.output
    assert resolve(Path(app.config["HARK_MODEL"])).resolve() == older_dir.resolve()
    with app.app_context():
        assert registry.reconcile(app).id == older
    shutil.rmtree(older_dir)         # none left that was ever active: the shipped default
    result = app.test_cli_runner().invoke(args=["check", "--no-auto-train"])
    assert "fell back to" in result.output
    default = Path(app.config["HARK_DEFAULT_MODEL"]).resolve()
    assert resolve(Path(app.config["HARK_MODEL"])).resolve() == default


# ---- the race against real gunicorn workers, over HTTP -----------------------------------

class Browser:
    """One admin session over HTTP: keeps its cookie, never follows redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base: str):
        self.base, self.token = base, None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self._NoRedirect)

    def request(self, path, data=None, headers=None, method=None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={**({"X-CSRFToken": self.token} if self.token else {}),
                                              **(headers or {})})
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def login(self) -> Browser:
        _, page = self.request("/login")
        self.token = re.search(rb'name="csrf-token" content="([^"]+)"', page).group(1).decode()
        form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": self.token})
        status, _ = self.request("/login", data=form.encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 302
        return self

    def predict(self) -> tuple[int, dict]:
        boundary = "harkrace"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                "Content-Type: audio/wav\r\n\r\n")
        body = head.encode() + audio_bytes() + f"\r\n--{boundary}--\r\n".encode()
        status, answer = self.request("/api/predict", data=body,
                                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return status, json.loads(answer)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(master: int) -> set[str]:
    return set(Path(f"/proc/{master}/task/{master}/children").read_text().split())


def _healthy(base: str) -> bool:
    try:
        return Browser(base).request("/api/health")[0] == 200
    except OSError:          # not listening yet
        return False


@pytest.fixture
def gunicorn(tmp_path, tiny_run):
    """The service as scripts/run.sh starts it (migrations, check, gunicorn with 2 workers)."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(tmp_path / "runs"),
           "HARK_DATA": str(tmp_path / "data"), "HARK_DEFAULT_MODEL": str(tiny_run),
           "HARK_AUTO_TRAIN": "0", "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_BIND": f"127.0.0.1:{port}",
           "HARK_WORKERS": "2", "HARK_MODEL_CHECK_S": "0.2"}
    env.pop("HARK_MODEL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run(flask + ["check", "--no-auto-train"], cwd=ROOT, env=env, check=True, capture_output=True)
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while len(_workers(proc.pid)) < 2 or not _healthy(base):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_AUTO_TRAIN=False)
    yield app, base, proc
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_activate_and_delete_raced_over_http_against_gunicorn_workers(gunicorn):
    app, base, master = gunicorn
    activator, deleter = Browser(base).login(), Browser(base).login()     # two admin sessions
    winners = []
    for i in range(TRIES):
        version_id, run_dir = new_version(app, f"20990201-0000{i:02d}-kws")
        statuses = race(
            lambda v=version_id: activator.request(f"/admin/api/versions/{v}/activate", data=b"",
                                                   method="POST")[0],
            lambda v=version_id: deleter.request(f"/admin/api/versions/{v}", method="DELETE")[0],
            delay_s=(i % 4) * 0.004)
        winners.append(check_outcome(app, statuses, run_dir))
        assert activator.request("/api/health")[0] == 200
    print("winners:", winners)
    serving = resolve(Path(app.config["HARK_MODEL"])).resolve()
    expected = json.loads((serving / "config.json").read_text())["run_id"]
    time.sleep(0.5)                              # past every worker's next look at the pointer
    assert {predict_ok(activator.predict) for _ in range(8)} == {expected}

    before = _workers(master.pid)                # a restart: new workers read the pointer afresh
    os.kill(master.pid, signal.SIGHUP)
    deadline = time.monotonic() + 90
    while len(_workers(master.pid) - before) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    deadline = time.monotonic() + 90
    while not _healthy(base):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert {predict_ok(activator.predict) for _ in range(8)} == {expected}

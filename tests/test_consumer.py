"""The real queue: a consumer process (`python -m webapp.training.worker`) on a real SQLite queue.

The test process plays the web side: it submits jobs into the same database and
queue and watches the rows the consumer writes. Tiny tone data, few epochs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ml.synth.tones import make_tone_set
from tests.helpers import ROOT, login, make_app
from webapp.database import db
from webapp.tables import JobEpoch, ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.versions.model_store import resolve

pytestmark = pytest.mark.slow


class Site:
    """One installation: its folders, an app for the web side, and its consumer processes."""

    def __init__(self, root: Path, default_model: Path, data: Path):
        self.root, self.data = root, data
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                    "HARK_INSTANCE": str(root / "instance"), "HARK_RUNS": str(root / "runs"),
                    "HARK_DATA": str(root / "data"), "HARK_DEFAULT_MODEL": str(default_model),
                    "HARK_AUTO_TRAIN": "0", "HARK_QUEUE_IMMEDIATE": "0"}
        self.env.pop("HARK_MODEL", None)
        self.app = make_app(root, HARK_QUEUE_IMMEDIATE=False, HARK_DEFAULT_MODEL=str(default_model),
                            HARK_AUTO_TRAIN=False)
        self.processes: list[subprocess.Popen] = []
        self.log = root / "consumer.log"

    def start_consumer(self) -> subprocess.Popen:
        with open(self.log, "a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "webapp.training.worker"], cwd=ROOT, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def stop(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def submit(self, **params) -> int:
        with self.app.app_context():
            return jobs.submit(jobs.make_params(dataset="folder", data=str(self.data), batch_size=8,
                                                **{"arch": "kws", **params}), "test").id

    def job(self, job_id: int) -> dict:
        with self.app.app_context():
            job = db.session.get(TrainingJob, job_id)
            rows = db.session.scalar(select(db.func.count()).select_from(JobEpoch)
                                     .where(JobEpoch.job_id == job_id))
            return {"state": job.state, "epochs_done": rows, "error": job.error,
                    "log": job.log_tail, "run_dir": job.run_dir, "worker": job.worker}

    def wait(self, job_id: int, predicate, timeout: float = 240.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if predicate(info):
                return info
            for proc in self.processes[-1:]:
                assert proc.poll() is None or predicate(info), self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} stuck at {self.job(job_id)}\n{self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return make_tone_set(tmp_path_factory.mktemp("consumer-tones"), speakers=20, per_speaker=1)


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_run, tones):
    site = Site(tmp_path_factory.mktemp("site"), tiny_run, tones)
    site.start_consumer()
    yield site
    site.stop()


def test_consumer_runs_a_job_with_progress_rows_and_a_new_version(site, tiny_run):
    pointer = Path(site.app.config["HARK_MODEL"])
    job_id = site.submit(epochs=2)
    seen_running = site.wait(job_id, lambda j: j["epochs_done"] >= 1 or j["state"] in ("failed",))
    assert seen_running["state"] in ("running", "succeeded"), seen_running
    done = site.wait(job_id, lambda j: j["state"] not in ("queued", "running"))
    assert done["state"] == "succeeded", done
    assert done["epochs_done"] == 2 and "training kws: epoch 2 of 2" in done["log"]
    assert done["worker"].endswith(f":{site.processes[0].pid}")
    with site.app.app_context():
        version = db.session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
        assert version is not None and version.run_dir == done["run_dir"]
        assert Path(version.run_dir).is_dir() and version.latency_ms > 0
        assert not version.active                        # not asked to activate: default still serves
    assert resolve(pointer).resolve() == tiny_run.resolve()


def test_consumer_cancels_a_running_job_through_the_admin_api(site):
    client = site.app.test_client()
    token = login(client)
    job_id = site.submit(epochs=400, patience=400)
    site.wait(job_id, lambda j: j["state"] == "running" and j["epochs_done"] >= 1)
    r = client.post(f"/admin/api/jobs/{job_id}/cancel", headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["cancel_requested"]
    done = site.wait(job_id, lambda j: j["state"] not in ("queued", "running"), timeout=60)
    assert done["state"] == "cancelled" and done["run_dir"] is None, done
    assert 1 <= done["epochs_done"] < 400
    runs = Path(site.env["HARK_RUNS"])
    with site.app.app_context():
        registered = {Path(v.run_dir).name for v in db.session.scalars(select(ModelVersion))
                      if Path(v.run_dir).parent == runs.resolve()}
    assert {p.name for p in runs.iterdir()} == registered      # no .tmp-*, no stray run
    assert site.processes[0].poll() is None                    # the consumer carries on
    assert client.post(f"/admin/api/jobs/{job_id}/cancel",
                       headers={"X-CSRFToken": token}).status_code == 409


def test_killed_consumer_leaves_no_job_running_after_restart(tmp_path, tiny_run, tones):
    site = Site(tmp_path, tiny_run, tones)
    try:
        first = site.start_consumer()
        job_id = site.submit(epochs=400, patience=400, activate=True)
        site.wait(job_id, lambda j: j["state"] == "running" and j["epochs_done"] >= 1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert site.job(job_id)["state"] == "running"          # nobody is left to say otherwise

        second = site.start_consumer()                          # its startup check repairs it
        done = site.wait(job_id, lambda j: j["state"] != "running", timeout=120)
        assert done["state"] == "failed" and "worker stopped" in done["error"], done
        assert "failed:" in done["log"]
        runs = Path(site.env["HARK_RUNS"])
        assert not list(runs.glob(".tmp-*"))
        assert resolve(Path(site.app.config["HARK_MODEL"])).resolve() == tiny_run.resolve()

        after = site.submit(epochs=1)                            # and the queue works again
        assert site.wait(after, lambda j: j["state"] not in ("queued", "running"))["state"] == "succeeded"
        assert second.poll() is None
    finally:
        site.stop()


def test_a_killed_consumer_is_restarted_its_job_failed_and_the_site_keeps_serving(tmp_path, tiny_run, tones):
    """The service as `make run` starts it (scripts/run.sh, scripts/supervise.py).
    SIGKILL of the consumer mid-training: /api/health never stops answering, the job is failed
    with the reason, a new consumer takes the next job; gunicorn's master and nginx come back too."""
    from bench.consumer_kill import HealthWatch, children, program_pid
    from bench.deployment import Deployment

    service = Deployment(tmp_path, tiny_run, HARK_WORKERS="1")
    site = Site(tmp_path, tiny_run, tones)            # the web side, on the service's folders
    site.log = service.log
    watch = HealthWatch(service.base, every=0.1)
    try:
        service.wait_healthy()
        job_id = site.submit(epochs=400, patience=400, activate=True)
        site.wait(job_id, lambda j: j["state"] == "running" and j["epochs_done"] >= 1)
        watch.start()
        consumer = program_pid(service.proc.pid, "webapp.training.worker")
        os.kill(consumer, signal.SIGKILL)

        done = site.wait(job_id, lambda j: j["state"] != "running", timeout=120)
        assert done["state"] == "failed" and "killed by SIGKILL" in done["error"], done
        assert "restarted" in done["error"] and "/" not in done["error"]
        assert resolve(Path(site.app.config["HARK_MODEL"])).resolve() == tiny_run.resolve()
        restarted = program_pid(service.proc.pid, "webapp.training.worker", other_than=consumer)
        after = site.submit(epochs=1)
        finished = site.wait(after, lambda j: j["state"] not in ("queued", "running"))
        assert finished["state"] == "succeeded" and finished["worker"].endswith(f":{restarted}"), finished
        assert watch.failures() == 0 and len(watch.samples) > 10        # the site never stopped answering
        assert f"consumer (pid {consumer}) was killed by SIGKILL" in service.output()

        for word in ("gunicorn", "nginx"):
            names = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children(service.proc.pid)]
            if not any(word.encode() in name for name in names):
                continue                                                  # nginx not installed
            old = program_pid(service.proc.pid, word)
            os.kill(old, signal.SIGKILL)
            assert program_pid(service.proc.pid, word, other_than=old) != old
            service.wait_healthy()
            assert f"{word} (pid {old}) was killed by SIGKILL" in service.output()
    finally:
        watch.done.set()
        status = service.stop()
    assert status == 143, service.output()[-3000:]

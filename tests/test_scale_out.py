"""Scale-out for real: a real Redis and a real PostgreSQL.

bench/services.py starts Debian's redis-server and a throwaway PostgreSQL
cluster (initdb in a temporary folder, as the postgres account when we are
root) on free loopback ports; without them these tests skip and say how to
install them. Checked:
- migrations on PostgreSQL: several "machines" (own instance folders, so no
  shared file lock) starting at once on one empty database take turns on an
  advisory lock, and exactly one of them runs each migration;
- rate limits on Redis: two app instances count one client's requests together
  (without Redis each counts alone, which is what the check tells apart);
- two queue consumers (`python -m webapp.training.worker`, each with its own
  instance folder) share the Redis queue and the PostgreSQL database: both take
  jobs, every job runs once, and a second message for the same job is refused.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.services import Postgres, Redis, find_postgres, find_redis
from ml.synth.tones import make_tone_set
from tests.helpers import ROOT, make_app
from webapp.database import MIGRATION_LOCK, at_head, db
from webapp.tables import JobEpoch, ModelVersion, TrainingJob
from webapp.training import jobs
from webapp.training.queue import queue

pytestmark = pytest.mark.slow
MACHINES = 2


@pytest.fixture(scope="module")
def redis_server():
    binary, why = find_redis()
    if binary is None:
        pytest.skip(why)
    with Redis() as server:
        yield server


@pytest.fixture(scope="module")
def postgres():
    found, why = find_postgres()
    if found is None:
        pytest.skip(why)
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg (requirements.txt) is missing")
    with Postgres() as server:
        yield server


def _env(**settings) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "HARK_AUTO_TRAIN": "0",
           "HARK_QUEUE_IMMEDIATE": "0", **settings}
    env.pop("HARK_MODEL", None)
    return env


def _dispose(app) -> None:
    with app.app_context():
        db.engine.dispose()


# ---- migrations ----------------------------------------------------------------------------

def test_machines_starting_at_once_migrate_postgres_one_at_a_time(postgres, tmp_path):
    import psycopg

    url = postgres.new_database("migrations")
    machines = []
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="hark", dbname="migrations",
                         autocommit=True) as holder:
        # Hold the migration lock, so that every machine is provably waiting at the same moment.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        for n in range(MACHINES):
            log = open(tmp_path / f"machine{n}.log", "w")   # noqa: SIM115  closed with its process below
            machines.append((subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                env=_env(HARK_INSTANCE=str(tmp_path / f"machine{n}"), HARK_DATABASE_URL=url),
                stdout=log, stderr=subprocess.STDOUT), log))
        deadline = time.monotonic() + 90
        while True:
            waiting = holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND NOT granted").fetchone()[0]
            if waiting == MACHINES:
                break
            ended = [n for n, (p, _) in enumerate(machines) if p.poll() is not None]
            assert not ended and time.monotonic() < deadline, (
                f"machines {ended} did not wait for the migration lock:\n"
                + (tmp_path / f"machine{(ended or [0])[0]}.log").read_text()[-3000:])
            time.sleep(0.1)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    outputs = []
    for n, (proc, log) in enumerate(machines):
        assert proc.wait(timeout=90) == 0, (tmp_path / f"machine{n}.log").read_text()[-3000:]
        log.close()
        outputs.append((tmp_path / f"machine{n}.log").read_text())
    ran = [line for out in outputs for line in out.splitlines() if "Running upgrade" in line]
    migrations = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert len(ran) == len(migrations), ran                    # each migration once, in all

    app = make_app(tmp_path / "check", HARK_DATABASE_URL=url, HARK_AUTO_MIGRATE=False)
    try:
        with app.app_context():
            assert at_head(app)
            assert db.session.execute(db.text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert db.session.scalar(select(func.count()).select_from(TrainingJob)) == 0
    finally:
        _dispose(app)


# ---- rate limits ----------------------------------------------------------------------------

def _predicts(apps, n: int, address: str) -> list[int]:
    """`n` requests from one address, taking turns between the apps."""
    clients = [app.test_client() for app in apps]
    return [clients[i % len(clients)].post("/api/predict", data=b"",
                                           environ_base={"REMOTE_ADDR": address}).status_code
            for i in range(n)]


def test_rate_limits_are_shared_by_app_instances_on_one_redis(redis_server, tmp_path):
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    shared = [make_app(tmp_path / name, HARK_REDIS_URL=url, HARK_RATE_PREDICT="4/minute")
              for name in ("a", "b")]
    assert _predicts(shared, 8, "192.0.2.7") == [400] * 4 + [429] * 4    # 400: no audio in the body
    assert _predicts(shared, 1, "192.0.2.8") == [400]                    # another client
    assert redis.Redis.from_url(url).keys("LIMITS*")                     # the counters are in Redis

    alone = [make_app(tmp_path / f"{name}-alone", HARK_RATE_PREDICT="4/minute") for name in ("a", "b")]
    assert _predicts(alone, 8, "192.0.2.7") == [400] * 8                 # memory: each counts alone


# ---- queue consumers ------------------------------------------------------------------------

def test_trainings_starting_in_the_same_second_get_run_folders_of_their_own(tmp_path):
    from ml import fitting

    first, second = fitting.new_run_folder(tmp_path, "kws"), fitting.new_run_folder(tmp_path, "kws")
    assert first[0] != second[0] and first[1].is_dir() and second[1].is_dir()


class Cluster:
    """Two consumer "machines" and a web side on one Redis queue and one PostgreSQL database."""

    def __init__(self, root: Path, redis_url: str, database_url: str, default_model: Path):
        self.root, self.runs = root, root / "runs"          # run folders: shared storage
        self.settings = {"HARK_REDIS_URL": redis_url, "HARK_DATABASE_URL": database_url,
                         "HARK_RUNS": str(self.runs), "HARK_DATA": str(root / "data"),
                         "HARK_DEFAULT_MODEL": str(default_model), "HARK_SECRET_KEY": "scale-out test"}
        self.app = make_app(root / "web", **self.settings, HARK_QUEUE_IMMEDIATE=False,
                            HARK_AUTO_TRAIN=False)
        self.consumers: list[tuple[subprocess.Popen, Path]] = []

    def start_consumer(self, name: str) -> None:
        log = self.root / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "webapp.training.worker"], cwd=ROOT,
                                    env=_env(HARK_INSTANCE=str(self.root / name), **self.settings),
                                    stdout=out, stderr=subprocess.STDOUT)
        self.consumers.append((proc, log))

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.consumers)

    def wait(self, what: str, done, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            for proc, log in self.consumers:
                assert proc.poll() is None, f"a consumer ended:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{what}: timed out\n{self.logs()[-4000:]}"
            time.sleep(0.3)

    def jobs(self) -> list[TrainingJob]:
        with self.app.app_context():
            found = list(db.session.scalars(select(TrainingJob).order_by(TrainingJob.id)))
            db.session.expunge_all()
            return found

    def stop(self) -> None:
        for proc, _ in self.consumers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _ in self.consumers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _dispose(self.app)


def test_two_consumers_share_the_redis_queue_and_run_each_job_once(redis_server, postgres, tmp_path,
                                                                     tiny_run):
    data = make_tone_set(tmp_path / "tones", speakers=20, per_speaker=1)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/2"
    cluster = Cluster(tmp_path, redis_url, postgres.new_database("queue"), tiny_run)
    try:
        cluster.start_consumer("machine1")
        cluster.start_consumer("machine2")
        cluster.wait("consumers ready", lambda: len(re.findall(r"queue consumer \S+ ready", cluster.logs())) == 2)
        ids = []
        with cluster.app.app_context():
            for _ in range(2):
                params = jobs.make_params(dataset="folder", data=str(data), arch="kws", epochs=1,
                                          batch_size=8)
                ids.append(jobs.submit(params, "test").id)
                queue(cluster.app).enqueue(ids[-1])   # at once a second message (a retry, a repair)
        cluster.wait("jobs finished", lambda: all(j.state not in ("queued", "running") for j in cluster.jobs()))
        cluster.wait("second messages refused", lambda: cluster.logs().count("no longer queued") >= len(ids),
                     timeout=30)
        finished = cluster.jobs()
        with cluster.app.app_context():
            assert not queue(cluster.app).pending_job_ids()
            epochs = {job_id: db.session.scalar(select(func.count()).select_from(JobEpoch)
                                                .where(JobEpoch.job_id == job_id)) for job_id in ids}
            versions = db.session.scalars(select(ModelVersion.job_id).where(
                ModelVersion.job_id.is_not(None))).all()
    finally:
        cluster.stop()
    logs = cluster.logs()
    assert [j.state for j in finished] == ["succeeded"] * len(ids), [(j.id, j.state, j.error) for j in finished]
    assert epochs == dict.fromkeys(ids, 1)                 # one progress row each: trained once
    assert sorted(versions) == sorted(ids)                         # one model version each
    runs = [p for p in cluster.runs.iterdir() if not p.name.startswith(".")]
    assert len(runs) == len(ids) and not list(cluster.runs.glob(".tmp-*"))
    pids = {str(proc.pid) for proc, _ in cluster.consumers}
    assert {j.worker.rsplit(":", 1)[1] for j in finished} == pids, logs[-3000:]   # both took jobs
    assert logs.count("no longer queued") == len(ids)

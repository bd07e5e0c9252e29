"""Load and fault run: predict under load while a training job runs and a worker is SIGKILLed.

Starts the whole service the way `make run` does (scripts/run.sh: migrations,
startup check, queue consumer, gunicorn) in a throwaway instance folder on a
free loopback port, logs in as admin over HTTP and starts a training job on a
tone data set, then drives 8 concurrent clients on POST /api/predict for
--seconds. Partway through, one gunicorn worker gets SIGKILL.

Prints: requests, errors (and how many fell within a second of the kill: only
the killed worker's in-flight request may fail), throughput and latency before
and after the kill, when the master replaced the worker, whether the training
job kept writing progress rows, and the database's integrity check. Exit code
0 when at most --allowed-errors requests failed and nothing was lost.

Scale-out (--redis, --postgres, or --scale-out for both): the same run on a
throwaway Redis (queue and rate-limit counters) and PostgreSQL cluster
(bench/services.py: Debian's redis-server and initdb/postgres on loopback), the
way several machines would share them; PostgreSQL is then checked with
amcheck's index verification and a count of orphaned rows instead of SQLite's
integrity check.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_fault.py [--seconds 60] [--model RUN_DIR] [--scale-out]
"""
from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import ROOT, free_port
from services import Postgres, Redis

sys.path.insert(0, str(ROOT))
BOUNDARY = "harkfaultboundary"
PASSWORD = "bench password 1234"


def wav_body() -> bytes:
    import io

    import soundfile as sf

    t = np.arange(16000) / 16000
    wave = np.random.default_rng(0).normal(0, 0.01, t.size) + ((t > .3) & (t < .7)) * .5 * np.sin(2 * np.pi * 1500 * t)
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()


def tiny_model(tmp: Path) -> tuple[Path, Path]:
    """A tone data set and a 1-epoch model on it (when no --model is given)."""
    from ml.synth.tones import make_tone_set
    from ml.train import TrainConfig, train

    data = make_tone_set(tmp / "tones", speakers=20, per_speaker=2)
    run = train(TrainConfig(data=str(data), arch="kws", epochs=1, batch_size=16, runs=str(tmp / "base")),
                verbose=0, log=lambda m: None)
    return data, run


class Admin:
    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=30).read().decode()
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": self.token})
        self.opener.open(base + "/login", data=form.encode(), timeout=30).read()

    def call(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers={
            "X-CSRFToken": self.token, "Content-Type": "application/json"})
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read())


def client(port: int, body: bytes, stop_at: float, out: list):
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    while time.time() < stop_at:
        started = time.time()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/predict", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            out.append((started, time.time() - started, response.status, ""))
        except Exception as exc:  # noqa: BLE001  every failure is counted, never hidden
            out.append((started, time.time() - started, 0, type(exc).__name__))


def workers_of(master: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
    except OSError:
        return set()


def gunicorn_master(script_pid: int) -> int:
    for _ in range(200):
        for pid in workers_of(script_pid):
            try:
                if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def latency(rows) -> dict:
    ok = [r[1] * 1e3 for r in rows if r[2] == 200]
    return {"requests": len(rows), "ok": len(ok),
            "median_ms": round(float(np.median(ok)), 1) if ok else None,
            "p99_ms": round(float(np.percentile(ok, 99)), 1) if ok else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--kill-at", type=float, default=0.4, help="share of the run when a worker is killed")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--model", help="run directory to serve (default: a 1-epoch tone model)")
    ap.add_argument("--allowed-errors", type=int, default=2)
    ap.add_argument("--redis", action="store_true", help="queue and rate limits on a throwaway Redis")
    ap.add_argument("--postgres", action="store_true", help="the database on a throwaway PostgreSQL")
    ap.add_argument("--scale-out", action="store_true", help="both --redis and --postgres")
    args = ap.parse_args()
    servers = []
    try:
        return run(args, servers)
    finally:
        for server in servers:
            server.stop()


def database_check(url: str | None, instance: Path, job_id: int) -> tuple[str, int]:
    """(integrity verdict, progress rows of the job) for SQLite (the default) or PostgreSQL."""
    if url is None:
        db = sqlite3.connect(instance / "hark.db")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = db.execute("SELECT COUNT(*) FROM training_job_epochs WHERE job_id=?", (job_id,)).fetchone()[0]
        return integrity, rows
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS amcheck"))
            indexes = conn.execute(sa.text(
                "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE a.amname = 'btree' AND n.nspname = 'public'")).scalars().all()
            for index in indexes:                # raises on a corrupt index
                conn.execute(sa.text("SELECT bt_index_check(CAST(:i AS regclass), true)"), {"i": index})
            orphans = conn.execute(sa.text(
                "SELECT COUNT(*) FROM training_job_epochs e LEFT JOIN training_jobs j ON j.id = e.job_id "
                "WHERE j.id IS NULL")).scalar()
            rows = conn.execute(sa.text("SELECT COUNT(*) FROM training_job_epochs WHERE job_id = :j"),
                                {"j": job_id}).scalar()
    finally:
        engine.dispose()
    return ("ok" if orphans == 0 else f"{orphans} orphaned progress rows"), rows


def run(args, servers: list) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="hark-fault-"))
    scale_out = {}
    if args.redis or args.scale_out:
        servers.append(Redis())
        scale_out["HARK_REDIS_URL"] = servers[-1].url
    if args.postgres or args.scale_out:
        servers.append(Postgres())
        scale_out["HARK_DATABASE_URL"] = servers[-1].url
    data, model = tiny_model(tmp)
    if args.model:
        model = Path(args.model).resolve()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "HARK_INSTANCE": str(tmp / "instance"), "HARK_RUNS": str(tmp / "runs"),
           "HARK_DATA": str(tmp / "data"), "HARK_DEFAULT_MODEL": str(model), "HARK_AUTO_TRAIN": "0",
           "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_BIND": f"127.0.0.1:{port}",
           "HARK_WORKERS": str(args.workers), "HARK_RATE_PREDICT": "1000000/minute",
           "HARK_RATE_AUDIO_SECONDS": "100000000/minute", **scale_out,
           "HARK_LOG_LEVEL": "warning"}
    env.pop("HARK_MODEL", None)
    with open(tmp / "service.log", "w") as log:     # the child keeps its own copy of the file
        service = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    report: dict = {"folder": str(tmp)}
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=5) as r:
                    model_name = json.loads(r.read())["model"]
                    break
            except OSError:
                if time.time() > deadline or service.poll() is not None:
                    raise SystemExit("the service did not start: see " + str(tmp / "service.log")) from None
                time.sleep(0.5)
        master = gunicorn_master(service.pid)
        while len(workers_of(master)) < args.workers:
            time.sleep(0.2)
        admin = Admin(base)
        job = admin.call("/admin/api/jobs", {"dataset": "folder", "folder": str(data), "arch": "kws",
                                             "epochs": 500, "patience": 500, "batch_size": 16,
                                             "learning_rate": 0.003, "augment": "arch",
                                             "split": "speaker", "activate": True})
        while admin.call(f"/admin/api/jobs/{job['id']}")["epoch"] is None:
            time.sleep(0.5)                                     # training is under way
        epochs_at_start = admin.call(f"/admin/api/jobs/{job['id']}")["epoch"]

        body = wav_body()
        results: list = []
        start = time.time()
        stop_at = start + args.seconds
        threads = [threading.Thread(target=client, args=(port, body, stop_at, results))
                   for _ in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.seconds * args.kill_at)
        before = workers_of(master)
        victim = min(before)
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        replaced_after = None
        while time.time() < stop_at:
            now = workers_of(master)
            if replaced_after is None and victim not in now and len(now) >= args.workers:
                replaced_after = round(time.time() - killed_at, 2)
            time.sleep(0.05)
        for t in threads:
            t.join()

        state = admin.call(f"/admin/api/jobs/{job['id']}")
        admin.call(f"/admin/api/jobs/{job['id']}/cancel", {})
        for _ in range(120):
            final = admin.call(f"/admin/api/jobs/{job['id']}")
            if final["state"] not in ("queued", "running"):
                break
            time.sleep(0.5)
        errors = [r for r in results if r[2] != 200]
        near = [r for r in errors if abs(r[0] - killed_at) < 1.0 or r[0] <= killed_at <= r[0] + r[1]]
        with urllib.request.urlopen(base + "/api/health", timeout=5) as r:
            served_after = json.loads(r.read())["model"]
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        integrity, rows = database_check(scale_out.get("HARK_DATABASE_URL"), tmp / "instance", job["id"])
        report.update({
            "model": model_name, "clients": args.clients, "seconds": args.seconds,
            "requests": len(results), "per_second": round(len(results) / args.seconds, 1),
            "errors": len(errors), "errors_near_kill": len(near),
            "error_kinds": sorted({e[3] or str(e[2]) for e in errors}),
            "before_kill": latency([r for r in results if r[0] < killed_at]),
            "after_kill": latency([r for r in results if r[0] >= killed_at]),
            "worker_replaced_after_s": replaced_after,
            "training": {"epochs_when_load_began": epochs_at_start, "epochs_at_end_of_load": state["epoch"],
                         "progress_rows": rows, "final_state": final["state"],
                         "kept_running_under_load": state["state"] == "running"
                         and state["epoch"] > epochs_at_start},
            "active_model_unchanged": served_after == model_name,
            "database": "postgresql" if "HARK_DATABASE_URL" in scale_out else "sqlite",
            "queue_and_limits": "redis" if "HARK_REDIS_URL" in scale_out else "sqlite queue, memory limits",
            "database_integrity": integrity,
        })
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=60)
    print(json.dumps(report, indent=1))
    ok = (report["errors"] <= args.allowed_errors and report["errors"] == report["errors_near_kill"]
          and report["worker_replaced_after_s"] is not None and report["database_integrity"] == "ok"
          and report["training"]["kept_running_under_load"] and report["active_model_unchanged"]
          and report["training"]["final_state"] == "cancelled")
    print("PASS" if ok else f"FAIL (logs and database kept in {tmp})")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Kill the queue consumer (and then gunicorn's master and nginx) with SIGKILL during a training job.

Starts the service as `make run` does (scripts/run.sh: migrations, startup check, then
scripts/supervise.py with the consumer, gunicorn and nginx where installed) in a throwaway
folder on a free loopback port, logs in as admin, starts a long training job on a tone data
set, and while /api/health is asked every 50 ms, sends SIGKILL to the consumer.

Prints: how long /api/health was unavailable (failed or refused answers, in seconds; 0 is the
goal), how long until the job was marked failed and with which message, when the supervisor
had started a new consumer and when that one was ready, and whether a new job then ran to the
end. With --front (the default), the same for gunicorn's master and nginx: how long
/api/health was unavailable until they were back. Figures only; exit code 0 when the consumer
part held (site never unavailable, job failed with the reason, the next job succeeded).

Run:  PYTHONPATH=. .venv/bin/python bench/consumer_kill.py [--no-front] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_fault import PASSWORD, Admin, tiny_model
from bench.deployment import Deployment


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def program_pid(supervisor: int, word: str, timeout: float = 120, other_than: int | None = None) -> int:
    """The pid of the supervisor's child whose command line holds `word` (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in children(supervisor):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if word in cmdline and pid != other_than and "--fail-jobs-of" not in cmdline:
                return pid
        time.sleep(0.05)
    raise RuntimeError(f"no {word} process under {supervisor}")


class HealthWatch(threading.Thread):
    """Asks /api/health every `every` seconds; keeps (time, ok) for each answer or refusal."""

    def __init__(self, base: str, every: float = 0.05):
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.samples: list[tuple[float, bool]] = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            at = time.monotonic()
            try:
                with urllib.request.urlopen(self.base + "/api/health", timeout=5) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            self.samples.append((at, ok))
            time.sleep(self.every)

    def failures(self, since: float = 0.0) -> int:
        return sum(1 for at, ok in self.samples if at >= since and not ok)

    def unavailable_s(self, since: float = 0.0) -> float:
        """From the first failed answer after `since` to the next good one (0: none failed)."""
        first = last_bad = None
        for at, ok in self.samples:
            if at < since:
                continue
            if not ok and first is None:
                first = at
            if not ok:
                last_bad = at
            if ok and first is not None:
                return round(at - first, 2)
        return 0.0 if first is None else round(last_bad - first, 2)

    def back_after(self, since: float, timeout: float = 180) -> float:
        """Seconds from `since` until a good answer follows a failure (or the first good one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failed = False
            for at, ok in list(self.samples):
                if at < since:
                    continue
                failed = failed or not ok
                if ok and failed:
                    return round(at - since, 2)
            if not failed and self.samples and self.samples[-1][0] > since + 3:
                return 0.0
            time.sleep(0.1)
        raise RuntimeError("/api/health did not come back")


def job_state(admin: Admin, job_id: int) -> dict:
    return admin.call(f"/admin/api/jobs/{job_id}")


def wait_job(admin: Admin, job_id: int, done, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = job_state(admin, job_id)
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def kill_front(service: Deployment, watch: HealthWatch, word: str) -> dict:
    victim = program_pid(service.proc.pid, word)
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    back = watch.back_after(killed)
    new = program_pid(service.proc.pid, word, other_than=victim)
    time.sleep(1)
    return {"health_unavailable_s": watch.unavailable_s(killed), "health_failures": watch.failures(killed),
            "health_back_after_s": back, "old_pid": victim, "new_pid": new}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-front", action="store_true", help="kill only the consumer")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hark-consumer-kill-"))
    data, model = tiny_model(tmp)
    report: dict = {"folder": str(tmp)}
    service = Deployment(tmp / "site", model, HARK_ADMIN_PASSWORD=PASSWORD, HARK_WORKERS=str(args.workers))
    watch = None
    try:
        service.wait_healthy()
        report["nginx"] = "nginx" in service.output()
        admin = Admin(service.base)
        job = admin.call("/admin/api/jobs", {"dataset": "folder", "folder": str(data), "arch": "kws",
                                             "epochs": 500, "patience": 500, "batch_size": 16,
                                             "activate": True})
        wait_job(admin, job["id"], lambda j: j["epoch"] is not None or j["state"] != "queued")
        watch = HealthWatch(service.base)
        watch.start()
        time.sleep(1)
        consumer = program_pid(service.proc.pid, "webapp.training.worker")
        killed = time.monotonic()
        os.kill(consumer, signal.SIGKILL)
        final = wait_job(admin, job["id"], lambda j: j["state"] != "running")
        failed_after = round(time.monotonic() - killed, 2)
        new = program_pid(service.proc.pid, "webapp.training.worker", other_than=consumer)
        restarted_after = round(time.monotonic() - killed, 2)
        ready = f"queue consumer {os.uname().nodename}:{new} ready"
        while ready not in service.output() and time.monotonic() - killed < 180:
            time.sleep(0.1)
        ready_after = round(time.monotonic() - killed, 2)
        after = admin.call("/admin/api/jobs", {"dataset": "folder", "folder": str(data), "arch": "kws",
                                               "epochs": 1, "batch_size": 16})
        after_final = wait_job(admin, after["id"], lambda j: j["state"] not in ("queued", "running"))
        report["consumer"] = {
            "health_unavailable_s": watch.unavailable_s(killed), "health_failures": watch.failures(killed),
            "health_requests": sum(1 for at, _ in watch.samples if at >= killed),
            "job_marked_failed_after_s": failed_after, "job_state": final["state"],
            "job_error": final.get("error"),
            "new_consumer_seen_after_s": restarted_after, "new_consumer_ready_after_s": ready_after,
            "next_job_state": after_final["state"]}
        if not args.no_front:
            report["gunicorn_master"] = kill_front(service, watch, "gunicorn")
            if report["nginx"]:
                report["nginx_master"] = kill_front(service, watch, "nginx")
        report["supervisor_log"] = [line.split("hark supervise: ", 1)[1]
                                    for line in service.output().splitlines() if "hark supervise: " in line]
    finally:
        if watch is not None:
            watch.done.set()
        report["stop_status"] = service.stop()
    print(json.dumps(report, indent=1))
    c = report.get("consumer", {})
    ok = (c.get("health_failures") == 0 and c.get("job_state") == "failed"
          and "SIGKILL" in (c.get("job_error") or "") and c.get("next_job_state") == "succeeded")
    print("PASS" if ok else f"FAIL (logs kept in {tmp})")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load test of POST /api/predict through gunicorn on loopback, against the bare Classifier.

Starts gunicorn with the repository's gunicorn.conf.py on a free 127.0.0.1 port
and the given model, waits for /api/health, then drives 8 client processes
(each with its own connection) posting a one-second 16 kHz WAV as multipart
field `file`:

  paced      open loop at --rate requests/s in total (latency counted from each
             request's scheduled time, so client-side lateness is not hidden)
  saturated  closed loop, every client as fast as it can: the throughput ceiling

Then the same number of clips in-process through `Classifier.classify` (8
threads, and one), so HTTP overhead shows as a ratio. Prints latency median and
p99, requests/s, errors, and each gunicorn worker's resident memory (/proc).

Run:  PYTHONPATH=. .venv/bin/python bench/bench_predict.py [MODEL_DIR] [--requests 5000]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import ROOT, children, free_port, wait_healthy
from server import start_gunicorn as start_server

sys.path.insert(0, str(ROOT))
BOUNDARY = "harkbenchboundary"


def one_second_wav() -> bytes:
    """A word-like clip: a 0.4 s tone burst in quiet noise, 16 kHz 16-bit mono."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wave = rng.normal(0, 0.01, t.size) + ((t > 0.3) & (t < 0.7)) * 0.5 * np.sin(2 * np.pi * 1500 * t)
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def multipart(data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


# ---- the client processes ---------------------------------------------------

def client(port: int, body: bytes, count: int, interval: float, start_at: float, deadline: float, out):
    """Send `count` requests; paced every `interval` s from `start_at` when interval > 0."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    latencies, errors, statuses = [], 0, {}
    while time.time() < start_at:
        time.sleep(0.001)
    base = time.perf_counter()
    for i in range(count):
        scheduled = base + i * interval
        if interval:
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        else:
            scheduled = time.perf_counter()
        if time.time() > deadline:
            break
        try:
            conn.request("POST", "/api/predict", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            ok = response.status == 200 and b'"label"' in payload
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            ok = False
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            conn.close()
        latencies.append((time.perf_counter() - scheduled) * 1e3)
        errors += not ok
    out.put((latencies, errors, statuses))


def load(port: int, body: bytes, total: int, clients: int, rate: float, max_seconds: float) -> dict:
    per_client = -(-total // clients)
    interval = clients / rate if rate else 0.0
    out = mp.Queue()
    start_at = time.time() + 0.5
    procs = [mp.Process(target=client, args=(port, body, per_client, interval,
                                             start_at + (k * interval / clients if interval else 0),
                                             start_at + max_seconds, out))
             for k in range(clients)]
    return run_clients(procs, out, start_at)


def run_clients(procs: list, out, start_at: float) -> dict:
    """Start the client processes, gather what each puts on `out` (latencies ms, errors,
    statuses) and summarise them all, timed from `start_at`."""
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.time() - start_at
    latencies = np.concatenate([np.asarray(r[0], float) for r in results])
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r[2].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    return summarize(latencies, elapsed, sum(r[1] for r in results), statuses)


def summarize(latencies_ms, elapsed_s, errors=0, statuses=None) -> dict:
    lat = np.asarray(latencies_ms)
    return {"requests": int(lat.size), "errors": int(errors), "seconds": round(elapsed_s, 2),
            "per_second": round(lat.size / elapsed_s, 1),
            "median_ms": round(float(np.median(lat)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2), **({"statuses": statuses} if statuses else {})}


# ---- gunicorn ---------------------------------------------------------------

def start_gunicorn(model: Path, port: int, workers: int | None) -> subprocess.Popen:
    settings = {"HARK_MODEL": str(model), "HARK_LOG_LEVEL": "warning"}
    if workers:
        settings["HARK_WORKERS"] = str(workers)
    # Eight clients on one address would trip the per-client rate limit at once; the
    # database and queue of this throwaway server stay out of the checkout's instance folder.
    return start_server(port, settings, defaults={
        "HARK_RATE_PREDICT": "1000000/minute", "HARK_INSTANCE": tempfile.mkdtemp(prefix="hark-bench-")})


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory of each child of the gunicorn master, from /proc."""
    return sorted(round(int(fields["VmRSS"].split()[0]) / 1024, 1) for fields in children(master_pid).values())


# ---- in-process ---------------------------------------------------------------

def in_process(model: Path, wav: bytes, total: int, threads: int) -> dict:
    from ml.audio import decode
    from ml.classifier import Classifier

    clf = Classifier(model, threads=1)
    for _ in range(50):
        clf.classify(*decode(wav))
    per_thread = -(-total // threads)
    results = [[] for _ in range(threads)]

    def work(k):
        for _ in range(per_thread):
            t = time.perf_counter()
            clf.classify(*decode(wav))
            results[k].append((time.perf_counter() - t) * 1e3)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return summarize(np.concatenate(results), time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "models" / "default"), help="run directory")
    ap.add_argument("--requests", type=int, default=5000, help="per phase (default 5000)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=float, default=200.0, help="paced phase, requests/s in all")
    ap.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time cap per phase")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args(argv)
    model = Path(args.model)
    from ml.runs import is_complete

    if not is_complete(model):
        print(f"no run directory at {model}: train one, or pass its path", file=sys.stderr)
        return 2

    wav = one_second_wav()
    body = multipart(wav)
    port = free_port()
    server = start_gunicorn(model, port, args.workers)
    report = {"model": model.name, "cpus": os.cpu_count(), "clients": args.clients,
              "loadavg_before": os.getloadavg()[0]}   # other work on the machine skews every figure
    try:
        health = wait_healthy(port, server)
        report["served_model"] = health.get("model")
        load(port, body, 400, args.clients, 0, 30)   # warm-up: every worker, every code path
        print(f"gunicorn on 127.0.0.1:{port}, model {health.get('model')}, "
              f"workers RSS {worker_rss_mb(server.pid)} MB", flush=True)
        report["paced"] = load(port, body, args.requests, args.clients, args.rate, args.max_seconds)
        print("paced    ", json.dumps(report["paced"]), flush=True)
        report["saturated"] = load(port, body, args.requests, args.clients, 0, args.max_seconds)
        print("saturated", json.dumps(report["saturated"]), flush=True)
        report["worker_rss_mb"] = worker_rss_mb(server.pid)
        report["loadavg_after"] = os.getloadavg()[0]
        print("worker RSS MB", report["worker_rss_mb"], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    report["in_process_8_threads"] = in_process(model, wav, args.requests, args.clients)
    print("in-process, 8 threads", json.dumps(report["in_process_8_threads"]), flush=True)
    report["in_process_1_thread"] = in_process(model, wav, min(args.requests, 2000), 1)
    print("in-process, 1 thread ", json.dumps(report["in_process_1_thread"]), flush=True)
    single = report["in_process_1_thread"]["median_ms"]
    report["ratio"] = {
        "paced_median_vs_in_process": round(report["paced"]["median_ms"] / single, 1),
        "saturated_throughput_vs_in_process_8": round(
            report["saturated"]["per_second"] / report["in_process_8_threads"]["per_second"], 2)}
    print("ratio", json.dumps(report["ratio"]))
    targets = {"median_ms<=15": report["paced"]["median_ms"] <= 15,
               "p99_ms<=50": report["paced"]["p99_ms"] <= 50,
               ">=150 req/s": report["saturated"]["per_second"] >= 150,
               "zero errors": report["paced"]["errors"] + report["saturated"]["errors"] == 0,
               ">=5000 requests": min(report["paced"]["requests"], report["saturated"]["requests"]) >= 5000,
               "worker RSS <= 500 MB": max(report["worker_rss_mb"] or [0]) <= 500}
    report["targets"] = targets
    print("targets", json.dumps(targets))
    if args.json:
        print(json.dumps(report))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

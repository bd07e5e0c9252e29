"""Fuzz POST /api/predict and /api/analyze on a real gunicorn server with hostile inputs.

Starts gunicorn with the repository's gunicorn.conf.py on a free 127.0.0.1 port
(as bench/bench_predict.py does; its own instance folder, rate limits raised so
the fuzzer is not merely counted as a flood), then sends --inputs requests that
hypothesis generates from ml/audio_fuzz.py: random bytes, random bytes
behind real WAV/FLAC/OGG signatures, valid files broken by random edits,
hand-made WAV headers with absurd fields, known disguises; as multipart or raw
bodies with random names and Content-Types, from --clients connections at once.
Then a few protocol-level cases: bodies over the 10 MB limit (declared, chunked,
multipart) and a client that disconnects mid-body.

Prints the count of every status, latency (median, p99, max: a hang would show),
and checks: zero 5xx, no connection failures, the same worker PIDs at the end as
at the start (no worker crashed or was killed for a timeout), nothing alarming in
gunicorn's log. Exit status 0 when every check holds.

Run:  PYTHONPATH=. .venv/bin/python bench/fuzz_predict.py [MODEL_DIR] [--inputs 5000] [--seed N]
(without a run directory at MODEL_DIR, a tiny tone model is trained first, ~15 s)
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # quiet, should a tiny model be trained
sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import ROOT, children, free_port, wait_healthy
from server import start_gunicorn as start_server

sys.path.insert(0, str(ROOT))
BOUNDARY = "harkfuzzboundary"
CONTENT_TYPES = ["audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "text/html", "application/zip",
                 "application/octet-stream", "text/plain", "application/x-www-form-urlencoded", None]
ALARMS = ("Traceback", "WORKER TIMEOUT", "was sent SIGKILL", "was terminated", "unhandled error",
          "Worker exiting", "segmentation", "core dumped")


def start_gunicorn(model: Path, port: int, workers: int, instance: Path, log) -> subprocess.Popen:
    return start_server(port, {
        "HARK_MODEL": str(model), "HARK_WORKERS": str(workers), "HARK_LOG_LEVEL": "info",
        "HARK_INSTANCE": str(instance), "HARK_AUTO_TRAIN": "0",
        "HARK_RATE_PREDICT": "100000/second", "HARK_RATE_ANALYZE": "100000/second",
        "TF_CPP_MIN_LOG_LEVEL": "2"}, log=log)


def worker_pids(master_pid: int) -> list[int]:
    """PIDs of the gunicorn master's children, from /proc."""
    return sorted(children(master_pid))


def tiny_model(workdir: Path) -> Path:
    """A kws model trained two epochs on the tone set of the tests: enough to answer."""
    from ml.synth.tones import make_tone_set
    from ml.train import TrainConfig, train

    data = make_tone_set(workdir / "tones")
    return train(TrainConfig(data=str(data), arch="kws", epochs=2, batch_size=16, runs=str(workdir / "runs")),
                 verbose=0, log=lambda msg: None)


# ---- requests ---------------------------------------------------------------

def encode_request(req: dict) -> tuple[bytes, dict]:
    """(body, headers) for one generated request."""
    data, ctype = req["data"], req["content_type"]
    if req["multipart"]:
        name = req["name"].replace('"', "%22").replace("\r", "").replace("\n", "")
        part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                + (f"Content-Type: {ctype}\r\n" if ctype else "") + "\r\n").encode("utf-8", "replace")
        return part + data + f"\r\n--{BOUNDARY}--\r\n".encode(), {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return data, ({"Content-Type": ctype} if ctype else {})


class Sender:
    """--clients threads, each with its own keep-alive connection, draining one queue."""

    def __init__(self, port: int, clients: int):
        self.port, self.jobs = port, queue.Queue(maxsize=clients * 4)
        self.statuses, self.latencies, self.samples, self.lock = Counter(), [], {}, threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        while True:
            job = self.jobs.get()
            if job is None:
                return
            url, body, headers = job
            start = time.perf_counter()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("POST", url, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                key = response.status
                if response.status >= 500 or (response.status != 200 and b'"error"' not in payload):
                    self.samples.setdefault(key, (url, body[:200], payload[:300]))
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                self.samples.setdefault(key, (url, body[:200], str(exc)))
                conn.close()
                conn = None
            with self.lock:
                self.statuses[key] += 1
                self.latencies.append((time.perf_counter() - start) * 1e3)

    def send(self, url: str, body: bytes, headers: dict):
        self.jobs.put((url, body, headers))

    def close(self):
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()


def fuzz(sender: Sender, inputs: int, seed: int, analyze_share: float) -> Counter:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from ml.audio_fuzz import hostile_bytes

    kinds = Counter()
    requests = st.fixed_dictionaries({
        "data": hostile_bytes(), "multipart": st.booleans(), "name": st.text(max_size=40),
        "content_type": st.sampled_from(CONTENT_TYPES)})
    route = random.Random(seed)      # hypothesis leans towards small numbers; the split should not

    @hypothesis_seed(seed)
    @settings(max_examples=inputs, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def run(req):
        body, headers = encode_request(req)
        url = "/api/analyze" if route.random() < analyze_share else "/api/predict"
        kinds[url] += 1
        sender.send(url, body, headers)

    run()
    return kinds


def protocol_cases(port: int) -> dict:
    """Bodies over the limit (declared, chunked, multipart) and a client that leaves mid-body."""
    big = b"RIFF" + bytes(11 * 1024 * 1024)
    out = {}

    def exchange(raw: bytes, read=True):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            try:
                s.sendall(raw)
            except OSError:          # the server may answer 413 and close before reading it all
                pass
            if not read:
                return "disconnected"
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError as exc:
                return type(exc).__name__
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            ctype = next((v.split(":", 1)[1].strip() for v in lines if v.lower().startswith("content-type:")), "")
            return f"{lines[0]} ({ctype})" if lines[0] else "no answer"

    head = "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
    out["declared 11 MB"] = exchange(f"{head}Content-Length: {len(big)}\r\n\r\n".encode() + big[:1024])
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 65536]), big[i:i + 65536])
                      for i in range(0, len(big), 65536)) + b"0\r\n\r\n"
    out["chunked 11 MB"] = exchange(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks)
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()
    body = part + big + f"\r\n--{BOUNDARY}--\r\n".encode()
    out["multipart 11 MB"] = exchange(
        (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    multipart_chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                                for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    out["chunked multipart 11 MB"] = exchange(
        (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
         "Transfer-Encoding: chunked\r\n\r\n").encode() + multipart_chunks)
    out["left mid-body"] = exchange(f"{head}Content-Length: 100000\r\n\r\n".encode() + b"RIFF" + bytes(5000),
                                    read=False)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "models" / "default"), help="run directory")
    ap.add_argument("--inputs", type=int, default=5000, help="generated requests (default 5000)")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent connections")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--analyze-share", type=float, default=0.1, help="fraction sent to /api/analyze")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2 ** 32)

    with tempfile.TemporaryDirectory(prefix="hark-fuzz-") as tmp:
        tmp = Path(tmp)
        model = Path(args.model)
        if not (model / "model.tflite").is_file():
            print(f"no run directory at {model}: training a tiny tone model first", flush=True)
            model = tiny_model(tmp)
        port, log_path = free_port(), tmp / "gunicorn.log"
        with open(log_path, "wb") as log:
            server = start_gunicorn(model, port, args.workers, tmp / "instance", log)
        report = {"seed": seed, "inputs": args.inputs, "clients": args.clients, "workers": args.workers}
        try:
            health = wait_healthy(port, server, log_path)
            time.sleep(1.0)                          # let every worker finish booting
            before = worker_pids(server.pid)
            print(f"gunicorn on 127.0.0.1:{port}, model {health.get('model')}, workers {before}, "
                  f"seed {seed}", flush=True)
            sender = Sender(port, args.clients)
            started = time.perf_counter()
            report["endpoints"] = dict(fuzz(sender, args.inputs, seed, args.analyze_share))
            sender.close()
            elapsed = time.perf_counter() - started
            report["protocol"] = protocol_cases(port)
            time.sleep(1.0)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
                report["healthy_after"] = r.status == 200
            after = worker_pids(server.pid)
            logtext = log_path.read_text(errors="replace")    # before shutdown adds its own lines
        finally:
            server.terminate()
            server.wait(timeout=30)

    lat = np.asarray(sender.latencies)
    statuses = {str(k): v for k, v in sorted(sender.statuses.items(), key=lambda kv: str(kv[0]))}
    fivexx = sum(v for k, v in sender.statuses.items() if isinstance(k, int) and k >= 500)
    failures = sum(v for k, v in sender.statuses.items() if not isinstance(k, int))
    report.update(
        requests=int(lat.size), seconds=round(elapsed, 1), per_second=round(lat.size / elapsed, 1),
        statuses=statuses, latency_ms={"median": round(float(np.median(lat)), 2),
                                       "p99": round(float(np.percentile(lat, 99)), 2),
                                       "max": round(float(lat.max()), 2)},
        workers_before=before, workers_after=after,
        log_alarms={a: logtext.count(a) for a in ALARMS if a in logtext})
    print("statuses", json.dumps(statuses))
    print("latency ms", json.dumps(report["latency_ms"]), f"({report['per_second']} req/s)")
    print("protocol", json.dumps(report["protocol"]))
    print("workers before", before, "after", after)
    if report["log_alarms"]:
        print("gunicorn log alarms", report["log_alarms"])
    for key, sample in sender.samples.items():
        print("sample", key, sample)
    out_413 = [k for k in report["protocol"] if "11 MB" in k]
    checks = {
        f">= {args.inputs} requests": lat.size >= args.inputs,
        "zero 5xx": fivexx == 0,
        "no connection failures": failures == 0,
        "only 200/4xx answers": all(isinstance(k, int) and (k == 200 or 400 <= k < 500)
                                    for k in sender.statuses),
        "oversize bodies refused with a JSON 413": all(
            report["protocol"][k].split(" ")[1:2] == ["413"] and "application/json" in report["protocol"][k]
            for k in out_413),
        "same worker PIDs": before == after and len(before) == args.workers,
        "healthy after": report["healthy_after"],
        "no alarms in gunicorn log": not report["log_alarms"],
    }
    report["checks"] = checks
    print("checks", json.dumps(checks))
    if args.json:
        print(json.dumps(report))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

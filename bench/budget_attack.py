"""The budget attack of issue 27: clients sending files that are decoded up to the cap, then refused.

Starts the service as `make run` does (scripts/run.sh: nginx in front where it is
installed, --workers gunicorn workers, the default model) in a throwaway folder on
a free loopback port, its counters in a throwaway Redis when redis-server is installed
(shared by the workers, as a deployment with more than one worker should have them;
without it each worker counts for itself, so a budget goes --workers times as far).
A bystander (address 127.0.0.1) posts a one-second clip to /api/predict --rate times
a second (under HARK_RATE_PREDICT), first alone for --seconds, then for --seconds while
--attackers clients (addresses 127.0.0.11, .12, ...: each its own budget) post, back
to back, a 30 s 384 kHz FLAC cut short and a 31 s one whose header hides its length
(tens of KB each, 11 million samples to decode, then refused with 400). Prints the
bystander's p50/p99 and status counts in both phases, and the attackers' status counts:
with the work charged, each attacker gets a few 400s, then 429s for the rest of the
minute (HARK_RATE_AUDIO_SECONDS, default 3600 s of audio a minute).

Run:  PYTHONPATH=. .venv/bin/python bench/budget_attack.py [--attackers 4] [--seconds 20]
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.deployment import ROOT, Deployment
from bench.services import Redis, find_redis
from ml.audio_fuzz import encode, flac_with_total_samples, tone

HEAVY_RATE = 384_000


def attack_files() -> list[bytes]:
    """The review's files: decoded to the cap, then refused (cut short; longer than it said)."""
    whole = encode(np.zeros(30 * HEAVY_RATE, np.float32), HEAVY_RATE, "FLAC")
    endless = flac_with_total_samples(encode(np.zeros(31 * HEAVY_RATE, np.float32), HEAVY_RATE, "FLAC"), 0)
    return [whole[:len(whole) * 3 // 4], endless]


def clip() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(1.0), 16_000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def post_loop(port: int, source: str, bodies: list[bytes], until: float, statuses: Counter,
              latencies: list[float] | None = None, rate: float = 0) -> None:
    """POST /api/predict from `source` until `until` (one keep-alive connection): `rate` a
    second, or back to back when 0."""
    conn, i = None, 0
    next_at = time.monotonic()
    while time.monotonic() < until:
        if rate:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1 / rate
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
            status = r.status
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except OSError as exc:
            status = type(exc).__name__
            conn.close()
            conn = None
        statuses[status] += 1
        if latencies is not None and status == 200:
            latencies.append((time.monotonic(), (time.perf_counter() - t0) * 1e3))
    if conn is not None:
        conn.close()


def percentiles(ms: list[float]) -> dict:
    lat = np.array(ms) if ms else np.array([np.nan])
    return {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1)}


def phase(port: int, seconds: float, attackers: int, light: bytes, heavy: list[bytes], rate: float) -> dict:
    start = time.monotonic()
    until = start + seconds
    by_status, latencies = Counter(), []
    attack_status = [Counter() for _ in range(attackers)]
    threads = [threading.Thread(target=post_loop, args=(port, f"127.0.0.{11 + i}", heavy, until, attack_status[i]))
               for i in range(attackers)]
    for t in threads:
        t.start()
    post_loop(port, "127.0.0.1", [light], until, by_status, latencies, rate)
    for t in threads:
        t.join()
    out = {"bystander": {"requests": sum(by_status.values()), "statuses": dict(by_status),
                         **percentiles([ms for _, ms in latencies]),
                         "second_half": percentiles([ms for t, ms in latencies if t >= start + seconds / 2])}}
    if attackers:
        total = sum(attack_status, Counter())
        out["attackers"] = {"statuses": {str(k): v for k, v in total.items()},
                            "per_attacker": [dict(c) for c in attack_status]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attackers", type=int, default=4, help="attacking clients, each its own address")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers (HARK_WORKERS)")
    ap.add_argument("--rate", type=float, default=10.0, help="the bystander's requests a second")
    ap.add_argument("--no-redis", action="store_true", help="in-memory counters, one per worker")
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    args = ap.parse_args()
    if not 0 <= args.attackers <= 50 or args.seconds > 300:
        raise SystemExit("at most 50 attackers and 300 s: this is a bounded loopback bench")
    light, heavy = clip(), attack_files()
    tmp = Path(tempfile.mkdtemp(prefix="hark-budget-"))
    redis_binary, why = (None, "--no-redis") if args.no_redis else find_redis()
    with contextlib.ExitStack() as stack:
        settings = {"HARK_WORKERS": str(args.workers)}
        if redis_binary:
            settings["HARK_REDIS_URL"] = stack.enter_context(Redis()).url
        print(f"counters: {'Redis' if redis_binary else 'in memory, per worker (' + why + ')'}", file=sys.stderr)
        site = stack.enter_context(Deployment(tmp / "site", Path(args.model), **settings))
        site.wait_healthy()
        post_loop(site.port, "127.0.0.1", [light], time.monotonic() + 3, Counter(), rate=args.rate)  # warm up
        report = {"workers": args.workers, "seconds": args.seconds, "attackers": args.attackers,
                  "bystander_rate": args.rate, "counters": "redis" if redis_binary else "memory",
                  "attack_file_bytes": [len(h) for h in heavy],
                  "alone": phase(site.port, args.seconds, 0, light, heavy, args.rate),
                  "under_attack": phase(site.port, args.seconds, args.attackers, light, heavy, args.rate)}
    for name in ("alone", "under_attack"):
        b = report[name]["bystander"]
        print(f"bystander {name}: p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms over {b['requests']} requests "
              f"{b['statuses']} (second half: p50 {b['second_half']['p50_ms']} ms, "
              f"p99 {b['second_half']['p99_ms']} ms)", file=sys.stderr)
    print(f"attackers: {report['under_attack']['attackers']['statuses']}", file=sys.stderr)
    print(json.dumps(report, indent=1))
    limited = report["under_attack"]["attackers"]["statuses"].get("429", 0) if args.attackers else 1
    ok = limited > 0 and set(report["under_attack"]["bystander"]["statuses"]) == {200}
    print("PASS: the attack got 429s and the bystander only 200s" if ok else
          f"FAIL: no 429 for the attackers, or the bystander was refused (logs in {tmp})")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Slow clients against the deployment `make run` starts: nginx in front, then gunicorn alone.

Starts scripts/run.sh twice in throwaway folders on free loopback ports (the
default model, no training): first as `make run` does (nginx in front of
gunicorn where nginx is installed), then with HARK_NGINX=0 (gunicorn alone).
Against each it holds --clients slow connections (`POST /api/predict`,
`Content-Length: 1000000`, one byte every 5 s) for --seconds while /api/health
is probed once a second, and prints the probe figures: how many answered 200
within 3 s, their median and worst latency, and whether the slow connections
stayed open. Everything is on 127.0.0.1, bounded in count and time.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_slow_clients.py [--clients 30] [--seconds 30]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.deployment import ROOT, Deployment
from bench.services import find_nginx
from bench.slow_clients import attack


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=30, help="slow connections against nginx + gunicorn")
    ap.add_argument("--alone-clients", type=int, default=3, help="slow connections against gunicorn alone")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers (HARK_WORKERS)")
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    args = ap.parse_args()
    if args.clients > 200 or args.alone_clients > 200 or args.seconds > 600:
        raise SystemExit("at most 200 clients and 600 s: this is a bounded loopback bench")
    nginx, why = find_nginx()
    print(f"nginx: {nginx or why}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="hark-slow-"))
    report = {}
    setups = [("make run (nginx in front)" if nginx else "make run (no nginx found)", {}, args.clients),
              ("gunicorn alone (HARK_NGINX=0)", {"HARK_NGINX": "0"}, args.alone_clients)]
    ok = True
    for n, (name, settings, clients) in enumerate(setups):
        with Deployment(tmp / f"site{n}", Path(args.model), HARK_WORKERS=str(args.workers), **settings) as site:
            site.wait_healthy()
            figures = attack(site.port, clients=clients, seconds=args.seconds)
        report[name] = figures
        print(f"{name}: {figures['answered']}/{figures['probes']} probes answered within 3 s "
              f"({figures['answered_share']:.0%}), median {figures['median_ms']} ms, max {figures['max_ms']} ms, "
              f"with {clients} slow clients ({figures['slow_connections_open_at_end']} still open at the end)",
              file=sys.stderr)
        if n == 0:
            ok = figures["answered_share"] >= 0.9
    print(json.dumps({"workers": args.workers, "seconds": args.seconds, **report}, indent=1))
    print("PASS" if ok else f"FAIL: fewer than 90% of probes answered with nginx in front (logs in {tmp})")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

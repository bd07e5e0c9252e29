"""Training throughput and inference latency of every registered architecture.

Prints, per architecture: training clips/second and seconds per epoch (on a
generated tone set of the given size, all cores), the Classifier's model step
(features + network) median and p99 in ms for one clip (measured in a fresh
process on the LiteRT export with one thread, as a serving worker runs), parameters,
served size (the LiteRT files; an ensemble's members') and peak memory.

Run: PYTHONPATH=. .venv/bin/python bench/bench_ml.py [--clips 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def latency(run_dir: str, n: int = 1000) -> None:
    """Print {"p50", "p99", "rss_mb"} of the model step for one clip, one thread."""
    import numpy as np

    from ml.classifier import Classifier

    clf = Classifier(run_dir, threads=1)
    clip = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    for _ in range(50):
        clf.classify(clip)
    steps = []
    for _ in range(n):
        t = clf.classify(clip).timing_ms
        steps.append(t["model"])
    print(json.dumps({"p50": float(np.median(steps)), "p99": float(np.percentile(steps, 99)),
                      "rss_mb": _vm("VmHWM")}))


def _vm(field: str) -> float:
    """A memory figure of this process in MB (ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2000, help="training-set size (tone clips)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--archs", nargs="*")
    ap.add_argument("--latency", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.latency:
        return latency(args.latency)

    from ml.config import ARCHS
    from ml.measure import sizes
    from ml.synth.tones import TONES, make_tone_set
    from ml.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        speakers = max(2, args.clips // (2 * len(TONES)))
        data = make_tone_set(Path(tmp) / "data", speakers=speakers, per_speaker=2)
        print(f"{'arch':9} {'params':>10} {'MB':>6} {'train clips/s':>14} {'s/epoch':>8} "
              f"{'step ms p50':>12} {'p99':>6} {'serve RSS MB':>13}")
        for arch in args.archs or list(ARCHS):
            rows = []
            run = train(TrainConfig(data=str(data), arch=arch, epochs=args.epochs, patience=99,
                                    runs=str(Path(tmp) / "runs")),
                        on_epoch=rows.append, verbose=0, log=lambda m: None)
            n_train = len(json.loads((run / "split.json").read_text())["train"])
            # the first epoch includes tracing; the later ones are the steady state
            per_epoch = (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / max(1, len(rows) - 1)
            params = json.loads((run / "config.json").read_text())["parameters"]
            size = sizes(run)["served_bytes"] / 1e6
            out = subprocess.run([sys.executable, __file__, "--latency", str(run)],
                                 capture_output=True, text=True, check=True).stdout
            lat = json.loads(out.strip().splitlines()[-1])
            print(f"{arch:9} {params:>10,} {size:>6.1f} {n_train / per_epoch:>14.0f} "
                  f"{per_epoch:>8.1f} {lat['p50']:>12.2f} {lat['p99']:>6.2f} {lat['rss_mb']:>13.0f}",
                  flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS) of the training process: {peak:.0f} MB")


if __name__ == "__main__":
    main()

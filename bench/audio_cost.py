"""What one clip costs a worker, and what the decoded-audio limit lets one address spend.

For a one-second 16 kHz WAV, a 30 s 48 kHz WAV and the review's 40 KB FLAC that holds
30 s at 384 kHz, through /api/predict and /api/analyze (Flask's test client, the
served model, in this process): CPU per request (median of --repeat), the charge in
seconds of audio counted at 16 kHz (webapp/security/audio_budget.py), and with the default
HARK_RATE_AUDIO_SECONDS and HARK_RATE_PREDICT how many /api/predict requests of each one
address gets per minute and the CPU they cost. Last, what an evaluation job spends on the
heavy FLAC (refused at its header).

Run:  PYTHONPATH=. .venv/bin/python bench/audio_cost.py [--model models/default] [--repeat 7]
"""
from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def encoded(seconds: float, rate: int, fmt: str) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t) * (t % 1 < 0.4)).astype(np.float32) if fmt == "WAV" \
        else np.zeros(int(seconds * rate), np.float32)     # the review's FLAC: silence, 40 KB
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def cpu_ms(client, path: str, data: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        r = client.post(path, data=data)
        times.append((time.process_time() - c0) * 1e3)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:200])
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    from limits import parse_many

    from ml.evaluate import read_clip
    from webapp import create_app, settings
    from webapp.security.audio_budget import UNIT_RATE

    defaults = settings.jobs_and_security()
    default_limit = defaults["HARK_RATE_AUDIO_SECONDS"]

    def minute(limit: str) -> int:
        return next(item.amount for item in parse_many(limit) if item.GRANULARITY.name == "minute")
    per_minute, requests_per_minute = minute(default_limit), minute(defaults["HARK_RATE_PREDICT"])
    tmp = Path(tempfile.mkdtemp(prefix="hark-audio-cost-"))
    app = create_app({"HARK_INSTANCE": str(tmp / "instance"), "HARK_MODEL": args.model,
                      "HARK_RATE_PREDICT": "1000000/minute", "HARK_RATE_ANALYZE": "1000000/minute",
                      "HARK_RATE_AUDIO_SECONDS": "100000000/minute", "HARK_AUTO_MIGRATE": True})
    client = app.test_client()
    client.post("/api/predict", data=encoded(1, 16_000, "WAV"))      # load the model first
    cases = [("1 s at 16 kHz, WAV", 1, 16_000, "WAV"), ("30 s at 48 kHz, WAV", 30, 48_000, "WAV"),
             ("30 s at 384 kHz, FLAC", 30, 384_000, "FLAC")]
    print(f"defaults: HARK_RATE_AUDIO_SECONDS {default_limit}, "
          f"HARK_RATE_PREDICT {defaults['HARK_RATE_PREDICT']}\n")
    print(f"{'clip':24} {'bytes':>9} {'charge':>7} {'predict':>9} {'analyze':>9} "
          f"{'per min':>8} {'CPU s/min':>9}")
    for name, seconds, rate, fmt in cases:
        data = encoded(seconds, rate, fmt)
        charge = max(1, math.ceil(seconds * rate / UNIT_RATE))
        predict = cpu_ms(client, "/api/predict", data, args.repeat)
        analyze = cpu_ms(client, "/api/analyze", data, args.repeat)
        allowed = min(math.ceil(per_minute / charge), requests_per_minute)
        print(f"{name:24} {len(data):9,} {charge:7,} {predict:7.1f}ms {analyze:7.1f}ms "
              f"{allowed:8,} {allowed * predict / 1e3:9.1f}")
    heavy = tmp / "heavy.flac"
    heavy.write_bytes(encoded(30, 384_000, "FLAC"))
    c0, n = time.process_time(), 2000
    for _ in range(n):
        try:
            read_clip(heavy)
        except ValueError:
            pass
    print(f"\nevaluation job, the same FLAC as a clip: refused at its header in "
          f"{(time.process_time() - c0) / n * 1e3:.3f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

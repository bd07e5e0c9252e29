"""Load test of live mode: POST /api/detect with 0.2 s of new audio a request, through gunicorn.

Each client process is one listener as the Listen page's Live mode makes it: it holds its
stream's state (what the last answer returned), sends the audio from the answer's `next_s`
to 0.2 s further (the microphone's 48 kHz, 16-bit WAV, the context the model needs
included) with `stream` and `start_s`, and goes on. Closed loop: every listener as fast as it
can, so requests/s is the ceiling of the machine (a real listener asks 5 times a second:
listeners served = requests/s / 5). The recording is real speech (../shared/speech words
with gaps) when present, else tone words. Prints requests/s, latency, errors and each
worker's resident memory; issue 28's floor is >= 150 requests/s on 2 workers.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_live.py [MODEL] [--clients 8] [--seconds 20] [--workers 2]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import run_clients, worker_rss_mb
from server import ROOT, children, free_port, wait_healthy
from server import start_gunicorn as start_server

sys.path.insert(0, str(ROOT))
MIC_RATE, TICK_S = 48_000, 0.2
WORDS = ROOT.parent / "shared" / "speech" / "words"


def recording(seconds: float = 30.0) -> np.ndarray:
    """Real words with quiet gaps (or tone words without ../shared), at the microphone's rate."""
    from ml.audio import load_clip
    from ml.synth.tones import TONES, tone_clip

    rng = np.random.default_rng(0)
    files = sorted(WORDS.glob("*/*.wav"))[::37]
    words = [load_clip(f) for f in files] or [tone_clip(f, rng) for f in TONES.values()]
    parts, total = [], 0
    while total < seconds * 16_000:
        parts += [words[len(parts) // 2 % len(words)], rng.normal(0, 0.003, 8000).astype(np.float32)]
        total += len(parts[-2]) + len(parts[-1])
    return np.repeat(np.concatenate(parts), MIC_RATE // 16_000)


def body(fields: dict, wav: bytes, boundary: str) -> bytes:
    out = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                   for k, v in fields.items())
    return out + (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"live.wav\"\r\n"
                  f"Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{boundary}--\r\n".encode()


def listener(port: int, audio: np.ndarray, start_at: float, deadline: float, out) -> None:
    """One Live listener, as fast as it can until `deadline`: (latencies ms, errors, statuses)."""
    import soundfile as sf

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    boundary = uuid.uuid4().hex
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    latencies, errors, statuses = [], 0, {}
    state, next_s, end = "new", 0.0, 0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < deadline:
        end += int(TICK_S * MIC_RATE)
        if end > len(audio):                       # the recording is over: a new stream
            state, next_s, end = "new", 0.0, int(TICK_S * MIC_RATE)
        start = max(round(next_s * MIC_RATE), 0)
        if end - start < MIC_RATE:                 # the page waits for a second of audio
            continue
        wav = io.BytesIO()
        sf.write(wav, audio[start:end], MIC_RATE, format="WAV", subtype="PCM_16")
        payload = body({"stream": state, "start_s": f"{start / MIC_RATE:.6f}"}, wav.getvalue(), boundary)
        sent = time.perf_counter()
        try:
            conn.request("POST", "/api/detect", body=payload, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 200:
                reply = json.loads(answer)
                state, next_s = json.dumps(reply["state"]), reply["next_s"]
            else:
                errors += 1
                state, next_s, end = "new", 0.0, 0
        except (OSError, http.client.HTTPException) as exc:
            errors += 1
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            conn.close()
        latencies.append((time.perf_counter() - sent) * 1e3)
    out.put((latencies, errors, statuses))


def cpu_s(pids) -> float:
    """CPU seconds (user + system) the processes have used, from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])          # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def load(port: int, audio: np.ndarray, clients: int, seconds: float) -> dict:
    out = mp.Queue()
    start_at = time.time() + 0.5
    procs = [mp.Process(target=listener, args=(port, audio, start_at, start_at + seconds, out))
             for _ in range(clients)]
    return run_clients(procs, out, start_at)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "models" / "default"), help="run directory")
    ap.add_argument("--clients", type=int, default=8, help="listeners, each as fast as it can")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to load the server")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = ap.parse_args(argv)
    audio = recording()
    port = free_port()
    server = start_server(port, {"HARK_MODEL": str(Path(args.model)), "HARK_LOG_LEVEL": "warning",
                                 "HARK_WORKERS": str(args.workers)}, defaults={
        "HARK_RATE_PREDICT": "1000000/minute", "HARK_RATE_AUDIO_SECONDS": "1000000000/minute",
        "HARK_INSTANCE": tempfile.mkdtemp(prefix="hark-bench-live-")})
    try:
        health = wait_healthy(port, server)
        load(port, audio, args.clients, 3)                      # warm-up: every worker
        workers = list(children(server.pid))
        used = cpu_s(workers)
        result = load(port, audio, args.clients, args.seconds)
        result["worker_cpu_ms_per_request"] = round((cpu_s(workers) - used) * 1e3 / max(result["requests"], 1), 2)
        rss = worker_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"model {health.get('model')}, {args.workers} gunicorn workers, {os.cpu_count()} CPUs, "
          f"{args.clients} live listeners, {TICK_S} s of new audio a request")
    print("live", json.dumps(result))
    print(f"{result['per_second']:.0f} requests/s (floor >= 150): about {result['per_second'] / 5:.0f} "
          f"listeners at 5 requests a second; worker RSS {rss} MB")
    return 0 if result["errors"] == 0 and result["per_second"] >= 150 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The model in the browser (Listen's "On this device"): first load and one window, headless Chromium.

- first model load: a fresh browser context (empty cache) opens Listen with the switch on; the
  time from asking for the model to a compiled model (GET /api/model.json, the LiteRT.js wasm,
  GET /api/model-window.tflite: the run's window.tflite, compile), on loopback; the server's
  first answer is timed apart and warms it before the loads.
- one window: `Device.window` (the graph on one window's span, LiteRT.js on the CPU, wasm) after
  three warm-up runs; median of --runs.
- the page's numbers against the server's: --clips real clips of ../shared/speech/words (when
  present), each heard alone in the page and by the server's Classifier (LiteRT, native): the
  largest probability gap and how many labels agree. Issue 28 asks 1e-3; the int8 embedding's
  inputs are quantised on the fly, and the page's WebAssembly kernels round otherwise.

Floors (issue 28): first load <= 3 s, one window <= 20 ms.

Run:  PYTHONPATH=. .venv/bin/python bench/browser_model.py [--model models/default] [--loads 5] [--runs 30]
          [--clips 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ROOT.parent / "shared" / "speech" / "words"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
LOAD = """async () => {
  const root = document.getElementById('listen');
  const module = await import(root.dataset.deviceModule);
  const started = performance.now();
  const device = await module.load(root.dataset.modelInfoUrl);
  window.benchDevice = device;
  return performance.now() - started;
}"""
WINDOWS = """async (runs) => {
  const device = window.benchDevice;
  const span = new Float32Array(device.span);
  for (let i = 0; i < span.length; i++) span[i] = 0.1 * Math.sin(i * 0.05) * Math.sin(i * 0.0007);
  for (let i = 0; i < 3; i++) await device.window(span, 0);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await device.window(span, 160 * i);
    times.push(performance.now() - t);
  }
  return times;
}"""
CLIPS = """async (spans) => {
  const out = [];
  for (const span of spans) {
    const result = await window.benchDevice.window(Float32Array.from(span), 0);
    out.push(Array.from(result.probabilities));
  }
  return out;
}"""


def real_clips(n: int):
    """Every so many clips of ../shared/speech/words, up to n (none without it)."""
    from ml.audio import load_clip

    files = sorted(WORDS.glob("*/*.wav"))
    return [load_clip(f) for f in files[::max(1, len(files) // max(n, 1))][:n]]


def serve(model: Path):
    from werkzeug.serving import make_server

    from webapp import create_app

    folder = Path(tempfile.mkdtemp(prefix="hark-bench-browser-"))
    app = create_app({"HARK_MODEL": str(model), "HARK_INSTANCE": str(folder / "instance"),
                      "HARK_RUNS": str(folder / "runs"), "HARK_DATA": str(folder / "data"),
                      "HARK_AUTO_TRAIN": False, "HARK_ADMIN_PASSWORD": "bench-password-123"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--clips", type=int, default=30, help="real clips for the page-against-server check")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    clips = real_clips(args.clips)
    url, server = serve(Path(args.model))
    try:
        t = time.perf_counter()
        with urllib.request.urlopen(url + "/api/model-window.tflite") as response:
            size = len(response.read())
        print(f"server: window graph sent in {time.perf_counter() - t:.2f} s ({size / 1e6:.1f} MB)")
        loads, windows = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
            for i in range(args.loads):
                context = browser.new_context()          # empty cache: a first load
                page = context.new_page()
                page.goto(url + "/")
                loads.append(page.evaluate(LOAD) / 1e3)
                if i == args.loads - 1:
                    windows = page.evaluate(WINDOWS, args.runs)
                    context_samples = page.evaluate("() => window.benchDevice.context")
                    spans = [np.pad(c, context_samples) for c in clips]
                    page_probs = np.array(page.evaluate(CLIPS, [x.tolist() for x in spans])).reshape(len(clips), -1)
                context.close()
            browser.close()
    finally:
        server.shutdown()
    load, window = statistics.median(loads), statistics.median(windows)
    print(f"first model load (loopback, empty cache): median {load:.2f} s of {len(loads)} "
          f"[{', '.join(f'{x:.2f}' for x in loads)}]  floor 3 s: {'ok' if load <= 3 else 'MISSED'}")
    print(f"one window in headless Chromium (LiteRT.js wasm, CPU): median {window:.1f} ms of {len(windows)} "
          f"(min {min(windows):.1f}, max {max(windows):.1f})  floor 20 ms: {'ok' if window <= 20 else 'MISSED'}")
    if clips:
        from ml.classifier import Classifier

        served = Classifier(Path(args.model)).predict_batch(np.stack(clips))
        agree = int((served.argmax(1) == page_probs.argmax(1)).sum())
        print(f"page against server on {len(clips)} real clips: largest probability gap "
              f"{np.abs(served - page_probs).max():.4f}, the same label on {agree} of {len(clips)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

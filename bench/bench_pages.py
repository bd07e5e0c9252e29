"""How fast the pages render, and how big their charts are, through gunicorn on loopback.

For each page: first contentful paint and DOMContentLoaded in headless Debian
Chromium (median of --repeat loads, cold cache every time), the HTML size; then a
recording through the fake microphone: the /api/analyze answer's size per chart
and the time from the click until all three charts are drawn.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_pages.py [MODEL_DIR] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_predict as bp

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(bp.ROOT / "models" / "default"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    mic = Path(tempfile.mkdtemp()) / "word.wav"
    t = np.arange(96_000) / 48_000
    wave = np.random.default_rng(0).normal(0, 0.01, t.size)
    wave += ((t > .7) & (t < 1.1)) * .5 * np.sin(2 * np.pi * 1500 * t)
    sf.write(mic, wave.astype(np.float32), 48_000, subtype="PCM_16")

    port = bp.free_port()
    server = bp.start_gunicorn(Path(args.model), port, None)
    report = {}
    try:
        bp.wait_healthy(port, server)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=FLAGS + [f"--use-file-for-fake-audio-capture={mic}"])
            for path in ("/", "/upload", "/training"):
                fcp, dcl = [], []
                for _ in range(args.repeat):
                    context = browser.new_context()
                    page = context.new_page()
                    response = page.goto(base + path, wait_until="load")
                    timing = page.evaluate("""() => new Promise((resolve) => {
                        const dcl = performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd;
                        new PerformanceObserver((list) => {
                            const fcp = list.getEntriesByName('first-contentful-paint')[0];
                            if (fcp) resolve({fcp: fcp.startTime, dcl});
                        }).observe({type: 'paint', buffered: true});
                        setTimeout(() => resolve({fcp: NaN, dcl}), 5000);
                    })""")
                    fcp.append(timing["fcp"])
                    dcl.append(timing["dcl"])
                    html_bytes = len(response.body())
                    context.close()
                report[path] = {"first_contentful_paint_ms": round(float(np.median(fcp)), 1),
                                "dom_content_loaded_ms": round(float(np.median(dcl)), 1),
                                "html_bytes": html_bytes}
                print(path, json.dumps(report[path]), flush=True)

            context = browser.new_context(permissions=["microphone"])
            page = context.new_page()
            page.goto(base + "/")
            page.wait_for_function("window.Plotly !== undefined", timeout=30_000)
            sizes = {}
            page.on("response", lambda r: r.url.endswith("/api/analyze") and sizes.update(
                total=len(r.body()), **{k: len(json.dumps(v, separators=(",", ":")))
                                        for k, v in r.json()["figures"].items()}))
            start = page.evaluate("performance.now()")
            page.click("#record-button")
            page.wait_for_selector(".result[data-charts='drawn']", timeout=30_000)
            clicked_to_drawn = page.evaluate("performance.now()") - start
            report["record"] = {"analyze_bytes": sizes,
                                "click_to_charts_ms_incl_recording": round(clicked_to_drawn)}
            print("record", json.dumps(report["record"]))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast the gallery answers with a large test split, through gunicorn on loopback.

Builds a synthetic run of --clips test clips (tone-burst WAV files, predictions
at about 85% accuracy, the model files copied from MODEL_DIR so the page has a
real model to serve), and a second version with other predictions for compare.
Then times, over HTTP: the gallery page plus its first page of cards (the
"first page" figure, budget 300 ms), filtered and deep pages, compare, the
evaluation panel, and the first page's thumbnails cold (drawn) and warm (cached).

Run:  PYTHONPATH=. .venv/bin/python bench/bench_gallery.py [MODEL_DIR] [--clips 1500] [--repeat 30]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server

sys.path.insert(0, str(server.ROOT))
from ml.metrics import classification_report
from ml.runs import is_complete, serving_files


def make_data(root: Path, labels: list[str], n: int, rng) -> list[str]:
    """n one-second clips spread over the labels; returns their relative paths."""
    paths = []
    t = np.arange(16000) / 16000
    for i in range(n):
        label = labels[i % len(labels)]
        wave = rng.normal(0, 0.01, t.size)
        if label != "_silence_":
            start = rng.uniform(0.1, 0.5)
            freq = 200 + 150 * labels.index(label)
            wave += ((t > start) & (t < start + 0.4)) * 0.4 * np.sin(2 * np.pi * freq * t)
        relative = f"{label}/{i // len(labels):08x}_nohash_0.wav"
        (root / label).mkdir(parents=True, exist_ok=True)
        sf.write(root / relative, wave.astype(np.float32), 16000, subtype="PCM_16")
        paths.append(relative)
    return paths


def make_run(runs: Path, run_id: str, model: Path, data: Path, paths: list[str], labels, rng,
             accuracy: float) -> Path:
    run = runs / run_id
    run.mkdir(parents=True)
    for source in serving_files(model):       # an ensemble's members too
        target = run / source.relative_to(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    source_config = json.loads((model / "config.json").read_text())
    rows, y, p = [], [], []
    for path in paths:
        true = path.split("/")[0]
        pred = true if rng.random() < accuracy else labels[rng.integers(len(labels))]
        confidence = round(float(rng.uniform(0.5, 0.99) if pred == true else rng.uniform(0.2, 0.8)), 4)
        rest = (1 - confidence) / (len(labels) - 1)
        rows.append({"path": path, "true": true, "pred": pred, "confidence": confidence,
                     "probabilities": {label: confidence if label == pred else round(rest, 4)
                                       for label in labels}})
        y.append(labels.index(true))
        p.append(labels.index(pred))
    (run / "predictions.json").write_text(json.dumps(rows, indent=1))
    report = classification_report(np.array(y), np.array(p), labels)
    (run / "metrics.json").write_text(json.dumps(report, indent=1))
    history = [{"epoch": e, "epochs": 20, "loss": 2 / e, "accuracy": 1 - 0.5 / e,
                "val_loss": 2.2 / e, "val_accuracy": 1 - 0.6 / e} for e in range(1, 21)]
    (run / "history.json").write_text(json.dumps(history))
    config = {**source_config, "data": str(data), "run_id": run_id, "data_hash": "bench",
              "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    (run / "config.json").write_text(json.dumps(config, indent=1))
    return run


def get(url: str) -> tuple[float, int, int]:
    """(milliseconds, status, bytes) of one GET."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return (time.perf_counter() - started) * 1e3, status, len(body)


def timed(urls: list[str], repeat: int) -> dict:
    """Median and p90 of fetching `urls` one after another, `repeat` times."""
    totals = []
    for _ in range(repeat):
        total = 0.0
        for url in urls:
            ms, status, _ = get(url)
            if status != 200:
                raise SystemExit(f"{url}: HTTP {status}")
            total += ms
        totals.append(total)
    totals.sort()
    return {"median_ms": round(statistics.median(totals), 1),
            "p90_ms": round(totals[int(0.9 * (len(totals) - 1))], 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(server.ROOT / "models" / "default"),
                    help="a run directory whose model files the synthetic runs reuse")
    ap.add_argument("--clips", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    model = Path(args.model)
    if not is_complete(model):
        raise SystemExit(f"{model}: not a run directory with a serving export (give one as MODEL_DIR)")
    labels = json.loads((model / "labels.json").read_text())

    work = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    paths = make_data(work / "data", labels, args.clips, rng)
    runs = work / "runs"
    a = make_run(runs, "20990101-000001-bench", model, work / "data", paths, labels, rng, 0.85)
    make_run(runs, "20990101-000002-bench", model, work / "data", paths, labels, rng, 0.80)
    setup_s = time.perf_counter() - started

    port = server.free_port()
    gunicorn = server.start_gunicorn(port, {
        "HARK_MODEL": str(a), "HARK_RUNS": str(runs), "HARK_INSTANCE": str(work / "instance"),
        "HARK_DEFAULT_MODEL": str(work / "none"), "HARK_AUTO_TRAIN": "0",
        "HARK_WORKERS": str(args.workers), "HARK_LOG_LEVEL": "warning"})
    report = {"clips": args.clips, "workers": args.workers, "setup_s": round(setup_s, 1)}
    try:
        server.wait_healthy(port, gunicorn)
        base = f"http://127.0.0.1:{port}"
        source = "run:20990101-000001-bench"
        page = f"{base}/gallery"
        first = f"{base}/api/gallery/{source}/clips"

        # Cold: the first requests each worker sees (predictions.json parsed, templates compiled).
        cold_page, _, html_bytes = get(page)
        cold_clips, _, json_bytes = get(first)
        report["cold_first_page_ms"] = round(cold_page + cold_clips, 1)
        report["html_bytes"], report["first_page_json_bytes"] = html_bytes, json_bytes
        for _ in range(args.workers * 2):            # warm every worker
            get(page), get(first)

        report["first_page"] = timed([page, first], args.repeat)
        report["page_html"] = timed([page], args.repeat)
        report["clips_page_1"] = timed([first], args.repeat)
        report["errors_only_by_confidence"] = timed([first + "?errors=1&sort=confidence"], args.repeat)
        report["deep_page"] = timed([first + f"?page={max(1, args.clips // 48 - 1)}"], args.repeat)
        report["confusion_cell"] = timed([first + f"?true={labels[1]}&pred={labels[2]}"], args.repeat)
        report["compare_page_and_list"] = timed([
            f"{base}/gallery/compare?a={source}&b=run:20990101-000002-bench",
            f"{base}/api/gallery/compare?a={source}&b=run:20990101-000002-bench"], args.repeat)
        ms, _, _ = get(f"{base}/api/gallery/{source}/evaluation")
        report["evaluation_panel_first_ms"] = round(ms, 1)     # includes measuring latency
        report["evaluation_panel"] = timed([f"{base}/api/gallery/{source}/evaluation"], args.repeat)

        items = json.loads(urllib.request.urlopen(first).read())["items"]
        thumbs = [base + item["thumbnail_url"] for item in items]
        started = time.perf_counter()
        for url in thumbs:
            get(url)
        report["thumbnails_cold_ms_per_card"] = round((time.perf_counter() - started) * 1e3 / len(thumbs), 2)
        report["thumbnails_warm_page_of_48"] = timed(thumbs, max(3, args.repeat // 10))
        report["analyze_one_clip"] = timed([base + items[0]["analyze_url"]], max(5, args.repeat // 3))
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"gallery bench: {args.clips} test clips, gunicorn with {args.workers} workers, loopback "
          f"(setup {report['setup_s']} s)")
    print(f"  first page, cold (page + first 48 cards): {report['cold_first_page_ms']} ms")
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"  {key:<28} median {value['median_ms']:>7} ms   p90 {value['p90_ms']:>7} ms")
    print(f"  thumbnails, first draw: {report['thumbnails_cold_ms_per_card']} ms per card")
    print(f"  evaluation panel, first (measures latency): {report['evaluation_panel_first_ms']} ms")
    print(f"  sizes: page {report['html_bytes']:,} B, first 48 cards {report['first_page_json_bytes']:,} B")
    budget = report["first_page"]["median_ms"]
    print(f"  first page budget 300 ms: {'OK' if budget < 300 else 'OVER'} ({budget} ms median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

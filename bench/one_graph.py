"""The one-graph model side by side with its kws member: per clip, as a detector, in memory.

Issue 28's floors for the served default (models/default, one LiteRT graph made of its
kws member, two heads on the speech embedding and their average): a clip's step at most
2.5x its kws member's, the detector at least 40x real time on one core, a web worker's
resident memory at most 250 MB, and no onnxruntime in the serving process. The kws member
is served through the same code (its own one graph, written into a scratch copy), and the
two take turns on the same real clips, so a busy machine weighs on both alike.

Run:  PYTHONPATH=. .venv/bin/python bench/one_graph.py [--model models/default] [--clips 200]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ROOT.parent / "shared" / "speech" / "words"

RSS_PROBE = """
import sys, numpy as np
from ml.classifier import Classifier
clf = Classifier(sys.argv[1])
clf.classify(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
clf.predict_windows(np.zeros(5 * 16000, np.float32), np.arange(clf.context, 4 * 16000 - clf.context, 800))
loaded = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'onnxruntime'})
rss = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
print(f"{rss:.0f} {','.join(loaded) or 'none'}")
"""


def _clips(n: int) -> np.ndarray:
    from ml.audio import load_clip

    files = sorted(WORDS.glob("*/*.wav"))
    if not files:
        sys.exit(f"no clips in {WORDS}")
    step = max(1, len(files) // n)
    return np.stack([load_clip(f) for f in files[::step][:n]])


def _kws_member(model: Path, scratch: Path) -> Path:
    """A copy of the model's kws member with its own one graph (members are not served)."""
    from ml.graph import write_serving_graphs

    member = scratch / "kws"
    shutil.copytree(model / "members" / "kws", member)
    (member / "split.json").unlink(missing_ok=True)
    write_serving_graphs(member)
    return member


def _per_clip(models: dict, clips: np.ndarray) -> dict[str, list[float]]:
    times = {name: [] for name in models}
    for clip in clips:
        for name, clf in models.items():       # in turns: the same load on both
            started = time.perf_counter()
            clf.classify(clip)
            times[name].append((time.perf_counter() - started) * 1e3)
    return times


def _detector_speed(clf, clips: np.ndarray, runs: int = 3) -> float:
    """Seconds of audio per second of work, the whole detector, on a stream of real words
    (94 s): the median of `runs`, after one pass that warms the graph for each batch shape it
    meets (full batches of 256 windows, the last one shorter) and the memory it touches.
    Single runs spread 36-42x on this machine; the median of several says more."""
    from ml.detect import Detector

    rng = np.random.default_rng(0)
    parts = []
    for clip in clips[:60]:
        parts += [clip, rng.normal(0, 0.003, int(rng.integers(4000, 16000))).astype(np.float32)]
    stream = np.concatenate(parts)
    detector = Detector(clf)
    detector.detect(stream)                                 # warm up: every batch shape
    speeds = []
    for _ in range(runs):
        started = time.process_time()
        detector.detect(stream)
        speeds.append(len(stream) / 16000 / (time.process_time() - started))
    return float(np.median(speeds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
        pinned = "pinned to one CPU"
    except (AttributeError, OSError):
        pinned = "not pinned"
    from ml.classifier import Classifier

    model = Path(args.model)
    clips = _clips(args.clips)
    with tempfile.TemporaryDirectory(prefix="hark-one-graph-") as scratch:
        models = {"default": Classifier(model), "kws member": Classifier(_kws_member(model, Path(scratch)))}
        _per_clip(models, clips[:20])                       # warm up
        times = _per_clip(models, clips)
        p50 = {name: float(np.median(t)) for name, t in times.items()}
        print(f"{len(clips)} real clips, 1 thread, {pinned}, taking turns")
        for name, t in times.items():
            print(f"  {name:<11} per clip: median {p50[name]:.2f} ms, min {min(t):.2f} ms")
        print(f"  ratio default / kws member: {p50['default'] / p50['kws member']:.2f}x (floor <= 2.5x)")
        speed = {name: _detector_speed(clf, clips) for name, clf in models.items()}
        for name, s in speed.items():
            print(f"  detector, {name}: {s:.1f}x real time on one core (floor >= 40x for the default)")
    probe = subprocess.run([sys.executable, "-c", RSS_PROBE, str(model)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    rss, loaded = probe.stdout.split()
    print(f"serving process: peak RSS {rss} MB after a clip and a stream (floor <= 250 MB); "
          f"loaded of tensorflow/keras/onnxruntime: {loaded}")


if __name__ == "__main__":
    main()

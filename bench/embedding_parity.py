"""Parity of the Keras speech embedding (ml/embedding_keras.py) with onnxruntime, on real clips.

Takes 200 real clips (../shared/speech/words: 25 per word, sorted by file name) and prints,
against onnxruntime (ml.embedding.SpeechEmbedding, one clip at a time as ml/classifier.py
serves): the max and mean abs difference of the embeddings [16, 96] of (a) the Keras model
and (b) its LiteRT conversion, the per-clip time of each on one thread, and how many clips
get the same top label from each head of the shipped default model (its members embed-mlp
and embed-conv, body.tflite as served) on ONNX embeddings vs Keras/LiteRT embeddings. Also
prints how far onnxruntime itself moves when clips are batched (its mel floor takes the
batch's maximum; the Keras model takes each clip's: see the module docstring).

Run: PYTHONPATH=. .venv/bin/python bench/embedding_parity.py [--per-word 25]
         [--model models/default]
Needs ../shared/speech (skips with a message without it). About a minute on one core.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ROOT.parent / "shared" / "speech" / "words"
HEADS = ("embed-mlp", "embed-conv")


def real_clips(folder: Path, per_word: int):
    """(clips [N, 16000], word of each): the first `per_word` files of each word, sorted."""
    import numpy as np

    from ml.audio import load_clip

    clips, words = [], []
    for word in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(word.glob("*.wav"))[:per_word]:
            clips.append(load_clip(path))
            words.append(word.name)
    return np.stack(clips), words


def timed_per_clip(runners: dict, clips) -> tuple[dict, dict]:
    """({name: outputs stacked}, {name: (median, min) ms per clip}) of each runner called on one
    clip at a time, the runners taking turns on each clip so that a busy machine's load falls
    on all alike. The median is what a busy machine gives; the minimum is close to an idle one."""
    import numpy as np

    for run in runners.values():
        run(clips[:1])                                # warm-up: graph building, allocation
    out = {name: [] for name in runners}
    times = {name: [] for name in runners}
    for clip in clips:
        for name, run in runners.items():
            t0 = time.perf_counter()
            out[name].append(run(clip[np.newaxis])[0])
            times[name].append(time.perf_counter() - t0)
    ms = {name: (float(np.median(t)) * 1e3, float(np.min(t)) * 1e3) for name, t in times.items()}
    return {name: np.stack(o) for name, o in out.items()}, ms


def litert_runner(data: bytes):
    """A function clips [1, 16000] -> embeddings [1, 16, 96] on a one-thread LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(clip):
        interpreter.set_tensor(inp, clip.astype("float32"))
        interpreter.invoke()
        return interpreter.get_tensor(out).copy()
    return run


def head_labels(head: Path, embeddings):
    """Top label index of a served head (body.tflite) for each clip's embeddings."""
    import numpy as np

    from ml.classifier import _Graph

    graph = _Graph(head / "body.tflite", threads=1)
    return np.array([int(graph(e[np.newaxis].astype(np.float32))[0].argmax()) for e in embeddings])


def diff(name: str, ref, other) -> None:
    import numpy as np

    d = np.abs(ref - other)
    print(f"{name:38s} max abs diff {d.max():.2e}   mean {d.mean():.2e}   "
          f"(embedding values up to {np.abs(ref).max():.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-word", type=int, default=25)
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    args = parser.parse_args()
    if not WORDS.is_dir():
        print(f"skipped: real speech not found at {WORDS} (see ../shared/speech/README.md)")
        return 0

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from ml.embedding import SpeechEmbedding
    from ml.embedding_keras import speech_embedding_model, to_litert

    clips, words = real_clips(WORDS, args.per_word)
    print(f"{len(clips)} clips of {len(set(words))} words from {WORDS}")

    onnx = SpeechEmbedding(threads=1)
    t0 = time.perf_counter()
    model = speech_embedding_model()
    build_s = time.perf_counter() - t0
    keras_fn = tf.function(lambda c: model(c, training=False), reduce_retracing=True)
    t0 = time.perf_counter()
    data = to_litert(model)
    convert_s = time.perf_counter() - t0
    out, ms = timed_per_clip({"onnxruntime": lambda c: onnx(c)[0],
                              "Keras (tf.function)": lambda c: keras_fn(tf.constant(c)).numpy(),
                              "LiteRT": litert_runner(data)}, clips)
    ref, keras_emb, litert_emb = out["onnxruntime"], out["Keras (tf.function)"], out["LiteRT"]
    batched = onnx.embed_batches(clips, batch=64)

    print(f"Keras model built from the ONNX files in {build_s:.1f} s; LiteRT conversion "
          f"{convert_s:.1f} s, {len(data) / 1e6:.2f} MB")
    diff("(a) Keras vs onnxruntime", ref, keras_emb)
    diff("(b) LiteRT vs onnxruntime", ref, litert_emb)
    diff("    onnxruntime batches of 64 vs alone", ref, batched)
    print("per clip, 1 thread, median / min: " + ", ".join(
        f"{name} {t[0]:.2f} / {t[1]:.2f} ms" for name, t in ms.items()))

    for name in HEADS:
        head = Path(args.model) / "members" / name
        base = head_labels(head, ref)
        same = [f"{int((head_labels(head, e) == base).sum())}/{len(base)}"
                for e in (keras_emb, litert_emb, batched)]
        print(f"head {name:10s} same top label as on ONNX embeddings: Keras {same[0]}, "
              f"LiteRT {same[1]} (onnxruntime in batches of 64: {same[2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

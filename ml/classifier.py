"""Serving: load a run once, classify raw audio of any rate and length in one call.

Every run, whatever it is made of (a network on its own spectrogram, a head on the
pretrained speech embedding, an ensemble of both, a taught version), serves through one
LiteRT graph, `model.tflite` (ml/graph.py builds and writes it): a span of
audio and window starts in, each window's probabilities out; a stream's windows go through
in one call, sharing the work of the span. One clip goes through the same graph fixed to
one window, `window.tflite` (faster: nothing to share). Only the LiteRT runtime is loaded,
never TensorFlow or onnxruntime, so a serving process is small and a clip takes a few
milliseconds.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from ml import runs
from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_clip, to_model_rate
from ml.config import FeatureSpec
from ml.embedding import chart_spec, context_samples
from ml.runs import SERVING_FILE, WINDOW_FILE

FRAME = 160          # window starts are whole 10 ms frames (the graph slices frames)


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    window_start_s: float          # where the classified second starts in the input
    clip: np.ndarray = field(repr=False)   # that second, 16 kHz
    features: np.ndarray = field(repr=False)   # the model's input for it, values[time, freq]
    timing_ms: dict[str, float] = field(default_factory=dict)


class _Graph:
    """The run's LiteRT graph: (audio [1, L], starts [1, K], offset [1, 1]) -> (probabilities
    [K, labels], picture [K, T, F]). Inputs are resized only when their shape changes."""

    def __init__(self, path: Path, threads: int):
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        runner = self.interpreter.get_signature_runner()
        self.inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
        self.outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        if set(self.inputs) != {"audio", "starts", "offset"} or "probabilities" not in self.outputs:
            raise runs.RunError(f"{path}: not a Hark serving graph (inputs {sorted(self.inputs)})")
        self.shapes: dict[str, tuple] = {}

    def __call__(self, audio: np.ndarray, starts: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        values = {"audio": np.ascontiguousarray(audio, np.float32)[np.newaxis],
                  "starts": np.asarray(starts, np.int32)[np.newaxis],
                  "offset": np.array([[offset % (2 * CLIP_SAMPLES)]], np.int32)}
        if any(self.shapes.get(k) != v.shape for k, v in values.items()):
            for name, value in values.items():
                self.interpreter.resize_tensor_input(self.inputs[name], value.shape)
            self.interpreter.allocate_tensors()
            self.shapes = {k: v.shape for k, v in values.items()}
        for name, value in values.items():
            self.interpreter.set_tensor(self.inputs[name], value)
        self.interpreter.invoke()
        return (self.interpreter.get_tensor(self.outputs["probabilities"]).copy(),
                self.interpreter.get_tensor(self.outputs["picture"]).copy())


def picture_spec(run_dir: Path, config: dict) -> FeatureSpec:
    """How the charts read `Prediction.features`: the spectrogram of the run (or its first
    member), or the speech embedding's mel frames."""
    first = runs.members_of(run_dir, config)[:1]
    config = runs.read_json(first[0] / "config.json") if first else config
    if config["features"] == "embedding":
        return chart_spec()
    return FeatureSpec.of(config.get("feature_params"), config["features"])


class Classifier:
    """A trained run ready to serve. Thread-safe; one clip at a time."""

    def __init__(self, run_dir: str | Path, threads: int = 1):
        self.run_dir = runs.check_run(Path(run_dir))
        missing = [name for name in (SERVING_FILE, WINDOW_FILE) if not (self.run_dir / name).is_file()]
        if missing:
            raise runs.RunError(f"{self.run_dir}: no serving graph ({', '.join(missing)}); make it with: "
                                f"python -m ml export --model {self.run_dir} --format litert")
        self.labels: list[str] = runs.labels_of(self.run_dir)
        self.config: dict = runs.read_json(self.run_dir / "config.json")
        self.version = self.config.get("run_id", self.run_dir.name)  # models/default keeps its id
        self.feature_kind = self.config["features"]
        parts = [runs.read_json(d / "config.json") for d in runs.parts_of(self.run_dir, self.config)]
        self.context = context_samples(parts)      # samples a window needs on each side
        # What the charts draw and how their axes read (the spectrogram the model or its
        # first member hears; runs made before specs were saved used the catalogue's).
        self.feature_spec: FeatureSpec = picture_spec(self.run_dir, self.config)
        self._graph = _Graph(self.run_dir / SERVING_FILE, threads)
        self._window = _Graph(self.run_dir / WINDOW_FILE, threads)
        self._lock = threading.Lock()

    def _alone(self, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, picture) of one one-second clip heard alone (silence around it)."""
        audio = np.pad(np.asarray(clip, np.float32), self.context)
        with self._lock:
            probs, picture = self._window(audio, np.array([self.context]), 0)
        return probs[0], picture[0]

    def classify(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> Prediction:
        """Label one recording: resampled to 16 kHz, cut to its loudest second."""
        t0 = time.perf_counter()
        clip, start = fit_clip(to_model_rate(np.asarray(wave, np.float32), rate))
        t1 = time.perf_counter()
        probs, picture = self._alone(clip)
        t2 = time.perf_counter()
        best = int(probs.argmax())
        return Prediction(
            label=self.labels[best], confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(self.labels, probs)},
            window_start_s=start / SAMPLE_RATE, clip=clip, features=picture,
            timing_ms={"resample": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3})

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities for a stack of one-second 16 kHz clips, shape (N, labels), each
        computed exactly as `classify` computes it."""
        clips = np.asarray(clips, np.float32).reshape(-1, CLIP_SAMPLES)
        out = np.zeros((len(clips), len(self.labels)), np.float32)
        for i, clip in enumerate(clips):
            out[i] = self._alone(clip)[0]
        return out

    def predict_windows(self, audio: np.ndarray, starts, offset: int = 0) -> np.ndarray:
        """Probabilities (N, labels) of the one-second windows of 16 kHz `audio` that begin
        at `starts` (increasing; `context` samples of audio needed before the first and after
        the last; whole 10 ms frames, multiples of 160): what a stream is made of, in one call
        of the graph, which computes spectrograms and the embedding once over the span; an
        embedding model hears each window in its surroundings instead of added silence.
        `offset`: where `audio` begins in its stream (the same window, the same numbers).
        """
        starts = np.asarray(starts, np.int64)
        if not len(starts):
            return np.zeros((0, len(self.labels)), np.float32)
        if (starts[0] < self.context or starts[-1] + CLIP_SAMPLES + self.context > len(audio)
                or np.any(starts % FRAME)):
            raise ValueError("windows need their context inside the audio, at whole 10 ms frames")
        first = int(starts[0]) - self.context               # only the audio the windows hear
        audio = audio[first:int(starts[-1]) + CLIP_SAMPLES + self.context]
        with self._lock:
            return self._graph(audio, starts - first, offset + first)[0]

    def feature_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) of each frame and frequency (Hz) of each bin of `Prediction.features`."""
        return self.feature_spec.axes()

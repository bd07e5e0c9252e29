"""POST /api/detect: the commands of a recording, or of the next chunk of a live stream.

A recording is decoded with the limits of /api/predict and run through
ml.detect's Detector; the answer has its detections and a timeline figure. A
live stream (form field or query parameter `stream`) is the same detector fed a
chunk at a time, with a stateless server: each answer carries the stream's
state, which the page sends back with the next chunk, together with the audio
from the answer's `next_s` on (so the server never keeps audio or sessions).
`sensitivity` (low, medium, high) picks one of the model's detector presets.
"""
from __future__ import annotations

import time

from flask import request

from ml.audio import SAMPLE_RATE, to_model_rate
from ml.detect import (
    DEFAULT_SENSITIVITY,
    SENSITIVITIES,
    Detector,
    DetectorConfig,
    DetectorError,
    StreamState,
    presets,
)
from webapp import figures
from webapp.classify.audio_input import decode_upload
from webapp.errors import ApiError
from webapp.security.json_input import loads

MAX_STATE_CHARS = 64_000


def _detector(classifier, sensitivity: str) -> Detector:
    try:
        return Detector(classifier, DetectorConfig.for_run(classifier.config, sensitivity=sensitivity))
    except DetectorError as exc:   # the run's config.json is wrong, not the request
        raise ApiError(503, f"the model's detector settings cannot be used: {exc}") from None


def sensitivity() -> str:
    """The listener's choice (form field or query parameter `sensitivity`), medium if none."""
    name = (_field("sensitivity") or DEFAULT_SENSITIVITY).strip().lower()
    if name not in SENSITIVITIES:
        raise ApiError(400, f"sensitivity must be one of {', '.join(SENSITIVITIES)}")
    return name


def sensitivity_choices(classifier) -> list[dict]:
    """The model's presets as the pages offer them: name, threshold and, where the curve bench
    measured it (config.json `detector.sensitivity.*.measured`), what it means in numbers."""
    if classifier is None:
        return []
    try:
        found = presets(classifier.config.get("detector") or {})
        choices = [{"name": name, "threshold": DetectorConfig.for_run(classifier.config, sensitivity=name).threshold,
                    "about": _about(found[name].get("measured"))} for name in SENSITIVITIES]
    except DetectorError:
        return []
    for c in choices:
        c["about"] = c["about"] or f"a command must reach {c['threshold']:.0%} (not measured on real rooms)"
    return choices


def _about(measured) -> str:
    """"hears 96% of commands said over noise; false alarms an hour: about 4 in talk, 1 in music, 0 in noise"."""
    if not isinstance(measured, dict):
        return ""
    try:
        hits = measured["noise on"]["hits"]
        fa = measured["false_alarms_per_hour"]
        kinds = ", ".join(f"{fa[k]:.0f} in {'talk' if k == 'speech' else k}"
                          for k in ("speech", "music", "noise") if k in fa)
        return f"hears {hits:.0%} of commands said over noise; false alarms an hour: about {kinds}"
    except (KeyError, TypeError, ValueError):
        return ""


def is_recording() -> bool:
    """A whole recording, not a live stream's chunk (which sends its state as `stream`)."""
    return _field("stream") is None


def _field(name: str) -> str | None:
    return request.form.get(name) if request.mimetype == "multipart/form-data" else request.args.get(name)


def answer(classifier, data: bytes, name: str, max_seconds: float, started: float) -> tuple[dict, int]:
    """(JSON body, decoded samples) for one request: a recording, or a live stream's chunk."""
    stream = _field("stream")
    chosen = sensitivity()
    detector = _detector(classifier, chosen)
    state = _state(stream, classifier, detector) if stream is not None else None
    t0 = time.perf_counter()
    wave, rate = decode_upload(data, name, max_seconds)
    decoded = time.perf_counter()
    body = {"model": classifier.version, "duration_s": round(len(wave) / rate, 4),
            "sensitivity": chosen, "threshold": detector.config.threshold}
    if state is None:
        found = detector.detect(wave, rate)
        body["detections"] = [d.to_dict() for d in found]
        detected = time.perf_counter()
        body["figure"] = figures.timeline(wave, rate, body["detections"])
    else:
        start = _start()
        found = detector.feed(state, to_model_rate(wave, rate), start)
        detected = time.perf_counter()
        latest = state.latest
        body.update(detections=[d.to_dict() for d in found],
                    state={**state.to_dict(), "model": classifier.version},
                    next_s=max(detector.held_from(state), 0) / SAMPLE_RATE,
                    probabilities=None if latest is None else
                    {label: round(p, 4) for label, p in zip(classifier.labels, latest)})
    body["timing_ms"] = {k: round(v * 1e3, 3) for k, v in (
        ("decode", decoded - t0), ("detect", detected - decoded),
        ("total", time.perf_counter() - started))}
    return body, len(wave)


def _state(text: str, classifier, detector: Detector) -> StreamState:
    """The state a page sent back ("" or "new": a new stream; another model's: a new one too)."""
    if text.strip() in ("", "new"):
        return StreamState()
    if len(text) > MAX_STATE_CHARS:
        raise ApiError(400, "bad stream state: it is too large (send back the state you were given)")
    data = loads(text, "bad stream state", " (send back the state you were given)")
    if isinstance(data, dict) and data.get("model") != classifier.version:
        return StreamState()          # the active model changed: its stream starts again
    try:
        return StreamState.from_dict(data, len(classifier.labels), detector.config.smooth)
    except DetectorError as exc:
        raise ApiError(400, f"{exc} (send back the state you were given, or 'new')") from None


def _start() -> int | None:
    """Where the chunk begins in the stream, from `start_s` (default: where the last one ended)."""
    text = _field("start_s")
    if text is None:
        return None
    try:
        start_s = float(text)
    except ValueError:
        start_s = float("nan")
    if not 0 <= start_s <= StreamState.MAX_SECONDS:    # every next_s a state accepted may give
        raise ApiError(400, "start_s must be the chunk's start in seconds from the stream's start")
    return round(start_s * SAMPLE_RATE)

"""The model for a page that classifies on the device (Listen's "On this device"), and the
detector's decisions for its windows.

- GET /api/model.json: what the page needs beside the graph (labels, context, sample rate,
  version, the picture's axes, the detector's window settings), with the graph's ETag.
- GET /api/model.tflite: the active model's `model.tflite` as it is (any span, see ml/graph.py).
- GET /api/model-window.tflite: the same model as one graph for exactly one window, the
  run's `window.tflite` (fixed shapes: what LiteRT.js can run).
- POST /api/decide: a live stream's window probabilities (no audio) through ml.detect's
  Decider, with the stream's state sent back and forth as /api/detect does.

The graphs are sent with an ETag and `Cache-Control: no-cache`: the browser keeps them and
asks each time whether they changed (304 when not).
"""
from __future__ import annotations

import hashlib
import math

from flask import Blueprint, current_app, jsonify, request, url_for

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE
from ml.detect import SENSITIVITIES, Decider, DetectorConfig, DetectorError, StreamState
from ml.runs import SERVING_FILE, WINDOW_FILE
from webapp.classify.detection import MAX_STATE_CHARS
from webapp.errors import ApiError
from webapp.labels import display_names
from webapp.security import csrf, rate_limited
from webapp.security.json_input import request_json
from webapp.versions.model_store import NoModel

bp = Blueprint("on_device", __name__, url_prefix="/api")
MAX_WINDOWS = 512                 # per /decide request: 51 s of windows at the default hop


def _classifier():
    try:
        return current_app.extensions["hark.models"].get()
    except NoModel as exc:
        raise ApiError(503, str(exc)) from None


def _key(classifier, name: str) -> tuple:
    path = classifier.run_dir / name
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size, classifier.version)


def _etag(classifier, variant: str, name: str = SERVING_FILE) -> str:
    return hashlib.sha256(repr((_key(classifier, name), variant)).encode()).hexdigest()[:32]


def _cached(body, mimetype: str, etag: str):
    response = current_app.response_class(body, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"        # keep it, but ask before using it
    return response.make_conditional(request)


def _etag_matches(etag: str) -> bool:
    return etag in request.if_none_match


def _graph(name: str, variant: str):
    classifier = _classifier()
    etag = _etag(classifier, variant, name)
    if _etag_matches(etag):
        return _cached(b"", "application/octet-stream", etag)
    return _cached((classifier.run_dir / name).read_bytes(), "application/octet-stream", etag)


@bp.get("/model.tflite")
def model_file():
    """The active model's serving graph, as ml/classifier.py runs it for a stream."""
    return _graph(SERVING_FILE, "tflite")


@bp.get("/model-window.tflite")
def window_model_file():
    """The same graph fixed to one window: what LiteRT.js runs (one clip, or each live window)."""
    return _graph(WINDOW_FILE, "window")


@bp.get("/model.json")
def model_info():
    """What a page needs to run the window graph as the server runs the model."""
    classifier = _classifier()
    times, freqs = classifier.feature_axes()
    detector = {}
    for name in SENSITIVITIES:
        try:
            config = DetectorConfig.for_run(classifier.config, sensitivity=name)
        except DetectorError as exc:
            raise ApiError(503, f"the model's detector settings cannot be used: {exc}") from None
        detector[name] = {"hop_s": config.hop_s, "edge_s": config.edge_s, "edge_ratio": config.edge_ratio,
                          "threshold": config.threshold}
    body = {"model": classifier.version, "labels": classifier.labels,
            "display_names": display_names(classifier.labels),
            "sample_rate": SAMPLE_RATE, "window_samples": CLIP_SAMPLES, "context": classifier.context,
            "span_samples": CLIP_SAMPLES + 2 * classifier.context, "frame": 160,
            "offset_period": 2 * CLIP_SAMPLES,
            "picture": {"kind": classifier.feature_spec.kind, "times_s": [round(float(t), 4) for t in times],
                        "freqs_hz": [round(float(f), 1) for f in freqs]},
            "detector": detector, "edge_pad_s": 0.3,
            "files": {"model": url_for("on_device.model_file"),
                      "window_model": url_for("on_device.window_model_file"),
                      "window_model_etag": _etag(classifier, "window", WINDOW_FILE)},
            "decide_url": url_for("on_device.decide")}
    response = jsonify(body)
    response.set_etag(_etag(classifier, "json"))
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


def _number(x, low: float, high: float, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not low <= x <= high:
        raise ApiError(400, f"{what} must be a number from {low:g} to {high:g}")
    return float(x)


def _windows(rows, labels: int, after: float | None):
    if not isinstance(rows, list) or len(rows) > MAX_WINDOWS:
        raise ApiError(400, f"windows must be a list of at most {MAX_WINDOWS} [time_s, probabilities, cut]")
    times: list[float] = []
    probs: list[list[float]] = []
    cuts: list[bool] = []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], list)
                and len(row[1]) == labels and isinstance(row[2], bool)):
            raise ApiError(400, f"windows[{i}] must be [time_s, [{labels} probabilities], cut (true/false)]")
        t = _number(row[0], -1.0, StreamState.MAX_SECONDS, f"windows[{i}] time_s")
        if (times and t <= times[-1]) or (after is not None and t <= after):
            raise ApiError(400, f"windows[{i}]: window times must increase along the stream")
        times.append(t)
        probs.append([_number(p, 0.0, 1.0, f"windows[{i}] probabilities") for p in row[1]])
        cuts.append(row[2])
    return times, probs, cuts


@bp.post("/decide")
@csrf.exempt            # like /detect: stores nothing
@rate_limited("HARK_RATE_PREDICT")
def decide():
    """The detector's decisions for a live stream's windows computed on the device."""
    classifier = _classifier()
    body = request_json()
    if not isinstance(body, dict):
        raise ApiError(400, 'send a JSON object: {"model", "sensitivity", "state", "windows", "end"}')
    if body.get("model") != classifier.version:
        raise ApiError(409, "the active model changed: load it again (GET /api/model.json)",
                       code="model_changed")
    sensitivity = body.get("sensitivity", "medium")
    if sensitivity not in SENSITIVITIES:
        raise ApiError(400, f"sensitivity must be one of {', '.join(SENSITIVITIES)}")
    try:
        config = DetectorConfig.for_run(classifier.config, sensitivity=sensitivity)
    except DetectorError as exc:
        raise ApiError(503, f"the model's detector settings cannot be used: {exc}") from None
    decider = Decider(classifier.labels, config, float(classifier.config.get("unknown_weight", 1.0) or 1.0))
    given = body.get("state", "new")
    if given in (None, "new"):
        state = StreamState()
    else:
        if len(str(given)) > MAX_STATE_CHARS:
            raise ApiError(400, "bad stream state: it is too large (send back the state you were given)")
        try:
            state = StreamState.from_dict(given, len(classifier.labels), config.smooth)
        except DetectorError as exc:
            raise ApiError(400, f"{exc} (send back the state you were given, or 'new')") from None
    after = state.raw[-1][0] if state.raw else None
    times, probs, cuts = _windows(body.get("windows", []), len(classifier.labels), after)
    found = decider.rows(state, times, probs, cuts) if times else []
    if body.get("end") is True:
        found += decider.end_segment(state)
    latest = state.latest
    return jsonify(model=classifier.version, detections=[d.to_dict() for d in found],
                   state=state.to_dict(),
                   probabilities=None if latest is None else
                   {label: round(p, 4) for label, p in zip(classifier.labels, latest)})

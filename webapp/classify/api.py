"""The JSON API (documented in docs/api.md).

/api/predict stays lean (no charts) for programs and live mode; /api/analyze
adds the result view's charts and wording for the pages. Both, /detect and the
gallery's analyze charge the client for the audio they decode, refused or not
(webapp.classify.audio_input.decode_upload, the HARK_RATE_AUDIO_SECONDS limit).
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from ml.audio import SAMPLE_RATE
from webapp import figures
from webapp.classify import detection, inference
from webapp.classify.audio_input import read_upload
from webapp.errors import ApiError
from webapp.labels import display_name, display_names, verdict
from webapp.security import csrf, rate_limited
from webapp.versions.model_store import NoModel

bp = Blueprint("api", __name__, url_prefix="/api")


def _classifier():
    try:
        return current_app.extensions["hark.models"].get()
    except NoModel as exc:
        raise ApiError(503, str(exc)) from None


def _classify():
    started = time.perf_counter()
    classifier = _classifier()          # held for the whole request, even across a swap
    data, name = read_upload()
    result = inference.run(classifier, data, name, current_app.config["HARK_MAX_SECONDS"], started)
    return classifier, result


@bp.post("/predict")
@csrf.exempt            # programs post audio without a session; nothing is stored
@rate_limited("HARK_RATE_PREDICT")
def predict():
    """Label one clip: label, confidence, all probabilities, model version, timings."""
    classifier, result = _classify()
    return jsonify(inference.summary(result, classifier.version))


def analysis(classifier, result: inference.Result) -> dict:
    """The body of an /analyze answer: the summary, wording and the three charts."""
    p = result.prediction
    body = inference.summary(result, classifier.version)
    body["display_label"] = display_name(p.label)
    body["verdict"] = verdict(p.label, p.confidence, current_app.config["HARK_LOW_CONFIDENCE"])
    body["window_start_s"] = round(p.window_start_s, 4)
    body["figures"] = figures.result_figures(classifier, result)
    return body


@bp.post("/analyze")
@csrf.exempt
@rate_limited("HARK_RATE_ANALYZE")
def analyze():
    """What /predict returns, plus the result view: wording and the three charts."""
    classifier, result = _classify()
    return jsonify(analysis(classifier, result))


@bp.before_request
def _body_limit():
    """/detect takes whole recordings (HARK_MAX_DETECT_*), so a larger body; set before the
    view's rate limits run, so a refused upload is still read to its end (webapp.security)."""
    if request.endpoint == "api.detect":
        request.max_content_length = current_app.config["HARK_MAX_DETECT_UPLOAD_MB"] * 1024 * 1024


@bp.post("/detect")
@csrf.exempt            # like /predict: programs and live mode post audio; nothing is stored
@rate_limited("HARK_RATE_PREDICT")
def detect():
    """Every command of a recording with its time and a timeline figure, or the commands
    of the next chunk of a live stream (webapp/classify/detection.py)."""
    started = time.perf_counter()
    config = current_app.config
    classifier = _classifier()
    data, name = read_upload()
    recording = detection.is_recording()
    body, _ = detection.answer(classifier, data, name, config[
        "HARK_MAX_DETECT_SECONDS" if recording else "HARK_MAX_SECONDS"], started)
    return jsonify(body)


@bp.get("/health")
def health():
    """Is the service able to classify, and with which model."""
    store = current_app.extensions["hark.models"]
    classifier = store.peek()
    if classifier is None:
        return jsonify(status="no_model", error=store.error, model=None, labels=[]), 503
    return jsonify(status="ok", model=classifier.version, labels=classifier.labels,
                   display_names=display_names(classifier.labels),
                   features=classifier.feature_kind, sample_rate=SAMPLE_RATE)

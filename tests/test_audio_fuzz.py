"""Property-based fuzzing (hypothesis) of the decoder and of POST /api/predict.

Properties: `ml.audio.decode` raises nothing but AudioError, and what it returns is
finite mono float32 in [-1, 1] within the duration cap; the API never answers 5xx
and every refusal is a JSON error. Inputs: random bytes, random bytes behind real
signatures, valid WAV/FLAC/OGG files broken by random edits, and hand-made WAV
headers with absurd fields (ml/audio_fuzz.py).

CI runs a few hundred examples, derandomized so a run is repeatable (about 10 s);
bench/fuzz_predict.py sends thousands against a real gunicorn server.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml import audio
from ml.audio_fuzz import crafted_wav, hostile_bytes, magic_prefixed, mutated

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=400,
                suppress_health_check=list(HealthCheck))
CONTENT_TYPES = ["audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "text/html", "application/zip",
                 "application/octet-stream", "text/plain", "application/x-www-form-urlencoded", ""]


def decode_property(data: bytes, max_seconds: float) -> None:
    try:
        wave, rate = audio.decode(data, max_seconds=max_seconds)
    except audio.AudioError as exc:
        assert str(exc).startswith("upload: ") and "<_io" not in str(exc)
        event(type(exc).__name__)
        return
    event("decoded")
    assert isinstance(wave, np.ndarray) and wave.ndim == 1 and wave.dtype == np.float32
    assert 0 < len(wave) <= max_seconds * rate
    assert audio.MIN_RATE <= rate <= audio.MAX_RATE
    assert np.all(np.isfinite(wave)) and np.abs(wave).max() <= 1.0


MAX_SECONDS = st.sampled_from([0.05, 1.0, 30.0])


@FUZZ
@given(st.binary(max_size=4096), MAX_SECONDS)
def test_decode_of_arbitrary_bytes(data, max_seconds):
    decode_property(data, max_seconds)


@FUZZ
@given(magic_prefixed(), MAX_SECONDS)
def test_decode_of_random_bytes_behind_real_signatures(data, max_seconds):
    decode_property(data, max_seconds)


@settings(FUZZ, max_examples=800)
@given(mutated(), MAX_SECONDS)
def test_decode_of_mutated_valid_files(data, max_seconds):
    decode_property(data, max_seconds)


@FUZZ
@given(crafted_wav(), MAX_SECONDS)
def test_decode_of_hand_made_wav_headers(data, max_seconds):
    decode_property(data, max_seconds)


# ---- the HTTP API ------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(app_factory, tiny_run):
    app = app_factory(HARK_MODEL=str(tiny_run), RATELIMIT_ENABLED=False,
                      MAX_CONTENT_LENGTH=64 * 1024)     # small, so the 413 path is fuzzed too
    return app.test_client()


@pytest.fixture(scope="module")
def labels(client):
    return client.get("/api/health").get_json()["labels"]


def check_answer(response, labels) -> None:
    event(f"status {response.status_code}")      # see: pytest --hypothesis-show-statistics
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    if response.status_code == 200:
        assert body["label"] in labels and set(body["probabilities"]) == set(labels)
        assert all(math.isfinite(p) for p in body["probabilities"].values())
    else:
        assert 400 <= response.status_code < 500 and isinstance(body["error"], str) and body["error"]


REQUESTS = st.fixed_dictionaries({
    "data": st.one_of(hostile_bytes(), st.binary(min_size=64 * 1024 - 16, max_size=64 * 1024 + 16)),
    "multipart": st.booleans(),
    "name": st.text(max_size=40),
    "content_type": st.sampled_from(CONTENT_TYPES),
})


def post(client, url, req):
    if req["multipart"]:
        return client.post(url, data={"file": (io.BytesIO(req["data"]), req["name"],
                                               req["content_type"] or None)},
                           content_type="multipart/form-data")
    return client.post(url, data=req["data"], content_type=req["content_type"] or None)


@settings(FUZZ, max_examples=500)
@given(REQUESTS)
def test_predict_never_answers_5xx(client, labels, req):
    check_answer(post(client, "/api/predict", req), labels)


@settings(FUZZ, max_examples=100)
@given(REQUESTS)
def test_analyze_never_answers_5xx(client, labels, req):
    check_answer(post(client, "/api/analyze", req), labels)

"""Shared fixtures: tiny data sets made in the test, a model trained on them, apps and clients."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every app a test makes keeps its database, queue, secret key and runs in throwaway folders,
# and has rate limits no test reaches (tests/test_security.py checks the login limit itself).
_TMP = tempfile.TemporaryDirectory(prefix="hark-test-")   # removed when the session ends
os.environ.setdefault("HARK_INSTANCE", os.path.join(_TMP.name, "instance"))
os.environ.setdefault("HARK_RUNS", os.path.join(_TMP.name, "runs"))
for _name in ("HARK_RATE_PREDICT", "HARK_RATE_ANALYZE", "HARK_RATE_UPLOAD", "HARK_RATE_LOGIN",
              "HARK_RATE_AUDIO_SECONDS"):
    os.environ.setdefault(_name, "100000/minute")

import pytest

from ml.synth.tones import make_tone_set
from tests import helpers


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory) -> Path:
    return make_tone_set(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def tiny_run(tone_data, tmp_path_factory) -> Path:
    """A real kws model trained for three epochs on the tone set (in batches of 8: enough
    steps for its batch-norm statistics to learn `_silence_`, not just the tones)."""
    from ml.train import TrainConfig, train

    cfg = TrainConfig(data=str(tone_data), arch="kws", epochs=3, batch_size=8,
                      runs=str(tmp_path_factory.mktemp("runs")))
    return train(cfg, verbose=0, log=lambda msg: None)


@pytest.fixture(scope="session")
def app_factory(tmp_path_factory, tiny_run, tone_data):
    """app_factory(**config): an app in fresh folders, serving tiny_run as its default model
    (an admin exists, tasks run inline; the tone set is public like Hark's own sets);
    `config` goes on top."""
    def make(**config):   # a model of tones on the guard's spoken check set means nothing: off
        return helpers.make_app(tmp_path_factory.mktemp("app"), **{
            "HARK_DEFAULT_MODEL": str(tiny_run), "HARK_GUARD": False,
            "HARK_PUBLIC_DATA": str(tone_data), **config})
    return make


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(app):
    """A client logged in as the admin: `.token` is its CSRF token, `.headers` sends it."""
    client = app.test_client()
    client.token = helpers.login(client)
    client.headers = {"X-CSRFToken": client.token}
    return client


@pytest.fixture
def limiter_clock(monkeypatch):
    """Stops the clock of the in-memory rate-limit counters (Flask-Limiter's, the audio budget's).

    Flask-Limiter counts in windows aligned to the wall clock (whole minutes for "3/minute") and,
    once a window has passed, weighs its hits down (rounding the sum down): requests that straddle
    a minute boundary undercount, so a test's fourth attempt at "3/minute" got through now and
    then. With the clock stopped every hit of the test falls in one window. Returns the time.
    """
    import time
    import types

    import limits.storage.memory

    now = time.time()
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=lambda: now))
    return now

"""Helpers shared by the tests: apps with throwaway folders, a logged-in admin, audio bytes.

Importing this module changes nothing (the environment is set up in conftest.py).
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.synth.tones import tone_clip
from webapp import create_app

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEECH = ROOT.parent / "shared" / "speech"
PASSWORD = "correct horse battery staple"


def make_app(tmp: Path, **config):
    """An app whose database, queue, runs and data live under `tmp` (tasks run inline)."""
    base = {"HARK_INSTANCE": str(tmp / "instance"), "HARK_RUNS": str(tmp / "runs"),
            "HARK_DATA": str(tmp / "data"), "HARK_QUEUE_IMMEDIATE": True,
            "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_MODEL_CHECK_S": 0, "TESTING": True}
    return create_app({**base, **config})


def csrf_token(client, path: str = "/") -> str:
    """The session's CSRF token, read the way the scripts read it (the meta tag)."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, username: str = "admin", password: str = PASSWORD):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return token


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of a run that is a version of its own (its run id is its folder name)."""
    shutil.copytree(run_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    config["run_id"] = dest.name
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def with_detector(run_dir: Path, dest: Path, **settings) -> Path:
    """A copy of a run whose config.json carries a `detector` section (ml/detect.py)."""
    run = copy_run(run_dir, dest)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "detector": settings}))
    return run


def audio_bytes(freq=1500.0, rate=16000, seconds=1.0, fmt="WAV", subtype="PCM_16", channels=1):
    """A tone clip encoded as a file (WAV by default) the model hears as "yes"."""
    wave = tone_clip(freq, np.random.default_rng(3), seconds=seconds, rate=rate)
    if channels > 1:
        wave = np.column_stack([wave] * channels)
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def require_shared_speech() -> Path:
    if not (SHARED_SPEECH / "words").is_dir():
        pytest.skip(f"real speech clips not found at {SHARED_SPEECH} (see ../shared/speech/README.md)")
    return SHARED_SPEECH

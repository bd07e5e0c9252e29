"""Configuration: every setting has a working default and an environment variable.

One place reads the environment, so `gunicorn wsgi:app` in a bare checkout
serves the site and a deployment changes behaviour without touching code.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default, cast=str):
    value = os.environ.get(name)
    return default if value in (None, "") else cast(value)


def from_environment() -> dict:
    """Flask config keys, read from HARK_* variables (see docs/api.md)."""
    return {
        # A run directory, or a small pointer file naming one (swapped atomically to
        # change the active model without a restart).
        "HARK_MODEL": _env("HARK_MODEL", str(ROOT / "models" / "default")),
        # How often (s) a worker looks whether the active model changed.
        "HARK_MODEL_CHECK_S": _env("HARK_MODEL_CHECK_S", 1.0, float),
        # Model threads per process: one per worker keeps latency flat under load.
        "HARK_MODEL_THREADS": _env("HARK_MODEL_THREADS", 1, int),
        # Below this confidence a result says plainly that the model is unsure.
        "HARK_LOW_CONFIDENCE": _env("HARK_LOW_CONFIDENCE", 0.6, float),
        "HARK_MAX_SECONDS": _env("HARK_MAX_SECONDS", 30.0, float),
        "MAX_CONTENT_LENGTH": _env("HARK_MAX_UPLOAD_MB", 10, int) * 1024 * 1024,
    }

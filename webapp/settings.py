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
        # Unset: a pointer file in the instance folder, first naming models/default; the
        # admin page activates a model version by replacing it (webapp/versions/registry.py).
        "HARK_MODEL": _env("HARK_MODEL", None),
        # How often (s) a worker looks whether the active model changed.
        "HARK_MODEL_CHECK_S": _env("HARK_MODEL_CHECK_S", 1.0, float),
        # Model threads per process: one per worker keeps latency flat under load.
        "HARK_MODEL_THREADS": _env("HARK_MODEL_THREADS", 1, int),
        # Below this confidence a result says plainly that the model is unsure.
        "HARK_LOW_CONFIDENCE": _env("HARK_LOW_CONFIDENCE", 0.6, float),
        "HARK_MAX_SECONDS": _env("HARK_MAX_SECONDS", 30.0, float),
        # A whole recording sent to POST /api/detect (not a live chunk): longer, and a larger body.
        "HARK_MAX_DETECT_SECONDS": _env("HARK_MAX_DETECT_SECONDS", 600.0, float),
        "HARK_MAX_DETECT_UPLOAD_MB": _env("HARK_MAX_DETECT_UPLOAD_MB", 64, int),
        "MAX_CONTENT_LENGTH": _env("HARK_MAX_UPLOAD_MB", 10, int) * 1024 * 1024,
        **jobs_and_security(),
    }


def _flag(name: str, default: bool) -> bool:
    return _env(name, default, lambda v: v.strip().lower() in ("1", "true", "yes", "on"))


def jobs_and_security() -> dict:
    """Database, task queue, admin login, rate limits (README: "Training jobs", "Security")."""
    return {
        # Where the database, queue, secret key and active-model pointer live.
        "HARK_INSTANCE": _env("HARK_INSTANCE", str(ROOT / "instance")),
        # Any SQLAlchemy URL; unset: SQLite file hark.db in the instance folder.
        "HARK_DATABASE_URL": _env("HARK_DATABASE_URL", None),
        # Redis for the task queue and the rate-limit counters; unset: SQLite queue, memory counters.
        "HARK_REDIS_URL": _env("HARK_REDIS_URL", None),
        # Run every queued task at once inside the caller (unit tests only).
        "HARK_QUEUE_IMMEDIATE": _flag("HARK_QUEUE_IMMEDIATE", False),
        # Apply database migrations when the app starts (off: run `flask db upgrade` yourself).
        "HARK_AUTO_MIGRATE": _flag("HARK_AUTO_MIGRATE", True),
        "HARK_RUNS": _env("HARK_RUNS", str(ROOT / "runs")),
        "HARK_DATA": _env("HARK_DATA", str(ROOT / "data")),
        # Folders outside the data folder whose clips anyone may hear in the gallery (the
        # real-speech evaluation sets; os.pathsep between them). Other server folders, and
        # the admin's own data sets unless made public one by one, are the admin's only.
        "HARK_PUBLIC_DATA": _env("HARK_PUBLIC_DATA", str(ROOT.parent / "shared" / "speech")),
        "HARK_DEFAULT_MODEL": _env("HARK_DEFAULT_MODEL", str(ROOT / "models" / "default")),
        # The first start with no model trains one by itself (data set made first if missing).
        "HARK_AUTO_TRAIN": _flag("HARK_AUTO_TRAIN", True),
        "HARK_AUTO_TRAIN_EPOCHS": _env("HARK_AUTO_TRAIN_EPOCHS", 10, int),
        "HARK_DEFAULT_PER_WORD": _env("HARK_DEFAULT_PER_WORD", None, int),
        # The activation guard (ml/guard.py): a job's version replaces the active one only if it
        # measures no worse on the check set and, where this folder exists, on real speech.
        "HARK_GUARD": _flag("HARK_GUARD", True),
        "HARK_REAL_SPEECH": _env("HARK_REAL_SPEECH", str(ROOT.parent / "shared" / "speech" / "words")),
        # A running job whose worker has not been heard of for this long is failed.
        "HARK_JOB_STALE_S": _env("HARK_JOB_STALE_S", 120.0, float),
        # Session signing key; unset: generated once into the instance folder (mode 600).
        "SECRET_KEY": _env("HARK_SECRET_KEY", None),
        # Created on first start when no admin exists yet (never a default password).
        "HARK_ADMIN_USER": _env("HARK_ADMIN_USER", "admin"),
        "HARK_ADMIN_PASSWORD": _env("HARK_ADMIN_PASSWORD", None),
        # Rate limits per client address (Flask-Limiter syntax, ";" between limits).
        "HARK_RATE_PREDICT": _env("HARK_RATE_PREDICT", "40/second;900/minute"),
        "HARK_RATE_ANALYZE": _env("HARK_RATE_ANALYZE", "10/second;300/minute"),
        "HARK_RATE_UPLOAD": _env("HARK_RATE_UPLOAD", "60/minute;600/hour"),
        "HARK_RATE_LOGIN": _env("HARK_RATE_LOGIN", "10/minute;40/hour"),
        # Failed logins per user name, from any address (webapp/auth/limits.py; shared by all workers).
        "HARK_RATE_LOGIN_USER": _env("HARK_RATE_LOGIN_USER", "10/minute;100/hour"),
        # Audio decoded by the routes under HARK_RATE_PREDICT or HARK_RATE_ANALYZE, per client
        # address, in seconds counted at 16 kHz (a second at 48 kHz costs 3): long high-rate
        # files cost far more CPU than their request count says (webapp/security/audio_budget.py).
        "HARK_RATE_AUDIO_SECONDS": _env("HARK_RATE_AUDIO_SECONDS", "3600/minute;100000/hour"),
        # Behind a reverse proxy: trust this many X-Forwarded-* hops (client address, https).
        "HARK_PROXIES": _env("HARK_PROXIES", 0, int),
    }

"""The one "asked to stop" exception of every long ml task (a training, a folder evaluation).

It lives apart from ml/fitting.py so that code without TensorFlow (the web app's job
runner, ml/evaluate.py) can raise and catch it.
"""
from __future__ import annotations

__all__ = ["Cancelled"]


class Cancelled(RuntimeError):
    """The caller asked the task to stop (its stop flag said so); nothing half-done is kept."""

"""A rate limit by decoded audio (HARK_RATE_AUDIO_SECONDS), beside the per-request limits.

A request limit counts requests, but one 40 KB FLAC that holds 30 s at 384 kHz costs
as much CPU as hundreds of one-second clips. The views that decode audio (those
limited by HARK_RATE_PREDICT or HARK_RATE_ANALYZE, see webapp/security.py) are
wrapped by `metered`: before the view runs, the client's address must have budget
left (else 429 with Retry-After); after it, what it decoded is charged (the decoder
reports each block to `charge_audio`, see webapp.classify.audio_input.decode_upload; in
seconds counted at 16 kHz), whether the audio was then used or refused: a file cut
short or longer than its header says costs the work it took. One budget covers
all those views.

The counters are those of the `limits` library, which Flask-Limiter counts with, in
a fixed window: a charge larger than what is left still counts in full, so the next
request is refused. (Flask-Limiter's sliding window drops a hit that does not fit,
and a cost known only after the work could then never refuse anything.) In Redis
when HARK_REDIS_URL is set, shared by every worker; in memory otherwise.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps

from flask import Flask, current_app, g
from flask_limiter.util import get_remote_address
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from webapp import errors

log = logging.getLogger(__name__)
SCOPE = "hark-audio-seconds"
UNIT_RATE = 16_000        # a second of mono audio at this rate costs 1


def charge_audio(samples: int) -> None:
    """Add `samples` decoded samples (in all channels) to this request's charge.

    Counted in seconds at 16 kHz: a second at 48 kHz costs 3, at 384 kHz 24, in
    stereo twice that, since decoding work grows with the samples, not with the
    duration. A request that decodes nothing (refused at its header) costs 1.
    """
    g.hark_audio_samples = g.get("hark_audio_samples", 0) + samples


class AudioBudget:
    """The HARK_RATE_AUDIO_SECONDS counters of one app."""

    def __init__(self, app: Flask):
        self.meter = FixedWindowRateLimiter(storage_from_string(app.config.get("HARK_REDIS_URL")
                                                                or "memory://"))

    @staticmethod
    def _limits():
        return parse_many(current_app.config["HARK_RATE_AUDIO_SECONDS"])

    def refusal(self):
        """A 429 response when the client's address has spent its budget, else None."""
        key = get_remote_address()
        try:
            for item in self._limits():
                if not self.meter.test(item, SCOPE, key):
                    reset = self.meter.get_window_stats(item, SCOPE, key).reset_time
                    wait = max(1, math.ceil(reset - time.time()))
                    return errors.respond(429, f"too much audio from this address (limit {item} "
                                               f"seconds of audio, counted at 16 kHz); try again "
                                               f"in {wait} s", [("Retry-After", str(wait))])
        except Exception:   # a counter store that fails must not take the service down
            log.exception("audio rate limit: could not read the counters")
        return None

    def charge(self) -> None:
        key = get_remote_address()
        cost = max(1, math.ceil(g.pop("hark_audio_samples", 0) / UNIT_RATE))
        try:
            for item in self._limits():
                self.meter.hit(item, SCOPE, key, cost=cost)
        except Exception:
            log.exception("audio rate limit: could not count %s s for %s", cost, key)


def metered(app: Flask, view: Callable) -> Callable:
    """`view` behind the app's audio budget: refused when spent, charged what it decoded."""
    budget = app.extensions.get("hark.audio_budget")
    if budget is None:
        budget = app.extensions["hark.audio_budget"] = AudioBudget(app)

    @wraps(view)
    def run(*args, **kwargs):
        refused = budget.refusal()
        if refused is not None:
            return refused
        try:
            return view(*args, **kwargs)
        finally:
            budget.charge()
    return run

"""Login limits per user name and per address, shared by every worker and machine.

Flask-Limiter's counters live in each gunicorn worker's memory unless Redis is
set, so three workers let three times the documented rate through. Password
guessing is counted in the database instead, which every worker (and, on
PostgreSQL, every machine) shares: an attempt is written as a row *before* the
password is checked, then the rows up to and including it are counted, so
concurrent attempts are ordered by their ids and never all slip under a limit.
A successful login deletes its row (only failures count later); a refused
attempt deletes its own row too (hammering a closed door does not extend the
wait). HARK_RATE_LOGIN limits an address, HARK_RATE_LOGIN_USER a user name.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from limits import RateLimitItem, parse_many
from sqlalchemy import delete, func, select

from webapp.database import db, utcnow
from webapp.tables import LoginAttempt


class TooManyAttempts(Exception):
    """A login limit is reached; the message says which and for how long, for a person."""


def _limits(setting: str) -> list[RateLimitItem]:
    return parse_many(current_app.config[setting])


def begin(username: str, address: str | None) -> int:
    """Record an attempt and check both limits; returns its id, or raises TooManyAttempts."""
    now = utcnow()
    per_user, per_address = _limits("HARK_RATE_LOGIN_USER"), _limits("HARK_RATE_LOGIN")
    longest = max(item.get_expiry() for item in per_user + per_address)
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(seconds=longest)))
    username, address = (username or "").strip()[:64], (address or "unknown")[:64]
    attempt = LoginAttempt(username=username, address=address, at=now)
    db.session.add(attempt)
    db.session.commit()
    checks = (("this user name", LoginAttempt.username, username, per_user),
              ("this address", LoginAttempt.address, address, per_address))
    for what, column, value, items in checks:
        for item in items:
            count = db.session.scalar(select(func.count()).select_from(LoginAttempt).where(
                column == value, LoginAttempt.id <= attempt.id,
                LoginAttempt.at >= now - timedelta(seconds=item.get_expiry())))
            if (count or 0) > item.amount:
                forget(attempt.id)
                raise TooManyAttempts(f"too many failed logins for {what} (limit {item}); "
                                      "try again later")
    return attempt.id


def forget(attempt_id: int) -> None:
    """The attempt succeeded (or was refused): it no longer counts."""
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))
    db.session.commit()

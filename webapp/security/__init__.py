"""Security for every route: session cookies, CSRF, rate limits and response headers.

`configure()` runs first (the secret key and cookie flags must exist before any
session is touched); `init_app()` runs after every blueprint is registered, so
rate limits and CSRF exemptions are applied to the final view functions.

- CSRF: Flask-WTF's CSRFProtect checks every POST/PUT/PATCH/DELETE; forms carry
  `csrf_token()`, fetch calls send the `X-CSRFToken` header (static/js/csrf.js
  adds it from `<meta name="csrf-token">`). A view that stores nothing and must
  be callable by programs (/api/predict, /api/analyze) says `@csrf.exempt`.
- Rate limits: Flask-Limiter, per client address; a view says
  `@rate_limited("HARK_RATE_...")` and the limit is read from that setting;
  counters in Redis when HARK_REDIS_URL is set (shared by every worker and
  machine), in memory otherwise (each worker counts for itself). The views
  limited by an AUDIO_LIMITED setting decode audio: they also share a budget of
  decoded audio per address, HARK_RATE_AUDIO_SECONDS (webapp/security/audio_budget.py).
- Ids in URLs: `<int:...>` only matches what a database id column holds, so a
  larger number is a 404 instead of an overflow deep in the database driver.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.datastructures import MultiDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from webapp import errors
from webapp.instance import secret_key
from webapp.security import audio_budget
from webapp.security.json_input import request_json

csrf = CSRFProtect()

CSP = ("default-src 'self'; "
       "script-src 'self' 'wasm-unsafe-eval'; "  # no inline scripts, no eval; WebAssembly (LiteRT.js)
       "style-src 'self' 'unsafe-inline'; "      # Plotly sets inline styles on its charts
       "img-src 'self' data: blob:; "
       "media-src 'self' blob:; "
       "connect-src 'self'; "
       "font-src 'self'; "
       "worker-src 'self' blob:; "
       "object-src 'none'; "
       "base-uri 'self'; "
       "form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": ("microphone=(self), camera=(), geolocation=(), payment=(), usb=(), "
                           "interest-cohort=()"),
    "Cross-Origin-Opener-Policy": "same-origin",
}


# Routes limited by these settings decode audio: they are also charged by HARK_RATE_AUDIO_SECONDS.
AUDIO_LIMITED = ("HARK_RATE_PREDICT", "HARK_RATE_ANALYZE")
DRAIN_CHUNK = 1 << 16
# The largest id the tables' Integer columns hold everywhere (PostgreSQL's 32-bit INTEGER).
MAX_ID = 2**31 - 1


class DatabaseId(IntegerConverter):
    """`<int:...>` in every route: a non-negative number no larger than a database id."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def json_form_data(body=None) -> MultiDict:
    """A JSON request body as form data for a Flask-WTF form, or a 400 saying what is wrong.

    Flask-WTF hands the parsed JSON to a MultiDict as it is, so a body that is not an
    object ("x", 5, [1]) or a value that is not a string (a number where a text field
    expects one) would fail deep inside validation. Here the body must be an object of
    single values: strings pass as they are, numbers as their JSON text, true as "y",
    false and null as absent (an unticked box, a blank field). `body`: the body already
    read (webapp.security.json_input), else it is read here.
    """
    body = request_json() if body is None else body
    if not isinstance(body, dict):
        raise errors.ApiError(400, "the JSON body must be an object of names and values, "
                                   'e.g. {"name": "value"}')
    out: MultiDict[str, str] = MultiDict()
    for name, value in body.items():
        if isinstance(value, (dict, list)):
            raise errors.ApiError(400, f"{name}: give a single value, not a list or an object")
        if value is True:
            out.add(name, "y")
        elif isinstance(value, str):
            out.add(name, value)
        elif value is not None and value is not False:
            out.add(name, json.dumps(value))
    return out


def rate_limited(config_key: str, methods: list[str] | None = None) -> Callable:
    """Mark a view for a rate limit read from `config_key` (applied by `init_app`)."""
    def mark(view):
        view._hark_rate_limit = (config_key, methods)
        return view
    return mark


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def configure(app: Flask) -> None:
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(app.instance_path)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,          # valid for the session: an open admin page never expires
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
    )
    app.session_interface = _SessionInterface()
    app.url_map.converters["int"] = DatabaseId     # before any route is registered
    if app.config.get("HARK_PROXIES"):
        n = app.config["HARK_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]  # Flask documents this wrapping


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    _limits(app)

    @app.errorhandler(CSRFError)
    def csrf_refused(exc):
        return errors.respond(400, "the form's security token is missing or stale: reload the page "
                                    f"and try again ({exc.description.rstrip('.')})")

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc):
        return errors.respond(429, f"too many requests (limit {exc.limit.limit}); try again in a moment")

    @app.after_request
    def drain(response):
        _drain_body()
        return response

    @app.after_request
    def headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def _drain_body() -> None:
    """Read and drop what is left of the request body, at most the route's body limit.

    An answer given before the body is read (a 429 of a rate limit or the audio budget, a
    401, a 503) made gunicorn close the socket with the body unread, and nginx, still
    sending it, answered 502 instead of the app's answer. Behind nginx the body is already
    buffered there, so this is a local copy; a body over the limit is left alone (413).
    """
    limit, length = request.max_content_length, request.content_length
    if length is not None and limit is not None and length > limit:
        return
    try:
        stream = request.stream
        if getattr(stream, "is_exhausted", False):
            return
        left = limit if limit is not None else length or 0
        while left > 0:
            chunk = stream.read(min(DRAIN_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
    except Exception:  # noqa: BLE001  a client gone or a cut body: nothing left to answer anyway
        pass


def _limits(app: Flask) -> None:
    storage = app.config.get("HARK_REDIS_URL") or "memory://"
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage, strategy="sliding-window-counter",
                      headers_enabled=True, swallow_errors=True, in_memory_fallback_enabled=True)
    app.extensions["hark.limiter"] = limiter
    marked = {endpoint: getattr(view, "_hark_rate_limit", None)
              for endpoint, view in app.view_functions.items()}
    for endpoint, spec in marked.items():
        if spec is None:
            continue
        key, methods = spec
        view: Callable = limiter.limit(_config_value(key), methods=methods)(app.view_functions[endpoint])
        app.view_functions[endpoint] = audio_budget.metered(app, view) if key in AUDIO_LIMITED else view


def _config_value(key: str) -> Callable[[], str]:
    return lambda: current_app.config[key]

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
  machine), in memory otherwise (each worker counts for itself).
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import errors
from webapp.instance import secret_key

csrf = CSRFProtect()

CSP = ("default-src 'self'; "
       "script-src 'self'; "                     # no inline scripts, no eval
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
    if app.config.get("HARK_PROXIES"):
        n = app.config["HARK_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)


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
    def headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


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
        app.view_functions[endpoint] = limiter.limit(_config_value(key), methods=methods)(
            app.view_functions[endpoint])


def _config_value(key: str) -> Callable[[], str]:
    return lambda: current_app.config[key]

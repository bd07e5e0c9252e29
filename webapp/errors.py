"""Errors as the API promises them: JSON `{"error": "..."}` with the right status.

Routes raise `ApiError`; HTTP errors under /api/ (404, 405, 413...) become
JSON too, while pages get a readable HTML error page.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

MESSAGES: dict[int | None, str] = {
    404: "no such endpoint",
    405: "method not allowed here",
    413: "the upload is too large",
    500: "internal server error",
}


class ApiError(Exception):
    """An error a client can act on; `message` is shown to people as is."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code   # code: for programs


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/admin/api/")) or request.path == "/api"


def respond(status: int, message: str, headers=None, code: str | None = None):
    response: Response | str
    if wants_json():
        response = jsonify(error=message, **({"code": code} if code else {}))
    else:
        response = render_template("error.html", status=status, message=message)
    return make_response(response, status, headers or [])


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return respond(exc.status, exc.message, code=exc.code)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = MESSAGES.get(exc.code, exc.description or exc.name)
        if exc.code == 413:
            limit = request.max_content_length or app.config.get("MAX_CONTENT_LENGTH") or 0
            message = f"the upload is too large (limit {limit // (1024 * 1024)} MB)"
        # Keep the Allow header of a 405 so clients know what would work.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
        return respond(exc.code or 500, message, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.error("unhandled error on %s", request.path, exc_info=exc)
        return respond(500, MESSAGES[500])

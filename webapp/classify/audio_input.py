"""Getting audio out of a request: multipart field `file` or a raw body, checked by content.

The format is recognised from the first bytes (magic numbers), never from a
file name or a Content-Type a client chose, so a mislabelled file still works
and a non-audio file (a ZIP or a web page named clip.wav) is refused with 415
before any decoder sees it. The client's file name is only ever shown in
messages, cleaned first; it is never used as a path (nothing is stored).
"""
from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from ml.audio import FORMATS as ACCEPTED
from ml.audio import AudioError, TooLong, UnsupportedFormat, decode, sniff
from webapp.classify.file_kind import describe
from webapp.errors import ApiError
from webapp.security.audio_budget import charge_audio

__all__ = ["ACCEPTED", "display_name", "read_upload", "sniff"]

NAME_CHARS = 80


def display_name(filename: str | None) -> str:
    """A client's file name made safe to show: last path part, printable, short."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if len(base) > NAME_CHARS:
        base = base[:NAME_CHARS - 1] + "…"
    return base or "upload"


def read_upload() -> tuple[bytes, str]:
    """(audio bytes, name to show) of the current request, or an ApiError (400/415).

    Werkzeug refuses a declared Content-Length over MAX_CONTENT_LENGTH (413)
    before reading; a body without one (chunked) it silently cuts at the limit,
    so `_refuse_cut_body` turns that into the same 413.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        _refuse_cut_body()
        if upload is None:
            raise ApiError(400, "no audio: send the file in the multipart field 'file'")
        data, name = upload.read(), display_name(upload.filename)
        if not data:
            raise ApiError(400, f"no audio: the file {name} is empty")
    else:
        data, name = request.get_data(cache=False), "upload"
        _refuse_cut_body()
        if not data:
            raise ApiError(400, "no audio: the request body is empty")
    if sniff(data) is None:
        what = describe(data[:4096])       # "text, not audio", "a PNG image"...
        looks = f": this file is {what}" if what else ""
        raise ApiError(415, f"{name}: unsupported file type{looks}; send {ACCEPTED} audio")
    return data, name


def _refuse_cut_body() -> None:
    """413 when a body without Content-Length went on past the limit.

    Werkzeug stops reading such a stream at MAX_CONTENT_LENGTH without an error;
    the server (gunicorn) terminates the input, so one more byte read from it
    tells whether the body was longer.
    """
    if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
        return
    if getattr(request.stream, "is_exhausted", False) and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def decode_upload(data: bytes, name: str, max_seconds: float):
    """(samples, rate) of an upload, or its refusal as an ApiError: 415 for no audio format we
    read, else 400 (already worded for a person); audio longer than `max_seconds` says so with
    code "too_long" (the Upload page then sends the recording to /api/detect, which takes longer).

    Every block decoded is charged to the client's audio budget as it is read, refused or not
    (a file cut short after 11 million samples cost as much as a whole one)."""
    try:
        return decode(data, max_seconds=max_seconds, name=name, on_samples=charge_audio)
    except AudioError as exc:
        raise ApiError(415 if isinstance(exc, UnsupportedFormat) else 400, str(exc),
                       "too_long" if isinstance(exc, TooLong) else None) from None

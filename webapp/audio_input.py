"""Getting audio out of a request: multipart field `file` or a raw body, checked by content.

The format is recognised from the first bytes (magic numbers), never from a
file name or a Content-Type a client chose, so a mislabelled file still works
and a non-audio file is refused with 415 before any decoder sees it.
"""
from __future__ import annotations

from flask import request

from webapp.errors import ApiError

ACCEPTED = "WAV, FLAC or OGG"


def sniff(data: bytes) -> str | None:
    """'wav', 'flac' or 'ogg' from the file's signature; None for anything else."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    return None


def read_upload() -> tuple[bytes, str]:
    """(audio bytes, filename) of the current request, or an ApiError (400/415)."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "no audio: send the file in the multipart field 'file'")
        data, name = upload.read(), upload.filename or "upload"
    else:
        data, name = request.get_data(cache=False), "upload"
    if not data:
        raise ApiError(400, "no audio: the request body is empty")
    if sniff(data) is None:
        raise ApiError(415, f"{name}: unsupported file type; send {ACCEPTED} audio")
    return data, name

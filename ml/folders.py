"""Folders an operator names by typing a path: checked before any job reads them.

The admin's training form and the folder evaluation both take a path typed into a
page; it must say what is wrong in words (DataError), never reach the operating
system with a NUL byte, and name a folder in the Speech Commands layout.
"""
from __future__ import annotations

import os
from pathlib import Path

from ml.dataset import DataError, list_clips

MAX_PATH_BYTES, MAX_NAME_BYTES = 4095, 255  # Linux's PATH_MAX (less the NUL) and NAME_MAX


def server_path(text, base: Path | None = None) -> Path:
    """A folder path an admin typed, as a Path (a relative one taken from `base` when given),
    or a DataError saying what is wrong: control characters (a NUL byte would reach the
    operating system), a name or path longer than the file system allows, "~user" for no user."""
    if not isinstance(text, str) or not text.strip():
        raise DataError("name a folder on the server")
    text = text.strip()
    if not text.isprintable():
        raise DataError("the folder path contains a control character (such as a NUL byte or a "
                        "line break)")
    raw = os.fsencode(text)
    if len(raw) > MAX_PATH_BYTES:
        raise DataError(f"the folder path is longer than {MAX_PATH_BYTES} bytes")
    if any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise DataError(f"a part of the folder path is longer than {MAX_NAME_BYTES} bytes")
    try:
        path = Path(text).expanduser()
    except RuntimeError:                 # "~name" for a user this server does not have
        raise DataError(f"{text}: no such user's home folder on the server") from None
    return Path(base) / path if base is not None and not path.is_absolute() else path


def check_folder(text, base: Path | None = None, min_labels: int = 1, every_label: bool = False) -> Path:
    """The folder `text` names, resolved, when it holds clips in <label>/ sub-folders (at least
    `min_labels` of them; with `every_label`, clips in each one: training learns every label it
    finds); DataError otherwise. Without `base` the path must be absolute; with it a relative
    path is taken from `base` (the checkout)."""
    path = server_path(str(text), base)
    if not path.is_absolute():
        raise DataError("give an absolute path (it is a folder on the server)")
    try:
        path = path.resolve()
        if not path.is_dir():
            raise DataError(f"{path}: no such folder on the server")
        labels, clips = list_clips(path)  # DataError when there is no clip in <label>/ folders
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(labels) < min_labels:
        raise DataError(f"{path} has {len(labels)} label folder(s); at least {min_labels} are needed")
    empty = sorted(set(labels) - {c.label for c in clips})
    if every_label and empty:
        raise DataError(f"label folders without audio: {', '.join(empty)}")
    return path

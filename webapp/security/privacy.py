"""Whose recordings anyone may hear, and server paths kept out of what is shown.

Public: Hark's own data sets (the folders in the data folder and in the checkout's
data/: the synthetic default set, mini Speech Commands, the real-speech halves) and
the folders of HARK_PUBLIC_DATA (the real-speech evaluation sets). A user data set
(`<data>/user/<name>`) is public only when the admin switched it on (its dataset.json,
webapp/datasets/store.py); any other folder of the server is private. Private clips
are served to a logged-in admin only: the gallery's lists, audio, thumbnails and
analyses and the bundle's quoted evaluations all ask here.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from flask import current_app, has_request_context
from flask_login import current_user

from ml.dataset import about
from webapp.settings import ROOT

USER_FOLDER = "user"      # webapp/datasets/store.py's USER_FOLDER
# A path in a message: absolute ("/srv/x"), home ("~/x") or relative with a slash ("runs/x");
# a fraction ("epoch 2/5") is not one.
PATH = re.compile(r"(?<![\w:/.~-])(?!\d+/\d+(?![\w./]))(?:~|\.{1,2})?/?(?:[\w.+-]+/)+[\w.+-]*")


def _roots() -> list[Path]:
    """Folders whose data sets are Hark's own (their user/ sub-folder aside)."""
    return [Path(current_app.config["HARK_DATA"]), ROOT / "data"]


def public_folders() -> list[Path]:
    """HARK_PUBLIC_DATA: more folders declared public (os.pathsep between them)."""
    text = current_app.config.get("HARK_PUBLIC_DATA") or ""
    return [Path(p).expanduser() for p in str(text).split(os.pathsep) if p.strip()]


def _resolved(folder) -> Path | None:
    try:
        path = Path(str(folder)).expanduser()
        return (path if path.is_absolute() else ROOT / path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def folder_public(folder) -> bool:
    """May anyone hear the clips of `folder` (a data folder as a run or evaluation records it)?"""
    path = _resolved(folder) if folder else None
    if path is None:
        return False
    for folder_root in _roots():
        root = _resolved(folder_root)
        if root is None or not path.is_relative_to(root):
            continue
        inside = path.relative_to(root).parts
        if not inside or inside[0] != USER_FOLDER:
            return True
        # a user data set: its own switch (a folder inside it is the set's; user/ itself is not a set)
        return len(inside) > 1 and about(root / USER_FOLDER / inside[1]).get("public") is True
    return any(path.is_relative_to(extra) for extra in map(_resolved, public_folders()) if extra)


def is_admin() -> bool:
    """A logged-in admin (every login is an admin's); code outside a request is the server's own."""
    return not has_request_context() or current_user.is_authenticated


def may_hear(folders) -> bool:
    """Are the clips of all these folders for this visitor's ears?"""
    return is_admin() or all(folder_public(f) for f in folders)


def shown_folder(folder) -> str:
    """A data folder as pages and exports name it: its last two parts ("user/my-voice",
    "speech/words"), never the server's path to it."""
    parts = [p for p in Path(str(folder or "")).parts if p not in ("/", "..", ".", "~")]
    return "/".join(parts[-2:]) or "?"


def scrub(text: str | None) -> str | None:
    """Every path in `text` cut to its last part: messages shown to anyone name files, not
    where the server keeps them."""
    if not text:
        return text
    return PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or m.group(0), text)

"""The instance folder: this installation's own state (database, queue, secret key, pointer).

Files here are written so that a crash at any moment leaves either the old or
the new content, never half of one, and so that several processes starting at
once (gunicorn workers, the queue consumer) agree on a single value.
"""
from __future__ import annotations

import fcntl
import os
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path

SECRET_FILE = "secret_key"
POINTER_FILE = "active-model"


@contextmanager
def _complete_temp_file(path: Path, text: str, mode: int):
    """A temp file beside `path` holding all of `text`, fsynced; removed on exit unless moved away."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` in one step (temp file, fsync, os.replace, fsync dir)."""
    path = Path(path)
    with _complete_temp_file(path, text, mode) as tmp:
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def create_once(path: Path, text: str, mode: int = 0o644) -> str:
    """Write `path` only if it does not exist yet; return its content either way.

    The complete file is linked into place (link fails when the name exists),
    so a concurrent reader never sees an empty or partial file and two
    processes racing here both end up with the winner's content.
    """
    path = Path(path)
    if not path.exists():
        with _complete_temp_file(path, text, mode) as tmp:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        _fsync_dir(path.parent)
    return path.read_text()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes of this machine (released on exit or crash)."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextmanager
def versions_lock(instance_path):
    """Held while the active model or the set of versions changes, or a job naming a version
    is stored (every process of this machine)."""
    with file_lock(Path(instance_path) / ".versions.lock"):
        yield


def secret_key(folder: str | Path) -> str:
    """The session key: generated on first start, owner-readable only, the same for every worker."""
    path = Path(folder) / SECRET_FILE
    key = create_once(path, secrets.token_hex(32), mode=0o600).strip()
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return key


def pointer_text(pointer: Path, run_dir: Path) -> str:
    """What a pointer file holds for `run_dir`: a path relative to the pointer's folder."""
    return os.path.relpath(Path(run_dir).resolve(), Path(pointer).parent.resolve()) + "\n"


def ensure_pointer(folder: Path, default_run: Path) -> Path:
    """The instance's active-model pointer file, created naming `default_run` if absent."""
    pointer = Path(folder) / POINTER_FILE
    create_once(pointer, pointer_text(pointer, default_run))
    return pointer

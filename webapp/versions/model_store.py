"""The active model: loaded lazily once per process, swapped when its source changes.

`HARK_MODEL` names either a run directory or a small pointer file whose text
is the path of one (relative paths are taken from the file's folder). Writing
a new pointer file with `os.replace` changes the model for every worker
within a second, with no restart. A request keeps the Classifier object it
started with, so a swap never disturbs one in flight. A worker never drops a
model it has for one it cannot have: a pointer naming a run that is gone, or a
run that does not load, leaves the last good model serving.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ml import runs

log = logging.getLogger(__name__)


class NoModel(RuntimeError):
    """No usable model is active yet; the message says why, for a person."""


def resolve(source: Path) -> Path:
    """The run directory `source` points at (itself when it is a directory)."""
    if source.is_file():
        target = Path(source.read_text().strip())
        return target if target.is_absolute() else (source.parent / target)
    return source


# Files whose change means a different model (the LiteRT export is what serves).
def _fingerprint(source: Path) -> tuple | None:
    """What changes when the active model changes: pointer target and its serving files' times
    (ml.runs.serving_files: the LiteRT export, an ensemble's members); None when there is none."""
    try:
        run_dir = resolve(source)
        try:
            files = runs.serving_files(run_dir)
        except (OSError, ValueError):     # no readable config.json: whatever model files are there
            files = [run_dir / runs.MODEL_FILE, run_dir / "config.json"]
        stats = [f.stat() for f in files if f.is_file()]
    except OSError:
        return None
    if not stats:
        return None
    return (str(run_dir.resolve()), *((s.st_mtime_ns, s.st_size) for s in stats))


def _load_classifier(run_dir: Path, threads: int):
    from ml.classifier import Classifier

    return Classifier(run_dir, threads=threads)


class ModelStore:
    """Hands out the current Classifier; checks its source at most every `check_s` seconds."""

    def __init__(self, source: str | Path, check_s: float = 1.0, threads: int = 1,
                 loader: Callable[[Path, int], object] = _load_classifier):
        self.source = Path(source)
        self.check_s, self.threads = check_s, threads
        self._loader = loader
        self._model: object | None = None
        self._loaded_key: tuple | None = None   # fingerprint of what _model (or the last failure) came from
        self._error: str | None = None
        self._target_missing = False    # the pointer names a run that is gone (warned once)
        self._next_check = 0.0
        self._lock = threading.Lock()

    def get(self):
        """The active Classifier; raises NoModel when there is none to serve."""
        if time.monotonic() >= self._next_check:
            self._refresh()
        if self._model is None:
            raise NoModel(self._error or "no model has been trained yet")
        return self._model

    def peek(self):
        """The active Classifier or None, never raising (for pages and health)."""
        try:
            return self.get()
        except NoModel:
            return None

    @property
    def error(self) -> str | None:
        return self._error

    def _refresh(self) -> None:
        # First load: everyone waits. Later swaps: whoever is not loading keeps serving.
        if not self._lock.acquire(blocking=self._model is None):
            return
        try:
            if time.monotonic() < self._next_check:
                return
            key = _fingerprint(self.source)
            if key is None and self._model is not None:
                # The pointer names a run that is gone (deleted, a torn copy): a worker that
                # has a good model keeps serving it; `flask check` repairs the pointer.
                if not self._target_missing:
                    log.warning("the model %s names is missing: still serving %s",
                                self.source, getattr(self._model, "version", "the last model"))
                self._target_missing = True
            elif key is None:
                if self._error is None:
                    log.warning("no model at %s (HARK_MODEL)", self.source)
                self._loaded_key, self._error = None, "no model has been trained yet"
            else:
                self._target_missing = False
                if key != self._loaded_key:
                    self._load(key)
            self._next_check = time.monotonic() + self.check_s
        finally:
            self._lock.release()

    def _load(self, key: tuple) -> None:
        run_dir = Path(key[0])
        started = time.perf_counter()
        try:
            model = self._loader(run_dir, self.threads)
        except Exception:  # a broken run must not take the site down
            log.exception("could not load model %s", run_dir)
            self._loaded_key = key
            if self._model is None:   # details stay in the server log, paths included
                self._error = "the active model could not be loaded (see the server log)"
            return
        self._model, self._loaded_key, self._error = model, key, None
        log.info("model %s loaded in %.2f s", run_dir.name, time.perf_counter() - started)

"""The JSON files of runs and stored evaluations, parsed once per change.

Pages read a version's config.json, metrics.json and evaluations again and again
(the gallery, the Training and admin pages, the Download menus): each is parsed
again only when its size or time changes.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

_cache: dict[str, tuple[tuple, object]] = {}
_cache_lock = threading.Lock()


def read_cached(path: Path):
    """A JSON file's content, parsed again only when its size or time changes."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(str(path))
    if hit and hit[0] == stamp:
        return hit[1]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[str(path)] = (stamp, data)
    return data



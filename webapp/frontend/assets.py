"""Static files with long cache lifetimes, and Plotly.js served from the installed package.

URLs carry a content version (`?v=` hash for our files, the Plotly version in
its path), so browsers may cache them for a year and still never run stale
code. Plotly comes from the `plotly` Python package, so the site works offline;
it is sent gzip-compressed (1.5 MB instead of 4.8 MB) to every browser that says
it accepts gzip.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, request, send_file, url_for

YEAR = 365 * 24 * 3600
bp = Blueprint("vendor", __name__, url_prefix="/vendor")


@lru_cache(maxsize=1)
def plotly_js() -> tuple[Path, str]:
    """(path of plotly.min.js in the plotly package, plotly.js version)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    version = "unknown"
    if path.is_file():
        with path.open() as f:
            head = f.read(200)
        if "plotly.js v" in head:
            version = head.split("plotly.js v", 1)[1].split()[0]
    return path, version


def _gzipped(path: Path, version: str) -> Path:
    """plotly.min.js compressed once (4.8 MB -> 1.5 MB) into the instance's cache folder."""
    folder = Path(current_app.instance_path) / "cache" / "vendor"
    target = folder / f"plotly-{version}.min.js.gz"
    if not target.is_file() or target.stat().st_mtime_ns < path.stat().st_mtime_ns:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        tmp.write_bytes(gzip.compress(path.read_bytes(), 6, mtime=0))
        os.replace(tmp, target)
    return target


@bp.get("/plotly-<version>.min.js")
def plotly(version: str):
    """Plotly, gzip-compressed for every browser that accepts it (all do)."""
    path, current = plotly_js()
    if version != current or not path.is_file():
        abort(404)
    compressed = "gzip" in request.accept_encodings
    response = send_file(_gzipped(path, current) if compressed else path, mimetype="text/javascript",
                         max_age=YEAR, conditional=True)
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


@lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    assert app.static_folder is not None      # create_app names it
    static = Path(app.static_folder)

    @app.after_request
    def cache_versioned(response):
        """A year for URLs that carry their content hash; revalidate anything else."""
        if request.endpoint == "static" and request.args.get("v") and response.status_code == 200:
            response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        return response

    def asset(filename: str) -> str:
        """url_for('static') plus a content hash, so a year's caching is safe."""
        path = static / filename
        version = _digest(str(path), path.stat().st_mtime_ns) if path.is_file() else "0"
        return url_for("static", filename=filename, v=version)

    @app.context_processor
    def inject_assets():
        return {"asset": asset,
                "plotly_url": url_for("vendor.plotly", version=plotly_js()[1])}

"""Static files with long cache lifetimes, and Plotly.js served from the installed package.

URLs carry a content version (`?v=` hash for our files, the Plotly version in
its path), so browsers may cache them for a year and still never run stale
code. Plotly comes from the `plotly` Python package, so the site works offline.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Flask, abort, request, send_file, url_for

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


@bp.get("/plotly-<version>.min.js")
def plotly(version: str):
    path, current = plotly_js()
    if version != current or not path.is_file():
        abort(404)
    response = send_file(path, mimetype="text/javascript", max_age=YEAR, conditional=True)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


@lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
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

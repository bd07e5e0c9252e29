"""Model versions, the part training, the gallery and the admin share.

The versions table and the active pointer (registry), the model each worker
serves (model_store), what a version's accuracy was measured on (accuracy), the
evaluations stored of it (evaluations), its JSON files read once per change
(run_files) and its downloads (downloads). This package imports no other
feature package, so every one of them may import it.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The Download menus: exports of model versions."""
    from webapp.versions import downloads

    app.register_blueprint(downloads.bp)

"""Admin login: accounts and sessions (accounts.py), failed logins counted in the database
(limits.py), the login and logout pages (views.py).

Other packages guard their routes with what this module names: `admin_required` (a view),
`admin_only_blueprint` (every view of a blueprint), `current_username` (who asked).
"""
from __future__ import annotations

from flask import Flask

from webapp.auth.accounts import admin_only_blueprint, admin_required, current_username

__all__ = ["admin_only_blueprint", "admin_required", "current_username", "init_app"]


def init_app(app: Flask) -> None:
    from webapp.auth import accounts, views

    app.register_blueprint(views.bp)       # /login, /logout
    accounts.init_app(app)

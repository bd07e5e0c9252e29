"""Admin accounts and sessions (Flask-Login): who may start jobs and change the active model.

There is no default password: the first admin comes from `flask --app wsgi
create-admin` or from HARK_ADMIN_PASSWORD (+ HARK_ADMIN_USER) on a start where
no admin exists yet. Passwords are stored as werkzeug scrypt hashes. A session
names its admin and the admin's session generation: logout and a password
reset raise the generation, so every copy of an older cookie stops working.
Failed logins are limited per user name and per address (webapp/auth/limits.py); the
login and logout pages are webapp/auth/views.py.

`admin_required` guards a page or an API call: anonymous visitors of a page are
sent to the login page; API calls (/api/..., /admin/api/...) get 401 JSON.
"""
from __future__ import annotations

import logging
from functools import wraps

import click
from flask import Blueprint, Flask, redirect, request, url_for
from flask_login import LoginManager, current_user
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp import errors
from webapp.database import db
from webapp.tables import User

log = logging.getLogger(__name__)
login_manager = LoginManager()
MIN_PASSWORD = 10
# Compared against when the user name is unknown, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


class AuthError(ValueError):
    """A user name or password that cannot be used; the message says why."""


def _api_path(path: str) -> bool:
    return path.startswith(("/api/", "/admin/api/"))


def _refuse():
    if _api_path(request.path):
        return errors.respond(401, "log in as an admin first")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def admin_required(view):
    """Only a logged-in admin gets through; pages redirect to login, APIs answer 401 JSON."""
    @wraps(view)
    def guarded(*args, **kwargs):
        if not current_user.is_authenticated:
            return _refuse()
        return view(*args, **kwargs)

    guarded.admin_required = True
    return guarded


def admin_only_blueprint(blueprint: Blueprint) -> None:
    """Guard every route of `blueprint` (its views still need no decorator of their own)."""
    @blueprint.before_request
    def guard():
        if not current_user.is_authenticated:
            return _refuse()


@login_manager.user_loader
def load_user(user_id: str):
    """The session's "<id>:<generation>": a cookie from before a logout or password reset is refused."""
    number, _, generation = user_id.partition(":")
    if not (number.isdigit() and generation.isdigit()):
        return None
    user = db.session.get(User, int(number))
    return user if user is not None and user.session_generation == int(generation) else None


def end_sessions(user: User) -> None:
    """Every session cookie issued to `user` so far stops working (logout, password reset)."""
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_generation=User.session_generation + 1))


@login_manager.unauthorized_handler
def unauthorized():
    return _refuse()


# ---- accounts --------------------------------------------------------------------

def set_password(username: str, password: str) -> tuple[User, bool]:
    """Create the admin `username`, or give it a new password; returns (user, created)."""
    username = (username or "").strip()
    if not username or len(username) > 64:
        raise AuthError("the user name must be 1 to 64 characters")
    if len(password or "") < MIN_PASSWORD:
        raise AuthError(f"the password must be at least {MIN_PASSWORD} characters")
    user = db.session.scalar(select(User).where(User.username == username))
    created = user is None
    if user is None:
        user = User(username=username, password_hash="")
        db.session.add(user)
    else:
        end_sessions(user)       # whoever had the old password is logged out everywhere
    user.password_hash = generate_password_hash(password)
    db.session.commit()
    return user, created


def admin_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)) or 0


def authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None


def admin_from_environment(app: Flask) -> None:
    """HARK_ADMIN_PASSWORD creates the first admin; it never overwrites an existing account.

    Only what serves applies it (gunicorn's workers, the queue consumer, `flask check`, the
    first request of `flask run`): `flask create-admin NAME` must make NAME and nobody else.
    """
    password = app.config.get("HARK_ADMIN_PASSWORD")
    if not password:
        return
    with app.app_context():
        if admin_count():
            return
        try:
            set_password(app.config.get("HARK_ADMIN_USER") or "admin", password)
            log.info("created the admin %r from HARK_ADMIN_PASSWORD", app.config.get("HARK_ADMIN_USER"))
        except IntegrityError:       # another worker created it at the same moment
            db.session.rollback()
        except AuthError as exc:
            log.error("HARK_ADMIN_PASSWORD not used: %s", exc)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"   # "strong" would wipe every anonymous session holding a CSRF token
    if click.get_current_context(silent=True) is None:
        admin_from_environment(app)       # a server or consumer process (or a test) is starting
    else:                                 # loaded by the `flask` command: wait until it serves
        @app.before_request
        def admin_on_first_request():
            if not app.extensions.get("hark.admin_from_environment"):
                app.extensions["hark.admin_from_environment"] = True
                admin_from_environment(app)

    @app.context_processor
    def admin_context():
        return {"admin_user": current_user if current_user.is_authenticated else None}


def current_username() -> str | None:
    return current_user.username if current_user.is_authenticated else None

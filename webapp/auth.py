"""Admin login (Flask-Login): who may start jobs and change the active model.

There is no default password: the first admin comes from `flask --app wsgi
create-admin` or from HARK_ADMIN_PASSWORD (+ HARK_ADMIN_USER) on a start where
no admin exists yet. Passwords are stored as werkzeug scrypt hashes. A session
names its admin and the admin's session generation: logout and a password
reset raise the generation, so every copy of an older cookie stops working.
Failed logins are limited per user name and per address (webapp/login_limits.py).

`admin_required` guards a page or an API call: anonymous visitors of a page are
sent to the login page; API calls (/api/..., /admin/api/...) get 401 JSON.
"""
from __future__ import annotations

import logging
from functools import wraps
from urllib.parse import urlsplit

import click
from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from webapp import errors, login_limits
from webapp.database import db, utcnow
from webapp.security import json_form_data, rate_limited
from webapp.tables import User

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
MIN_PASSWORD = 10
# Compared against when the user name is unknown, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


class AuthError(ValueError):
    """A user name or password that cannot be used; the message says why."""


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


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


# ---- pages -------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no "//"): never an open redirect.
    Control characters (CR, LF...) are refused too: they cannot go into a Location header."""
    if not target or not target.isprintable():
        return url_for("admin.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("admin.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@rate_limited("HARK_RATE_LOGIN", methods=["POST"])
def login():
    form = LoginForm(formdata=json_form_data()) if request.is_json and request.method == "POST" \
        else LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:     # counted before the password is checked, in the database every worker shares
            attempt = login_limits.begin(form.username.data, request.remote_addr)
        except login_limits.TooManyAttempts as exc:
            return _too_many(str(exc))
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            login_limits.forget(attempt)      # only failures count against the limits
            login_user(user)
            user.last_login_at = utcnow()
            db.session.commit()
            log.info("admin %s logged in from %s", user.username, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")))
        log.warning("failed admin login for %r from %s", form.username.data, request.remote_addr)
        error, status = "wrong user name or password", 401
    elif request.method == "POST":
        error, status = "enter a user name and a password", 400
    if not admin_count() and not error:
        error = ("no admin account exists yet: create one on the server with "
                 "`.venv/bin/flask --app wsgi create-admin`")
    return render_login(form, error), status


def render_login(form, error: str | None) -> str:
    return render_template("login.html", form=form, error=error)


@bp.errorhandler(RateLimitExceeded)
def too_many_logins(exc):
    return _too_many(f"too many requests (limit {exc.limit.limit}); try again in a moment")


def _too_many(message: str):
    if errors.wants_json():
        return errors.respond(429, message)
    return render_login(LoginForm(), message), 429


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        end_sessions(current_user)       # copies of this cookie die with it
        db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


def current_username() -> str | None:
    return current_user.username if current_user.is_authenticated else None

"""The login and logout pages (a JSON body logs a program in too); who may log in and how
often: webapp/auth/accounts.py and webapp/auth/limits.py."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from webapp import errors
from webapp.auth import limits
from webapp.auth.accounts import admin_count, authenticate, end_sessions
from webapp.database import db, utcnow
from webapp.security import json_form_data, rate_limited

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


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
            attempt = limits.begin(form.username.data, request.remote_addr)
        except limits.TooManyAttempts as exc:
            return _too_many(str(exc))
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            limits.forget(attempt)      # only failures count against the limits
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

"""Sessions, login limits and the admin command.

- A session cookie copied before logout, or before a password reset, must not
  work after it (the session carries the admin's session generation).
- Login limits hold per user name and per address across several app
  instances sharing one database, as gunicorn's workers do (no Redis).
- `flask create-admin NAME` with HARK_ADMIN_PASSWORD set makes NAME only, and
  the variable still makes the first admin when the service starts.
"""
from __future__ import annotations

import os
import subprocess
import sys

import click
from click.testing import CliRunner
from flask.cli import FlaskGroup
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from tests.helpers import PASSWORD, ROOT, csrf_token, login, make_app
from webapp.database import MIGRATIONS, db
from webapp.tables import LoginAttempt, User

NEW_PASSWORD = "a brand new passphrase"


def copy_of_session(source, app):
    """Another client holding a copy of `source`'s session cookie (a stolen or kept cookie)."""
    thief = app.test_client()
    thief.set_cookie("session", source.get_cookie("session").value)
    return thief


def admins(app) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(User.username)))


# ---- sessions end everywhere --------------------------------------------------------------

def test_logout_ends_every_copy_of_the_session_cookie(app):
    browser = app.test_client()
    token = login(browser)
    thief = copy_of_session(browser, app)
    assert thief.get("/admin/api/jobs").status_code == 200           # the copy works until then
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/admin/api/jobs").status_code == 401
    assert thief.get("/admin").status_code == 302                    # the page sends it to /login
    login(browser)                                                   # a new login works, alone
    assert browser.get("/admin/api/jobs").status_code == 200
    assert thief.get("/admin/api/jobs").status_code == 401


def test_a_password_reset_ends_every_session(app):
    browser, other_browser = app.test_client(), app.test_client()
    login(browser)
    login(other_browser)
    thief = copy_of_session(browser, app)
    assert thief.get("/admin/api/jobs").status_code == 200
    result = app.test_cli_runner().invoke(args=["create-admin", "admin", "--password-stdin"],
                                          input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0 and "updated the admin 'admin'" in result.output, result.output
    for client in (browser, other_browser, thief):
        assert client.get("/admin/api/jobs").status_code == 401
    fresh = app.test_client()
    token = csrf_token(fresh, "/login")
    old = fresh.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert old.status_code == 401
    login(fresh, password=NEW_PASSWORD)
    assert fresh.get("/admin/api/jobs").status_code == 200


# ---- login limits shared by workers ----------------------------------------------------------

def two_workers(tmp_path, tiny_run, **limits):
    """Two app instances on one database and instance folder: two gunicorn workers' worth."""
    config = {"HARK_DEFAULT_MODEL": str(tiny_run), "HARK_RATE_LOGIN": "1000/minute",
              "HARK_RATE_LOGIN_USER": "1000/minute", **limits}
    return make_app(tmp_path, **config), make_app(tmp_path, **config)


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def try_login(client, username: str, password: str) -> int:
    token = csrf_token(client, "/login")
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    if r.status_code == 429:
        assert "too many failed logins" in r.get_data(as_text=True).lower()
    return r.status_code


def test_the_per_user_limit_holds_across_workers_and_addresses(tmp_path, tiny_run):
    first, second = two_workers(tmp_path, tiny_run, HARK_RATE_LOGIN_USER="3/minute")
    guesses = [try_login(client_from(first, "10.0.0.1"), "admin", "guess one"),
               try_login(client_from(second, "10.0.0.2"), "admin", "guess two"),
               try_login(client_from(first, "10.0.0.3"), "admin", "guess three")]
    assert guesses == [401, 401, 401]
    # Three failures for "admin", each from another address and worker: even the right password waits.
    assert try_login(client_from(second, "10.0.0.4"), "admin", PASSWORD) == 429
    assert try_login(client_from(first, "10.0.0.5"), "admin", PASSWORD) == 429
    assert try_login(client_from(second, "10.0.0.6"), "someone else", "guess") == 401   # per name
    with first.app_context():        # refused attempts are not stored (they would extend the wait)
        assert db.session.scalar(select(db.func.count()).select_from(LoginAttempt)) == 4


def test_the_per_address_limit_is_shared_by_workers(tmp_path, tiny_run):
    first, second = two_workers(tmp_path, tiny_run, HARK_RATE_LOGIN="3/minute")
    # Each worker's own Flask-Limiter counter sees 2 of these; the shared count sees all of them.
    assert [try_login(client_from(app, "10.0.0.9"), name, "guess")
            for app, name in ((first, "a"), (second, "b"), (first, "c"))] == [401, 401, 401]
    assert try_login(client_from(second, "10.0.0.9"), "admin", PASSWORD) == 429
    assert try_login(client_from(first, "10.0.0.10"), "admin", PASSWORD) == 302      # per address


def test_a_successful_login_does_not_count_against_the_limit(tmp_path, tiny_run):
    first, second = two_workers(tmp_path, tiny_run, HARK_RATE_LOGIN_USER="2/minute")
    for app in (first, second, first, second):
        assert try_login(client_from(app, "10.0.0.1"), "admin", PASSWORD) == 302


# ---- create-admin and HARK_ADMIN_PASSWORD -----------------------------------------------------

def flask_command(tmp_path, tiny_run, args: list[str], input: str | None = None, **config):
    """`flask --app wsgi ARGS`: Flask's own command group makes the app, as the real command does."""
    def factory():
        return make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), **config)
    return CliRunner().invoke(FlaskGroup(create_app=factory), args, input=input)


def test_create_admin_with_the_variable_set_makes_only_the_named_admin(tmp_path, tiny_run):
    result = flask_command(tmp_path, tiny_run, ["create-admin", "alice", "--password-stdin"],
                           input="alice's own password\n", HARK_ADMIN_PASSWORD="from the environment")
    assert result.exit_code == 0, result.output
    assert "created the admin 'alice'" in result.output
    assert "HARK_ADMIN_PASSWORD is not used by create-admin" in result.output
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_ADMIN_PASSWORD=None)
    assert admins(app) == ["alice"]
    # The prompt, typed twice, works the same way and never aborts.
    result = flask_command(tmp_path, tiny_run, ["create-admin", "bob"],
                           input="bob's own password\nbob's own password\n",
                           HARK_ADMIN_PASSWORD="from the environment")
    assert result.exit_code == 0 and "created the admin 'bob'" in result.output, result.output
    assert admins(app) == ["alice", "bob"]
    login(app.test_client(), "bob", "bob's own password")


def test_create_admin_without_a_password_says_how_to_give_one(tmp_path, tiny_run):
    result = flask_command(tmp_path, tiny_run, ["create-admin", "carol"], input="",
                           HARK_ADMIN_PASSWORD="from the environment")
    assert result.exit_code == 1
    assert "no password given" in result.output and "--password-stdin" in result.output
    assert "Aborted" not in result.output
    assert admins(make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_ADMIN_PASSWORD=None)) == []


def test_the_variable_makes_the_first_admin_when_the_service_starts(tmp_path, tiny_run):
    env_password = {"HARK_ADMIN_USER": "ops", "HARK_ADMIN_PASSWORD": "from the environment"}
    result = flask_command(tmp_path / "a", tiny_run, ["check", "--no-auto-train"], **env_password)
    assert result.exit_code == 0 and "no admin account yet" not in result.output, result.output
    assert admins(make_app(tmp_path / "a", HARK_ADMIN_PASSWORD=None)) == ["ops"]
    server = make_app(tmp_path / "b", **env_password)        # what a gunicorn worker does
    assert admins(server) == ["ops"]
    login(server.test_client(), "ops", "from the environment")
    with click.Context(click.Command("run")):                # `flask run`: made by the command line,
        dev_server = make_app(tmp_path / "c", **env_password)   # so it waits for its first request
    assert admins(dev_server) == []
    login(dev_server.test_client(), "ops", "from the environment")


def test_the_real_command_line_with_the_variable_set(tmp_path, tiny_run):
    """The reviewer's exact steps: `flask --app wsgi create-admin NAME` in a shell with the variable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARK_INSTANCE": str(tmp_path / "instance"),
           "HARK_RUNS": str(tmp_path / "runs"), "HARK_DATA": str(tmp_path / "data"),
           "HARK_DEFAULT_MODEL": str(tiny_run), "HARK_AUTO_TRAIN": "0",
           "HARK_ADMIN_PASSWORD": "from the environment"}
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "create-admin", "dave"]
    done = subprocess.run(command + ["--password-stdin"], cwd=ROOT, env=env, input="dave's password 1\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "created the admin 'dave'" in done.stdout, done.stderr[-2000:]
    no_input = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    assert no_input.returncode == 1 and "no password given" in no_input.stderr
    assert admins(make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_ADMIN_PASSWORD=None)) == ["dave"]


# ---- the migration ----------------------------------------------------------------------------

def test_the_migration_keeps_existing_admins_and_goes_back(tmp_path, tiny_run):
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_AUTO_MIGRATE=False,
                   HARK_ADMIN_PASSWORD=None)
    with app.app_context():
        upgrade(directory=str(MIGRATIONS), revision="875a982d9719")       # before this change
        db.session.execute(text("INSERT INTO users (username, password_hash, created_at) "
                                "VALUES ('old', 'x', '2026-01-01 00:00:00')"))
        db.session.commit()
        upgrade(directory=str(MIGRATIONS))
        assert db.session.execute(text("SELECT session_generation FROM users")).scalar() == 0
        assert db.session.execute(text("SELECT count(*) FROM login_attempts")).scalar() == 0
        downgrade(directory=str(MIGRATIONS), revision="875a982d9719")
        columns = [row[1] for row in db.session.execute(text("PRAGMA table_info(users)"))]
        assert "session_generation" not in columns and "username" in columns

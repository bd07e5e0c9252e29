"""`flask --app wsgi ...` commands: create-admin, check (plus Flask-Migrate's `db`)."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.argument("username", default="admin")
    @click.option("--password-stdin", is_flag=True,
                  help="read the password from standard input instead of prompting")
    def create_admin(username: str, password_stdin: bool):
        """Create the admin USERNAME (default: admin), or set a new password for it."""
        from webapp.auth import AuthError, set_password

        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            _, created = set_password(username, password)
        except AuthError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{'created' if created else 'updated'} the admin {username!r}; log in at /login")

    @app.cli.command("check")
    @click.option("--no-auto-train", is_flag=True, help="do not enqueue the first training job")
    def check(no_auto_train: bool):
        """Repair what a crash left half-done and report the state (scripts/run.sh runs it)."""
        from webapp.training import startup, versions
        from webapp.auth import admin_count

        app = current_app._get_current_object()
        for line in startup.check(app, auto_train=not no_auto_train, log_report=False):
            click.echo(f"startup check: {line}")
        run_dir = versions.active_run_dir(app)
        version = versions.find(run_dir) if versions.usable(run_dir) else None
        click.echo(f"active model: {version.name if version else 'none yet (the first training job makes one)'}")
        if not admin_count():
            click.echo("no admin account yet: create one with\n"
                       "    .venv/bin/flask --app wsgi create-admin\n"
                       "(or start with HARK_ADMIN_PASSWORD set), then log in at /login")

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
        """Create the admin USERNAME (default: admin), or set a new password for it.

        The password is typed (or piped with --password-stdin), never taken from
        HARK_ADMIN_PASSWORD: that variable only makes the first admin when the service
        starts. A new password logs USERNAME out of every session.
        """
        from webapp.auth.accounts import AuthError, set_password

        if current_app.config.get("HARK_ADMIN_PASSWORD"):
            click.echo("note: HARK_ADMIN_PASSWORD is not used by create-admin (it only creates "
                       "HARK_ADMIN_USER when the service starts with no admin)", err=True)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            try:
                password = click.prompt(f"Password for {username}", hide_input=True,
                                        confirmation_prompt=True)
            except click.Abort:
                raise click.ClickException("no password given: type it at the prompt, or pipe it "
                                           "in with --password-stdin") from None
        try:
            _, created = set_password(username, password)
        except AuthError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{'created' if created else 'updated'} the admin {username!r}; log in at /login"
                   + ("" if created else " (its old sessions are logged out)"))

    @app.cli.command("check")
    @click.option("--no-auto-train", is_flag=True, help="do not enqueue the first training job")
    def check(no_auto_train: bool):
        """Repair what a crash left half-done and report the state (scripts/run.sh runs it)."""
        from webapp.auth.accounts import admin_count, admin_from_environment
        from webapp.training import startup
        from webapp.versions import registry

        app = current_app._get_current_object()  # type: ignore[attr-defined]  # the app behind the proxy
        admin_from_environment(app)
        for line in startup.check(app, auto_train=not no_auto_train, log_report=False):
            click.echo(f"startup check: {line}")
        run_dir = registry.active_run_dir(app)
        version = registry.find(run_dir) if run_dir is not None and registry.usable(run_dir) else None
        click.echo(f"active model: {version.name if version else 'none yet (the first training job makes one)'}")
        if not admin_count():
            click.echo("no admin account yet: create one with\n"
                       "    .venv/bin/flask --app wsgi create-admin\n"
                       "(or start with HARK_ADMIN_PASSWORD set), then log in at /login")

"""The database: SQLAlchemy through Flask-SQLAlchemy, schema by Alembic (Flask-Migrate).

SQLite in the instance folder by default (nothing to install), any SQLAlchemy
URL through HARK_DATABASE_URL (PostgreSQL for several machines). SQLite runs in
WAL mode, so readers (the web workers) never block the writer (the queue
consumer) and a crash at any moment leaves the last committed state.
"""
from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask

logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)   # one line per plugin at import

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase

from webapp.instance import file_lock
from webapp.settings import ROOT

MIGRATIONS = ROOT / "migrations"
# On PostgreSQL, migrations/env.py holds this advisory lock while it migrates: machines that
# start at once on one database take turns (the instance folder's file lock is per machine).
MIGRATION_LOCK = 0x4841524B   # "HARK"
log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def utcnow() -> datetime:
    """Naive UTC (what every column holds); `iso()` adds the zone when it leaves the app."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")      # persistent; readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")    # safe with WAL: a crash loses no commit but the last
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")    # wait for the other writer, do not fail
        cursor.close()


def init_app(app: Flask) -> None:
    url = app.config.get("HARK_DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'hark.db'}"
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", url)
    if url.startswith("sqlite"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 15}})
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True, compare_type=True)
    with app.app_context():
        event.listen(db.engine, "connect", _sqlite_pragmas)
        if app.config.get("HARK_AUTO_MIGRATE", True):
            upgrade(app)


def at_head(app: Flask) -> bool:
    """Is the schema at the newest migration? (a cheap look, without running Alembic's env.py)"""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.get_config(directory=str(MIGRATIONS)))
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(logging.WARNING)     # its "Context impl" lines would repeat in every worker
    try:
        with db.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        quiet.setLevel(level)
    return current == set(script.get_heads())


def upgrade(app: Flask) -> None:
    """Bring the schema to the newest migration; one process at a time on this machine."""
    from flask_migrate import upgrade as alembic_upgrade

    if at_head(app):
        return
    with file_lock(Path(app.instance_path) / ".migrate.lock"):
        alembic_upgrade(directory=str(MIGRATIONS))

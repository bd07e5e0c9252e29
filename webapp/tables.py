"""The database tables: admins and their login attempts, training jobs with their epochs, model versions.

Change a table here, then `flask --app wsgi db migrate -m "what"` writes the
Alembic migration in migrations/versions/ (review it, commit it).
"""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.database import db, utcnow

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


class User(UserMixin, db.Model):
    """An administrator: may start jobs and change the active model."""
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Part of every session's user id: logout and a password reset raise it, which ends
    # every copy of every cookie issued before (webapp.auth.accounts.load_user compares it).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def get_id(self) -> str:
        return f"{self.id}:{self.session_generation}"


class LoginAttempt(db.Model):
    """A login attempt not known to have succeeded: the shared count behind the login limits."""
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class TrainingJob(db.Model):
    """One training request, from the queue to a model version (or an error)."""
    __tablename__ = "training_jobs"
    __table_args__ = (CheckConstraint(f"state IN {JOB_STATES}", name="job_state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    params: Mapped[dict] = mapped_column(JSON)           # webapp.jobs.normalize() output
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage: Mapped[str | None] = mapped_column(String(64))  # what a running job does now
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(128))   # "host:pid" of the consumer
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    epoch: Mapped[int | None] = mapped_column(Integer)
    epochs: Mapped[int | None] = mapped_column(Integer)
    eta_s: Mapped[float | None] = mapped_column(Float)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    run_dir: Mapped[str | None] = mapped_column(String(1024))
    metrics: Mapped[dict | None] = mapped_column(JSON)   # test accuracy etc. once succeeded

    progress: Mapped[list[JobEpoch]] = relationship(
        back_populates="job", order_by="JobEpoch.epoch", cascade="all, delete-orphan",
        passive_deletes=True)


class JobEpoch(db.Model):
    """One row per finished epoch: the live curves on the training page."""
    __tablename__ = "training_job_epochs"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    elapsed_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    job: Mapped[TrainingJob] = relationship(back_populates="progress")


class ModelVersion(db.Model):
    """A run directory that can serve: its figures, and whether (and by whom) it was activated."""
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))            # the run id, what /api/predict names
    run_dir: Mapped[str] = mapped_column(String(1024), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="job")   # job | default | imported
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", ondelete="SET NULL"))
    arch: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[list | None] = mapped_column(JSON)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict | None] = mapped_column(JSON)         # summary of metrics.json
    size_bytes: Mapped[int | None] = mapped_column(Integer)     # the served LiteRT files
    latency_ms: Mapped[float | None] = mapped_column(Float)     # median Classifier.classify, 1 s clip
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    activated_by: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)

"""The system-of-record schema: SQLAlchemy 2 typed models.

Every tenant-owned table carries ``workspace_id NOT NULL`` and children point at parents by
``(workspace_id, id)`` composite foreign keys, so no row can ever reference another tenant's.
Migrations under ``warehouse/migrations`` create exactly this schema (a test compares them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from warehouse.db import utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("queued", "running", "succeeded", "retrying", "failed", "canceled")
ROLES = ("owner", "admin", "editor", "viewer")
ARTIFACT_STATUSES = ("available", "deleted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        uuid.UUID: Uuid(as_uuid=True),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, nullable=False)


# Tables that row-level security scopes by workspace (the migration enables and forces RLS on each).
TENANT_TABLES = (
    "membership",
    "api_token",
    "job",
    "job_event",
    "artifact",
    "lineage_edge",
    "audit_log",
    "usage_counter",
    "invitation",
)


class Workspace(TimestampMixin, Base):
    """The tenant: every tenant-owned row points here, and row-level security scopes by its id."""

    __tablename__ = "workspace"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)


class AppUser(TimestampMixin, Base):
    """A person or a service account; belongs to workspaces through memberships."""

    __tablename__ = "app_user"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    is_service: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Membership(TimestampMixin, Base):
    """A user's role in a workspace: owner > admin > editor > viewer."""

    __tablename__ = "membership"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role_valid"),
        UniqueConstraint("workspace_id", "user_id"),
        Index("ix_membership_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)


class ApiToken(TimestampMixin, Base):
    """``kiln_<prefix>_<secret>``: the prefix finds the row, the secret is kept only as a hash."""

    __tablename__ = "api_token"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "user_id"],
            ["membership.workspace_id", "membership.user_id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("workspace_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class Invitation(TimestampMixin, Base):
    """A pending offer of membership to an email address, accepted once with a secret token.

    Only the HMAC of the acceptance token is kept (``token_hash``, unique: acceptance finds the row by
    it). ``email`` is exactly what the inviter typed (normalized); nothing about an account with that
    address is stored or shown until the invitation is accepted. At most one pending invitation per
    email and workspace (a partial unique index).
    """

    __tablename__ = "invitation"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role_valid"),
        UniqueConstraint("workspace_id", "id"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        Index("ix_invitation_workspace_created", "workspace_id", "created_at", "id"),
        Index(
            "uq_invitation_pending_email",
            "workspace_id",
            "email",
            unique=True,
            postgresql_where=text("accepted_at IS NULL AND revoked_at IS NULL"),
            sqlite_where=text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))  # for a user the acceptance creates, if any
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    invited_by: Mapped[uuid.UUID | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    accepted_by: Mapped[uuid.UUID | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Job(TimestampMixin, Base):
    """One unit of work of any product, driven through the state machine in ``warehouse/jobs.py``.

    The partial index ``ix_job_due`` serves the dispatch sensors' "due queued jobs of a kind";
    ``ix_job_workspace_created`` serves keyset-paginated listings; the unique idempotency key makes
    concurrent submits with one Idempotency-Key create exactly one job.
    """

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status_valid"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
        CheckConstraint("attempt >= 0 AND attempt <= max_attempts", name="attempt_range"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("workspace_id", "kind", "idempotency_key"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        # Listings: newest first within a workspace, keyset-paginated on (created_at, id).
        Index("ix_job_workspace_created", "workspace_id", "created_at", "id"),
        # Dispatch: due queued jobs of a kind. Partial on PostgreSQL (and SQLite) so it stays tiny.
        Index(
            "ix_job_due",
            "kind",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'retrying')"),
            sqlite_where=text("status IN ('queued', 'retrying')"),
        ),
        Index("ix_job_dagster_run_id", "dagster_run_id"),
        # A subject's jobs (the video or bulk run they work on): retention's "still needed" check, product routes.
        Index("ix_job_subject", "workspace_id", "subject_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    subject_id: Mapped[uuid.UUID | None] = mapped_column()  # the product row the job works on
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=3)
    next_attempt_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column()
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    partition_key: Mapped[str | None] = mapped_column(String(128))
    event_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class JobEvent(Base):
    """Append-only history of a job: one row per transition or progress milestone."""

    __tablename__ = "job_event"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        ForeignKeyConstraint(["workspace_id", "job_id"], ["job.workspace_id", "job.id"], ondelete="CASCADE"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index("ix_job_event_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    job_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class Artifact(TimestampMixin, Base):
    """One stored object: an upload, an intermediate or a finished output."""

    __tablename__ = "artifact"
    __table_args__ = (
        CheckConstraint("size_bytes >= 0", name="size_non_negative"),
        CheckConstraint(_in("status", ARTIFACT_STATUSES), name="status_valid"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
        UniqueConstraint("workspace_id", "id"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["workspace_id", "job_id"], ["job.workspace_id", "job.id"]),
        Index("ix_artifact_expires_at", "expires_at"),
        Index("ix_artifact_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_artifact_job", "workspace_id", "job_id"),
        Index("ix_artifact_workspace_sha256", "workspace_id", "sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # input | intermediate | output | archive | log
    storage_key: Mapped[str] = mapped_column(String(512), nullable=False, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_type: Mapped[str] = mapped_column(String(128), nullable=False, default="application/octet-stream")
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    asset_key: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="available")
    expires_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class LineageEdge(Base):
    """``child`` was derived from ``parent`` by ``asset_key`` in Dagster run ``run_id``."""

    __tablename__ = "lineage_edge"
    __table_args__ = (
        UniqueConstraint("parent_artifact_id", "child_artifact_id"),
        CheckConstraint("parent_artifact_id <> child_artifact_id", name="no_self_edge"),
        ForeignKeyConstraint(
            ["workspace_id", "parent_artifact_id"], ["artifact.workspace_id", "artifact.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["workspace_id", "child_artifact_id"], ["artifact.workspace_id", "artifact.id"], ondelete="CASCADE"
        ),
        Index("ix_lineage_edge_child", "child_artifact_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    parent_artifact_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    child_artifact_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    asset_key: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class AuditLog(Base):
    """Who did what to which resource; append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        Index("ix_audit_log_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(64), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class UsageCounter(Base):
    """Per-workspace, per-day counters (jobs submitted, bytes stored, seconds transcribed, ...)."""

    __tablename__ = "usage_counter"
    __table_args__ = (
        UniqueConstraint("workspace_id", "day", "metric"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        CheckConstraint("value >= 0", name="value_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    day: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD (UTC)
    metric: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

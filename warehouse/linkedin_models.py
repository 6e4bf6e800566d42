"""Tables of the LinkedIn publishing product (migration 0006_linkedin; docs/linkedin.md "Schema").

Every row carries ``workspace_id`` and children point at parents through ``(workspace_id, id)`` composite
foreign keys, so nothing references another tenant's rows; row-level security guards each on PostgreSQL.
Guarantees carried by constraints:

- ``linkedin_account``: one row per member per workspace (``(workspace_id, member_urn)``); a connected
  account always has an access-token ciphertext (tokens are envelope-encrypted: ciphertext = nonce||AES-GCM
  output, the data key wrapped by the key provider's key ``*_key_id``; never a plaintext column);
- ``oauth_state``: only the SHA-256 of a state is stored, unique, single-use (``used_at``), with an expiry;
- ``persona_version`` / ``config_pack_version``: immutable, numbered per parent; packs content-addressed;
- ``config_pack_channel``: one pointer per (pack, channel), every move kept in ``config_pack_channel_history``;
- ``schedule``: at most one *live* schedule per draft (partial unique index), and a partial index over the
  due rows the scheduler scans;
- ``post_attempt``: unique ``(schedule_id, attempt)`` and unique ``post_urn``: one post is recorded once.

The status columns are owned by ``warehouse/linkedin.py`` (the only module that changes them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pipelines.linkedin.drafts import DraftStatus, ScheduleStatus
from warehouse.db import utcnow
from warehouse.models import Base, TimestampMixin, _in, new_id

ACCOUNT_STATUSES = ("connected", "needs_reauth", "disconnected")
DRAFT_STATUSES = tuple(s.value for s in DraftStatus)
DRAFT_SOURCES = ("user", "service", "generated")
SCHEDULE_STATUSES = tuple(s.value for s in ScheduleStatus)
# A live schedule still owns its draft's slot; the others are history.
LIVE_SCHEDULE_STATUSES = ("scheduled", "claimed", "blocked_reauth", "paused", "needs_review")
ATTEMPT_STATUSES = ("sending", "published", "retry", "ambiguous", "backoff", "refresh", "needs_reauth", "failed")
CHANNEL_ACTIONS = ("publish", "move", "rollback")

LIVE_SCHEDULE_WHERE = _in("status", LIVE_SCHEDULE_STATUSES)
DUE_SCHEDULE_WHERE = "status IN ('scheduled', 'claimed')"

LINKEDIN_TABLES = ("linkedin_account", "oauth_state", "persona", "persona_version", "config_pack",
                   "config_pack_version", "config_pack_channel", "config_pack_channel_history", "draft",
                   "schedule", "post_attempt")


def _ws_fk(columns: list[str], table: str, **kw: Any) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["workspace_id", *columns], [f"{table}.workspace_id", f"{table}.id"], **kw)


class LinkedInAccount(TimestampMixin, Base):
    __tablename__ = "linkedin_account"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("workspace_id", "member_urn"),
        CheckConstraint(_in("status", ACCOUNT_STATUSES), name="status_valid"),
        CheckConstraint("status = 'disconnected' OR access_token_ciphertext IS NOT NULL", name="connected_has_token"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    member_urn: Mapped[str] = mapped_column(String(128), nullable=False)  # urn:li:person:{sub}
    name: Mapped[str | None] = mapped_column(String(200))
    picture_url: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    key_provider: Mapped[str | None] = mapped_column(String(32))
    access_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_key_id: Mapped[str | None] = mapped_column(String(255))
    access_token_expires_at: Mapped[datetime | None] = mapped_column()
    refresh_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_key_id: Mapped[str | None] = mapped_column(String(255))
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column()
    cooldown_until: Mapped[datetime | None] = mapped_column()  # after a 429: no send before this
    connected_by: Mapped[uuid.UUID | None] = mapped_column()
    connected_at: Mapped[datetime | None] = mapped_column()


class OAuthState(Base):
    __tablename__ = "oauth_state"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("state_hash"),
        CheckConstraint("length(state_hash) = 64", name="hash_length"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(String(2048), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    used_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class Persona(TimestampMixin, Base):
    __tablename__ = "persona"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        CheckConstraint("latest_version >= 1", name="version_positive"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        Index("ix_persona_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class PersonaVersion(Base):
    """Immutable: an edit of a persona is a new version."""

    __tablename__ = "persona_version"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("persona_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        _ws_fk(["persona_id"], "persona", ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    persona_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class ConfigPack(TimestampMixin, Base):
    __tablename__ = "config_pack"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("workspace_id", "name"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ConfigPackVersion(Base):
    """Immutable and content-addressed: publishing the same content twice is the same version."""

    __tablename__ = "config_pack_version"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("pack_id", "version"),
        UniqueConstraint("pack_id", "content_sha256"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(content_sha256) = 64", name="sha256_length"),
        _ws_fk(["pack_id"], "config_pack", ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    pack_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    schema_version: Mapped[int] = mapped_column(Integer, nullable=False)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class ConfigPackChannel(Base):
    __tablename__ = "config_pack_channel"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("pack_id", "channel"),
        _ws_fk(["pack_id"], "config_pack", ondelete="CASCADE"),
        _ws_fk(["version_id"], "config_pack_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    pack_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    version_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    updated_by: Mapped[uuid.UUID | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class ConfigPackChannelHistory(Base):
    __tablename__ = "config_pack_channel_history"
    __table_args__ = (
        CheckConstraint(_in("action", CHANNEL_ACTIONS), name="action_valid"),
        _ws_fk(["pack_id"], "config_pack", ondelete="CASCADE"),
        _ws_fk(["to_version_id"], "config_pack_version"),
        Index("ix_config_pack_channel_history_pack", "pack_id", "channel", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    pack_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    from_version_id: Mapped[uuid.UUID | None] = mapped_column()
    to_version_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class Draft(TimestampMixin, Base):
    __tablename__ = "draft"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        CheckConstraint(_in("status", DRAFT_STATUSES), name="status_valid"),
        CheckConstraint(_in("source", DRAFT_SOURCES), name="source_valid"),
        # Approved onward a draft carries the SHA-256 of the text that was approved.
        CheckConstraint("status NOT IN ('approved', 'scheduled', 'publishing', 'published') "
                        "OR approved_sha256 IS NOT NULL", name="approval_recorded"),
        _ws_fk(["persona_version_id"], "persona_version"),
        _ws_fk(["pack_version_id"], "config_pack_version"),
        Index("ix_draft_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)  # +1 on every edit
    author_id: Mapped[uuid.UUID | None] = mapped_column()
    persona_version_id: Mapped[uuid.UUID | None] = mapped_column()
    pack_version_id: Mapped[uuid.UUID | None] = mapped_column()
    generation_job_id: Mapped[uuid.UUID | None] = mapped_column()
    offline: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    approved_sha256: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[uuid.UUID | None] = mapped_column()
    approved_at: Mapped[datetime | None] = mapped_column()
    post_urn: Mapped[str | None] = mapped_column(String(128))


class Schedule(TimestampMixin, Base):
    __tablename__ = "schedule"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        CheckConstraint(_in("status", SCHEDULE_STATUSES), name="status_valid"),
        CheckConstraint("claims >= 0 AND backoffs >= 0", name="counts_non_negative"),
        _ws_fk(["draft_id"], "draft", ondelete="CASCADE"),
        _ws_fk(["account_id"], "linkedin_account"),
        Index("uq_schedule_live_draft", "draft_id", unique=True,
              postgresql_where=text(LIVE_SCHEDULE_WHERE), sqlite_where=text(LIVE_SCHEDULE_WHERE)),
        Index("ix_schedule_due", "status", "next_attempt_at",
              postgresql_where=text(DUE_SCHEDULE_WHERE), sqlite_where=text(DUE_SCHEDULE_WHERE)),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    draft_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    account_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    publish_at: Mapped[datetime] = mapped_column(nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(nullable=False)  # publish_at, later after a backoff
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    claims: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # run number: run_key <id>:<claims>
    claimed_at: Mapped[datetime | None] = mapped_column()
    backoffs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    post_urn: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class PostAttempt(Base):
    """One send (or reconciliation) for a schedule, written BEFORE the request goes out."""

    __tablename__ = "post_attempt"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("schedule_id", "attempt"),
        UniqueConstraint("post_urn"),
        CheckConstraint(_in("status", ATTEMPT_STATUSES), name="status_valid"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        CheckConstraint("length(fingerprint) = 64", name="fingerprint_length"),
        _ws_fk(["schedule_id"], "schedule", ondelete="CASCADE"),
        Index("ix_post_attempt_account_day", "account_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    schedule_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    account_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    reconciling: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    http_status: Mapped[int | None] = mapped_column(Integer)
    api_version: Mapped[str | None] = mapped_column(String(16))
    post_urn: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column()

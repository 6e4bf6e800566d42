"""Tables of the Episodes product (migration ``0006_episodes``); the queries are in ``warehouse/episodes.py``.

Tenant-scoped like every product table: ``workspace_id NOT NULL`` and children point at parents through
``(workspace_id, id)`` composite foreign keys, so no row can reference another workspace's character,
episode, job or artifact; row-level security on PostgreSQL (``warehouse.rls``). Constraints that carry the
product's guarantees:

- ``character_version``: unique ``(character_id, version)``, never updated: an episode pins one;
- ``character_image``: unique ``(character_id, sha256)``; ``(workspace_id, sha256)`` finds stored bytes to
  reuse (content-addressed per workspace) and ``(workspace_id, phash)`` the near-duplicate candidates;
- ``relationship``: ``CHECK (a_id <> b_id)``, symmetric pairs canonical (``directed OR a_id < b_id``),
  unique per ``(workspace_id, a_id, b_id, type)``;
- ``episode``: unique ``(series_id, number)``, status CHECK; ``episode_character`` pins one version per cast
  member; ``scene`` unique ``(episode_id, number)``; ``asset`` unique ``(workspace_id, generation_key)``.
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
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.db import utcnow
from warehouse.models import Base, TimestampMixin, _in, new_id

EPISODE_TABLES = ("character", "character_version", "character_image", "relationship", "series", "episode",
                  "episode_character", "scene", "asset", "scene_asset")
VIEWS = ("front", "three_quarter", "side", "back", "expression_sheet")
RELATIONSHIP_TYPES = ("sibling", "friend", "rival", "spouse", "colleague", "parent_of", "mentor_of")
# queued: its package job has not finished; ready: packaged, continuity passes; blocked: packaged, continuity
# fails (no render until fixed and re-pinned). A failed job shows through the job's own status.
EPISODE_STATUSES = ("queued", "ready", "blocked")
ASSET_SOURCES = ("uploaded", "generated")
ASSET_KINDS = ("background", "character", "prop", "image")
ITEM_ACTIONS = ("reuse", "generate")


def _fk(columns: tuple[str, str], table: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(list(columns), [f"{table}.workspace_id", f"{table}.id"], ondelete=ondelete)


class Character(TimestampMixin, Base):
    """A character of a workspace; what it looks like lives in immutable versions (``current_version``)."""

    __tablename__ = "character"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        CheckConstraint("current_version >= 1", name="current_version_positive"),
        Index("ix_character_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)  # the current version's, for listings
    current_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class CharacterVersion(Base):
    """One immutable version: the whole definition (``pipelines.episodes.models.Character``) as JSON."""

    __tablename__ = "character_version"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("character_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(digest) = 64", name="digest_length"),
        _fk(("workspace_id", "character_id"), "character", "CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    character_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class CharacterImage(Base):
    """A reference image of a character: content-addressed bytes (an artifact) with its perceptual hash."""

    __tablename__ = "character_image"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("character_id", "sha256"),
        CheckConstraint(_in("view", VIEWS), name="view_valid"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
        CheckConstraint("width BETWEEN 1 AND 65535 AND height BETWEEN 1 AND 65535", name="size_valid"),
        _fk(("workspace_id", "character_id"), "character", "CASCADE"),
        _fk(("workspace_id", "artifact_id"), "artifact"),
        Index("ix_character_image_workspace_sha256", "workspace_id", "sha256"),
        Index("ix_character_image_workspace_phash", "workspace_id", "phash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    character_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    artifact_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    phash: Mapped[str | None] = mapped_column(String(16))
    view: Mapped[str] = mapped_column(String(24), nullable=False)
    media_type: Mapped[str] = mapped_column(String(32), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class Relationship(Base):
    """``a_id`` -> ``b_id`` of a type; a symmetric pair is stored once, canonically (``a_id < b_id``)."""

    __tablename__ = "relationship"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("workspace_id", "a_id", "b_id", "type"),
        CheckConstraint("a_id <> b_id", name="distinct_characters"),
        CheckConstraint("directed OR a_id < b_id", name="symmetric_canonical"),
        CheckConstraint(_in("type", RELATIONSHIP_TYPES), name="type_valid"),
        CheckConstraint("since_episode IS NULL OR since_episode >= 1", name="since_episode_positive"),
        _fk(("workspace_id", "a_id"), "character", "CASCADE"),
        _fk(("workspace_id", "b_id"), "character", "CASCADE"),
        Index("ix_relationship_workspace_b", "workspace_id", "b_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    a_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    b_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    type: Mapped[str] = mapped_column(String(24), nullable=False)
    directed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    since_episode: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class Series(TimestampMixin, Base):
    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        Index("ix_series_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    style: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    cast_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)  # character ids, in order
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class Episode(TimestampMixin, Base):
    """One story of a series; ``job_id`` is its latest package job (a re-pin queues a new one)."""

    __tablename__ = "episode"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("series_id", "number"),
        CheckConstraint(_in("status", EPISODE_STATUSES), name="status_valid"),
        CheckConstraint("number >= 1", name="number_positive"),
        _fk(("workspace_id", "series_id"), "series", "CASCADE"),
        _fk(("workspace_id", "job_id"), "job"),
        _fk(("workspace_id", "package_artifact_id"), "artifact"),
        _fk(("workspace_id", "render_job_id"), "job"),
        _fk(("workspace_id", "animatic_artifact_id"), "artifact"),
        Index("ix_episode_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    series_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    story: Mapped[str] = mapped_column(Text, nullable=False)
    cast_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    job_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    continuity: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # the findings of the latest package
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    package_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    render_job_id: Mapped[uuid.UUID | None] = mapped_column()  # the latest animatic render job
    animatic_artifact_id: Mapped[uuid.UUID | None] = mapped_column()  # its MP4, once rendered
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class EpisodeCharacter(Base):
    """The pin: which version of a cast member the episode is built from (replaced only by a re-pin)."""

    __tablename__ = "episode_character"
    __table_args__ = (
        _fk(("workspace_id", "episode_id"), "episode", "CASCADE"),
        _fk(("workspace_id", "character_id"), "character"),
        _fk(("workspace_id", "character_version_id"), "character_version"),
    )

    episode_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    character_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    character_version_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # the cast order


class Scene(Base):
    """A scene row of an episode's latest package (replaced when the package is rebuilt)."""

    __tablename__ = "scene"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("episode_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("duration_ms >= 0", name="duration_non_negative"),
        _fk(("workspace_id", "episode_id"), "episode", "CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    episode_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    slugline: Mapped[str] = mapped_column(String(300), nullable=False)
    duration_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)  # the SceneRow


class Asset(Base):
    """An image the workspace holds or will hold: uploaded (content hash) or generated (generation key)."""

    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("workspace_id", "generation_key"),
        CheckConstraint(_in("source", ASSET_SOURCES), name="source_valid"),
        CheckConstraint(_in("kind", ASSET_KINDS), name="kind_valid"),
        CheckConstraint("cost_micros >= 0", name="cost_non_negative"),
        CheckConstraint("source = 'uploaded' OR generation_key IS NOT NULL", name="generated_has_key"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        _fk(("workspace_id", "artifact_id"), "artifact"),
        Index("ix_asset_workspace_sha256", "workspace_id", "sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))  # None until a generated asset exists
    phash: Mapped[str | None] = mapped_column(String(16))
    generation_key: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(64))
    cost_micros: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class SceneAsset(Base):
    """One asset-plan item of a scene: reused (``asset_id`` known) or to generate (its generation key)."""

    __tablename__ = "scene_asset"
    __table_args__ = (
        UniqueConstraint("scene_id", "item_key"),
        CheckConstraint(_in("action", ITEM_ACTIONS), name="action_valid"),
        CheckConstraint("cost_micros >= 0", name="cost_non_negative"),
        _fk(("workspace_id", "scene_id"), "scene", "CASCADE"),
        _fk(("workspace_id", "asset_id"), "asset"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    scene_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    item_key: Mapped[str] = mapped_column(String(120), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    asset_id: Mapped[uuid.UUID | None] = mapped_column()
    generation_key: Mapped[str | None] = mapped_column(String(64))
    cost_micros: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

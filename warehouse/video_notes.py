"""Video notes tables: ``video_asset`` (one uploaded video or audio file) and ``highlight``.

Tenant-scoped like the platform's tables: ``workspace_id NOT NULL`` everywhere, children point at
parents by ``(workspace_id, id)`` composite foreign keys, so a highlight can never reference another
workspace's video, job or artifact. Migration ``0003_video_notes`` creates exactly this schema.

A video's status and progress are its latest job's (``latest_job_id``); the row itself records
what the upload and the probe established (sha256, filename, duration, streams, language).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    Select,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from pipelines.video_notes.product import KIND as VIDEO_NOTES_KIND
from warehouse.db import utcnow
from warehouse.models import Artifact, Base, Job, TimestampMixin, new_id

VIDEO_TABLES = ("video_asset", "highlight")
JOB_KIND = VIDEO_NOTES_KIND  # the card names the kind (pipelines/video_notes/product.py)


class VideoAsset(TimestampMixin, Base):
    """One upload of the video notes product. Same bytes in one workspace = one row (sha256 unique)."""

    __tablename__ = "video_asset"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        # Content-addressed dedupe: a second upload of the same bytes returns this row.
        UniqueConstraint("workspace_id", "sha256"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["workspace_id", "input_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        ForeignKeyConstraint(["workspace_id", "latest_job_id"], ["job.workspace_id", "job.id"]),
        CheckConstraint("size_bytes >= 0", name="size_non_negative"),
        CheckConstraint("duration_ms IS NULL OR duration_ms >= 0", name="duration_non_negative"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
        # Keyset listing, newest first.
        Index("ix_video_asset_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    input_artifact_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    latest_job_id: Mapped[uuid.UUID | None] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)  # sanitized; metadata only
    content_type: Mapped[str] = mapped_column(String(128), nullable=False)  # sniffed from the bytes
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the probe: container, streams, codecs
    language: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class Highlight(Base):
    """A ranked moment of a video, made by one job, with its screenshot and clip artifacts."""

    __tablename__ = "highlight"
    __table_args__ = (
        CheckConstraint("end_ms > start_ms AND start_ms >= 0", name="time_range"),
        CheckConstraint("score >= 0 AND score <= 1", name="score_range"),
        CheckConstraint("clip_end_ms IS NULL OR clip_end_ms > clip_start_ms", name="clip_range"),
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("job_id", "rank"),
        ForeignKeyConstraint(
            ["workspace_id", "video_id"], ["video_asset.workspace_id", "video_asset.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["workspace_id", "job_id"], ["job.workspace_id", "job.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["workspace_id", "screenshot_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        ForeignKeyConstraint(["workspace_id", "clip_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        Index("ix_highlight_video_start", "workspace_id", "video_id", "start_ms"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    video_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    job_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 1 = best
    start_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    end_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    screenshot_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    screenshot_ms: Mapped[int | None] = mapped_column(Integer)
    clip_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    clip_start_ms: Mapped[int | None] = mapped_column(Integer)  # where the clip really starts (keyframe)
    clip_end_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


# -- queries shared by the API and the assets (always scoped by workspace) -----------------------------------

def load_video(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID) -> VideoAsset | None:
    return session.scalar(select(VideoAsset).where(VideoAsset.workspace_id == workspace_id, VideoAsset.id == video_id))


def video_by_sha256(session: Session, workspace_id: uuid.UUID, sha256: str) -> VideoAsset | None:
    return session.scalar(select(VideoAsset).where(VideoAsset.workspace_id == workspace_id, VideoAsset.sha256 == sha256))


def video_jobs(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID) -> list[Job]:
    """The video's jobs, newest first."""
    return list(
        session.scalars(
            select(Job)
            .where(Job.workspace_id == workspace_id, Job.kind == JOB_KIND, Job.subject_id == video_id)
            .order_by(Job.created_at.desc(), Job.id.desc())
        )
    )


def newest_job(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID) -> Job | None:
    return session.scalar(select(Job).where(Job.workspace_id == workspace_id, Job.kind == JOB_KIND,
                                            Job.subject_id == video_id)
                          .order_by(Job.created_at.desc(), Job.id.desc()).limit(1))


def videos_query(workspace_id: uuid.UUID) -> Select:
    return select(VideoAsset).where(VideoAsset.workspace_id == workspace_id)


def source_artifact(session: Session, video: VideoAsset) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.workspace_id == video.workspace_id,
                                                 Artifact.id == video.input_artifact_id))


def add_video(session: Session, video: VideoAsset, source: Artifact) -> None:
    """Insert an uploaded video and its source artifact (the artifact first: the video points at it)."""
    session.add(source)
    session.flush()
    session.add(video)
    session.flush()


def restore_source(session: Session, video: VideoAsset, source: Artifact) -> bool:
    """Make a re-upload ``video``'s source again, if its source is still the one that went missing.

    Conditional: of two re-uploads racing here, one becomes the source (True); the other finds the row changed.
    """
    gone = video.input_artifact_id
    session.add(source)
    session.flush()
    return bool(session.execute(
        update(VideoAsset).where(VideoAsset.workspace_id == video.workspace_id, VideoAsset.id == video.id,
                                 VideoAsset.input_artifact_id == gone)
        .values(input_artifact_id=source.id).execution_options(synchronize_session=False)
    ).rowcount)


def notes_job(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID) -> Job | None:
    """The job whose outputs the notes show: the newest succeeded one (a reprocess in flight keeps the old notes)."""
    return next((j for j in video_jobs(session, workspace_id, video_id) if j.status == "succeeded"), None)


def job_outputs(session: Session, workspace_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Artifact]:
    """The job's available artifacts by file name; the newest wins where a retried stage stored one twice."""
    rows = session.scalars(
        select(Artifact)
        .where(Artifact.workspace_id == workspace_id, Artifact.job_id == job_id, Artifact.status == "available")
        .order_by(Artifact.created_at, Artifact.id)
    )
    return {a.filename: a for a in rows}


def highlights_of_job(session: Session, workspace_id: uuid.UUID, job_id: uuid.UUID) -> list[Highlight]:
    return list(
        session.scalars(
            select(Highlight).where(Highlight.workspace_id == workspace_id, Highlight.job_id == job_id).order_by(Highlight.rank)
        )
    )


# -- writes the video notes assets make (the highlight rows of one job) --------------------------------------

def replace_highlights(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID, job_id: uuid.UUID,
                       ranked: list[Any]) -> None:
    """The job's highlight rows, ranked 1..n, replacing any an earlier attempt of the job wrote."""
    session.execute(delete(Highlight).where(Highlight.workspace_id == workspace_id, Highlight.job_id == job_id))
    session.add_all(
        Highlight(workspace_id=workspace_id, video_id=video_id, job_id=job_id, rank=rank,
                  start_ms=h.start_ms, end_ms=h.end_ms, title=h.title[:200], score=round(h.score, 4), text=h.text)
        for rank, h in enumerate(ranked, start=1)
    )


def link_highlight_clips(session: Session, workspace_id: uuid.UUID, links: list[tuple[uuid.UUID, dict[str, Any]]]) -> None:
    """Point highlights at their clips: ``links`` holds (highlight id, clip columns)."""
    for row_id, values in links:
        session.execute(update(Highlight).values(**values)
                        .where(Highlight.workspace_id == workspace_id, Highlight.id == row_id))


# What the assets may record about a video; its current job (``latest_job_id``) has owners of its own below.
MEDIA_FACTS = frozenset({"duration_ms", "media", "language"})


def update_video(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID, **values: Any) -> None:
    """What the assets learn about a video: duration, streams, language (``MEDIA_FACTS``), nothing else."""
    unknown = set(values) - MEDIA_FACTS
    if unknown:
        raise ValueError(f"update_video records media facts only, not {sorted(unknown)}")
    session.execute(update(VideoAsset).where(VideoAsset.workspace_id == workspace_id, VideoAsset.id == video_id)
                    .values(**values))


def set_current_job(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID, job_id: uuid.UUID, *,
                    expected: uuid.UUID | None) -> bool:
    """Make ``job_id`` the video's current job if the current one is still ``expected`` (compare-and-set).

    The reprocess route's guard: of two concurrent reprocesses only one moves the pointer (on PostgreSQL the
    second waits on the row lock, then matches nothing)."""
    seen = VideoAsset.latest_job_id.is_(None) if expected is None else VideoAsset.latest_job_id == expected
    return bool(session.execute(
        update(VideoAsset).where(VideoAsset.workspace_id == workspace_id, VideoAsset.id == video_id, seen)
        .values(latest_job_id=job_id).execution_options(synchronize_session=False)).rowcount)


def adopt_job(session: Session, workspace_id: uuid.UUID, video_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """A run of a job the API did not create (a backfill, the UI) becomes the video's current job, unless the
    current one is newer: a reprocess submitted meanwhile keeps the pointer (status, progress and the reprocess
    guard follow the newest job)."""
    mine = select(Job.created_at).where(Job.workspace_id == workspace_id, Job.id == job_id).scalar_subquery()
    older = select(Job.id).where(Job.workspace_id == workspace_id, Job.created_at < mine)
    return bool(session.execute(
        update(VideoAsset).where(VideoAsset.workspace_id == workspace_id, VideoAsset.id == video_id,
                                 VideoAsset.latest_job_id.is_(None) | VideoAsset.latest_job_id.in_(older))
        .values(latest_job_id=job_id).execution_options(synchronize_session=False)).rowcount)

"""Recording artifacts and lineage: the one way any code stores an output for a tenant.

``store_artifact`` writes the bytes under a server-generated key, then records the row with its
SHA-256, size, content type, producing job/asset/run and expiry. ``add_lineage`` records what was
derived from what.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from resources.objectstore import ObjectStore, artifact_key, sanitize_filename
from warehouse.db import utcnow
from warehouse.models import Artifact, LineageEdge

ARTIFACT_KINDS = ("input", "intermediate", "output", "archive", "log")

__all__ = ["ARTIFACT_KINDS", "add_lineage", "expired_artifacts", "expiry", "sanitize_filename", "store_artifact"]


def expiry(ttl: timedelta | None, *, now: datetime | None = None) -> datetime | None:
    """When an artifact stored ``now`` with this TTL expires; ``None`` (no TTL) keeps it."""
    return (now or utcnow()) + ttl if ttl else None


def store_artifact(
    session: Session,
    store: ObjectStore,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    subject_id: uuid.UUID,
    name: str,
    chunks: Iterable[bytes],
    filename: str | None = None,
    content_type: str = "application/octet-stream",
    job_id: uuid.UUID | None = None,
    asset_key: str | None = None,
    run_id: str | None = None,
    ttl: timedelta | None = None,
    max_bytes: int | None = None,
    artifact_id: uuid.UUID | None = None,
) -> Artifact:
    """Stream ``chunks`` to the object store and record the artifact row (flushed, not committed).

    ``name`` is a server-chosen object name such as ``transcript.json``; ``filename`` is the
    user-facing name (sanitized) used only in Content-Disposition.

    ``artifact_id`` (default: a random one) lets a caller that may redo work after a crash derive
    the id, and so the key, deterministically. A redo whose row already exists writes nothing and
    returns that row: overwriting its object would replace bytes that a committed row (and its
    SHA-256) already describes. A caller-chosen key is never deleted here, even when the row
    cannot be recorded, because a concurrent redo's committed row may name it; an unnamed object
    is left to the orphan sweep (``warehouse.retention.sweep_orphans``).
    """
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    chosen_id = artifact_id is not None
    artifact_id = artifact_id or uuid.uuid4()
    key = artifact_key(workspace_id, kind, subject_id, artifact_id, name)
    if chosen_id:
        existing = session.get(Artifact, artifact_id)
        if existing is not None:
            if existing.workspace_id != workspace_id or existing.storage_key != key:
                raise ValueError(f"artifact {artifact_id} already exists for another object")
            if existing.status != "available":
                raise ValueError(f"artifact {artifact_id} was deleted by retention; store the redo under a new id")
            return existing
    put = store.put_stream(key, chunks, max_bytes=max_bytes, content_type=content_type)
    artifact = Artifact(
        id=artifact_id,
        workspace_id=workspace_id,
        kind=kind,
        storage_key=put.key,
        sha256=put.sha256,
        size_bytes=put.size_bytes,
        content_type=content_type,
        filename=sanitize_filename(filename or name),
        job_id=job_id,
        asset_key=asset_key,
        run_id=run_id,
        expires_at=expiry(ttl),
    )
    try:
        session.add(artifact)
        session.flush()
    except BaseException:
        if not chosen_id:
            # A random key that no row will point at: retention could never find it, so remove it now.
            store.delete(put.key)
        raise
    return artifact


def add_lineage(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    parents: Sequence[uuid.UUID],
    child: uuid.UUID,
    asset_key: str | None = None,
    run_id: str | None = None,
) -> None:
    existing = set(
        session.scalars(
            select(LineageEdge.parent_artifact_id).where(
                LineageEdge.child_artifact_id == child, LineageEdge.parent_artifact_id.in_(list(parents))
            )
        )
    )
    for parent in parents:
        if parent != child and parent not in existing:
            existing.add(parent)  # the same parent twice in ``parents`` must not make two edges
            session.add(
                LineageEdge(
                    workspace_id=workspace_id,
                    parent_artifact_id=parent,
                    child_artifact_id=child,
                    asset_key=asset_key,
                    run_id=run_id,
                )
            )
    session.flush()


def expired_artifacts(session: Session, *, now: datetime | None = None, limit: int = 1000) -> list[Artifact]:
    """Available artifacts whose ``expires_at`` has passed, oldest first (served by ix_artifact_expires_at)."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Artifact)
            .where(Artifact.expires_at.is_not(None), Artifact.expires_at <= now, Artifact.status == "available")
            .order_by(Artifact.expires_at)
            .limit(limit)
        )
    )


def storage_key_of(session: Session, workspace_id: uuid.UUID, artifact_id: uuid.UUID, *,
                   available_only: bool = False) -> str | None:
    """The object key of one of the workspace's artifacts (None: no such row, or not available when asked)."""
    query = select(Artifact.storage_key).where(Artifact.workspace_id == workspace_id, Artifact.id == artifact_id)
    if available_only:
        query = query.where(Artifact.status == "available")
    return session.scalar(query)


def artifact_id_by_storage_key(session: Session, workspace_id: uuid.UUID, key: str) -> uuid.UUID | None:
    """The artifact row that points at ``key``, if one was committed (an upload's clean-up asks before deleting)."""
    return session.scalar(select(Artifact.id).where(Artifact.workspace_id == workspace_id,
                                                    Artifact.storage_key == key))

"""Per-workspace usage: the ``usage_counter`` rows (one per workspace, UTC day and metric) and the
active-job counts the API's quotas read.

``add_usage`` is one atomic upsert (``INSERT ... ON CONFLICT (workspace_id, day, metric) DO UPDATE
SET value = usage_counter.value + excluded.value``) on both SQLite and PostgreSQL: concurrent
increments from many requests and processes never lose an update and need no lock or retry.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from warehouse.db import utcnow
from warehouse.jobs import ACTIVE_STATUSES
from warehouse.models import Job, UsageCounter

UPLOAD_BYTES = "upload_bytes"  # request body bytes received by upload routes, refused uploads included


def usage_day(now: datetime | None = None) -> str:
    """The UTC day a counter belongs to (``YYYY-MM-DD``)."""
    return (now or utcnow()).astimezone(UTC).strftime("%Y-%m-%d")


def next_day_start(now: datetime | None = None) -> datetime:
    """When today's (UTC) counters stop applying: the next UTC midnight."""
    now = (now or utcnow()).astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def add_usage(session: Session, workspace_id: uuid.UUID, metric: str, amount: int, *, day: str | None = None) -> int:
    """Add ``amount`` to the workspace's counter for ``day`` (today, UTC) atomically; answers the new total."""
    if amount < 0:
        raise ValueError("usage counters only grow")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(UsageCounter).values(workspace_id=workspace_id, day=day or usage_day(), metric=metric, value=amount)
    stmt = stmt.on_conflict_do_update(
        index_elements=[UsageCounter.workspace_id, UsageCounter.day, UsageCounter.metric],
        set_={"value": UsageCounter.value + stmt.excluded.value},
    ).returning(UsageCounter.value)
    return int(session.execute(stmt).scalar_one())


def usage_of_day(session: Session, workspace_id: uuid.UUID, *, day: str | None = None) -> dict[str, int]:
    """Every counter of the workspace for ``day`` (today, UTC), by metric."""
    rows = session.execute(select(UsageCounter.metric, UsageCounter.value).where(
        UsageCounter.workspace_id == workspace_id, UsageCounter.day == (day or usage_day())))
    return {metric: int(value) for metric, value in rows}


def usage_value(session: Session, workspace_id: uuid.UUID, metric: str, *, day: str | None = None) -> int:
    value = session.scalar(select(UsageCounter.value).where(
        UsageCounter.workspace_id == workspace_id, UsageCounter.day == (day or usage_day()),
        UsageCounter.metric == metric))
    return int(value or 0)


def active_jobs(session: Session, workspace_id: uuid.UUID, kind: str) -> int:
    """Jobs of ``kind`` in the workspace that are queued, running or retrying."""
    return int(session.scalar(select(func.count()).select_from(Job).where(
        Job.workspace_id == workspace_id, Job.kind == kind, Job.status.in_(ACTIVE_STATUSES))) or 0)


def active_jobs_by_kind(session: Session, workspace_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(select(Job.kind, func.count()).where(
        Job.workspace_id == workspace_id, Job.status.in_(ACTIVE_STATUSES)).group_by(Job.kind))
    return {kind: int(n) for kind, n in rows}


def job_with_key_exists(session: Session, workspace_id: uuid.UUID, kind: str, idempotency_key: str) -> bool:
    return session.scalar(select(Job.id).where(Job.workspace_id == workspace_id, Job.kind == kind,
                                               Job.idempotency_key == idempotency_key)) is not None

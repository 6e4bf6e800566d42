"""Retention decisions as plain functions on plain data (no Dagster, no database session).

Two questions are answered here; ``warehouse/retention.py`` feeds them rows and applies the
answers, and ``assets/maintenance/`` wraps that in the scheduled ``retention_job``.

1. Which artifacts are expired? Every artifact row gets ``expires_at`` when it is written
   (``store_artifact(..., ttl=...)``, with the TTL from ``Settings.retention_days_<kind>``, see
   ``ttl_for_kind``). The retention pass does not back-fill ``expires_at`` on old rows: an
   artifact written without a TTL is kept until someone deletes it on purpose.
2. Which dynamic partitions are no longer needed? A partition key belongs to the jobs that carry
   it (``job.partition_key``). It can go once every one of those jobs is terminal and its
   artifacts are all deleted, or, for jobs that never stored an artifact, once they finished
   more than ``retention_days_log`` ago. Partitions with no job row at all are left alone: we
   cannot tell whose they are.

Which dynamic partitions definition each job kind uses is read from the product cards
(``pipelines/products.py``): nothing registers itself at import time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipelines import products

TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "canceled"})

def partitions_by_kind() -> dict[str, str]:
    """Job kind -> name of the DynamicPartitionsDefinition its runs are partitioned by, from the cards."""
    return products.partitions_by_kind()


def kinds_by_partitions_def(registry: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Invert the registry: partitions definition name -> the job kinds that use it."""
    inverted: dict[str, list[str]] = defaultdict(list)
    for kind, name in (partitions_by_kind() if registry is None else registry).items():
        inverted[name].append(kind)
    return {name: sorted(kinds) for name, kinds in inverted.items()}


def ttl_for_kind(retention_days: int | None) -> timedelta | None:
    """The TTL ``store_artifact`` should use for an artifact kind; ``None`` or <= 0 keeps forever."""
    if retention_days is None or retention_days <= 0:
        return None
    return timedelta(days=retention_days)


@dataclass(frozen=True)
class PartitionJob:
    """What retention needs to know about one job that carries a partition key."""

    kind: str
    partition_key: str
    status: str
    finished_at: datetime | None
    artifacts_total: int
    artifacts_available: int


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Kiln stores is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def job_releases_partition(job: PartitionJob, *, now: datetime, empty_job_grace: timedelta) -> bool:
    """True when this job no longer needs its partition."""
    if job.status not in TERMINAL_JOB_STATUSES:
        return False
    if job.artifacts_total > 0:
        return job.artifacts_available == 0
    # No artifacts: keep the partition (and its run history in the UI) for the log retention window.
    return job.finished_at is not None and _as_utc(job.finished_at) <= _as_utc(now) - empty_job_grace


def removable_partitions(
    existing: Mapping[str, Iterable[str]],
    jobs: Iterable[PartitionJob],
    *,
    now: datetime,
    empty_job_grace: timedelta,
    registry: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Partition keys to delete, per partitions definition.

    ``existing`` is what the Dagster instance holds now (partitions def name -> keys); ``jobs``
    are the jobs whose kind maps to one of those definitions and whose partition key is among
    them. A key goes only when every job carrying it releases it.
    """
    registry = partitions_by_kind() if registry is None else registry
    jobs_by_slot: dict[tuple[str, str], list[PartitionJob]] = defaultdict(list)
    for job in jobs:
        name = registry.get(job.kind)
        if name is not None:
            jobs_by_slot[(name, job.partition_key)].append(job)
    removable: dict[str, list[str]] = {}
    for name, keys in existing.items():
        chosen = [
            key
            for key in keys
            if (slot_jobs := jobs_by_slot.get((name, key)))
            and all(job_releases_partition(job, now=now, empty_job_grace=empty_job_grace) for job in slot_jobs)
        ]
        if chosen:
            removable[name] = sorted(chosen)
    return removable

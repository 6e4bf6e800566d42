"""The retention pass against the system-of-record DB and the object store.

The decisions live in ``pipelines/maintenance/retention.py`` (plain functions); this module
reads the rows they need and applies them. Deletion is at-least-once and ordered so a crash
never loses track of an object: the object is deleted first, then its row is marked
``deleted`` (rows are never removed, so lineage stays queryable). A crash between the two
leaves the row ``available`` and the next pass deletes the (already missing) object again.

``sweep_orphans`` covers the opposite crash: an object written whose row never committed (a
run killed mid-batch, a transaction failing at commit). Such objects are found by listing the
store, never through rows, and only once older than a grace period, because every writer puts
its object before its row commits.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, func, select, text, update
from sqlalchemy.orm import aliased

from pipelines.maintenance.retention import PartitionJob, kinds_by_partitions_def, removable_partitions
from resources.objectstore import ObjectInfo, ObjectStore, as_utc
from warehouse.db import is_postgres, system_session, utcnow
from warehouse.jobs import TERMINAL_STATUSES
from warehouse.models import Artifact, Job, LineageEdge

_IN_CHUNK = 500  # keep IN (...) lists well below every driver's parameter limit


@dataclass
class PurgeReport:
    objects_deleted: int = 0
    bytes_freed: int = 0
    missing_objects: int = 0  # already gone (an earlier interrupted pass, or removed by hand)
    rows_marked: int = 0
    batches: int = 0
    failed_artifact_ids: list[str] = field(default_factory=list)


def _still_needed() -> list:
    """Conditions that keep an expired artifact while an unfinished job may still read it.

    An expired artifact is kept while (a) its own job is queued, running or retrying (inputs and
    intermediates a retry resumes from), (b) another job on the same subject is (a reprocess of a
    video or bulk run reads the inputs the first job recorded), or (c) it is the lineage parent of
    an artifact whose job is. Each is a correlated NOT EXISTS, so the batch stays one query that
    PostgreSQL and SQLite both run as anti-joins.
    """
    finished = list(TERMINAL_STATUSES)
    own_job = (
        select(1)
        .select_from(Job)
        .where(Job.workspace_id == Artifact.workspace_id, Job.id == Artifact.job_id, Job.status.not_in(finished))
    )
    producer, other = aliased(Job), aliased(Job)
    same_subject = (
        select(1)
        .select_from(producer)
        .join(other, (other.workspace_id == producer.workspace_id) & (other.subject_id == producer.subject_id))
        .where(
            producer.workspace_id == Artifact.workspace_id,
            producer.id == Artifact.job_id,
            producer.subject_id.is_not(None),
            other.status.not_in(finished),
        )
    )
    child, child_job = aliased(Artifact), aliased(Job)
    parent_of_active = (
        select(1)
        .select_from(LineageEdge)
        .join(child, (child.workspace_id == LineageEdge.workspace_id) & (child.id == LineageEdge.child_artifact_id))
        .join(child_job, (child_job.workspace_id == child.workspace_id) & (child_job.id == child.job_id))
        .where(LineageEdge.parent_artifact_id == Artifact.id, child_job.status.not_in(finished))
    )
    return [~own_job.exists(), ~same_subject.exists(), ~parent_of_active.exists()]


def _expired_batch(engine: Engine, *, now: datetime, limit: int, skip: Sequence[uuid.UUID]) -> list[tuple]:
    query = (
        select(Artifact.id, Artifact.storage_key, Artifact.size_bytes)
        .where(Artifact.status == "available", Artifact.expires_at.is_not(None), Artifact.expires_at <= now)
        .where(*_still_needed())
        .order_by(Artifact.expires_at, Artifact.id)
        .limit(limit)
    )
    if skip:
        query = query.where(Artifact.id.not_in(list(skip)))
    with system_session(engine) as session:
        return [tuple(row) for row in session.execute(query)]


def purge_expired_artifacts(
    engine: Engine,
    store: ObjectStore,
    *,
    now: datetime | None = None,
    batch_size: int = 500,
    max_batches: int | None = None,
    log=None,
) -> PurgeReport:
    """Delete every expired artifact's object, then mark its row deleted, in batches.

    Artifacts an unfinished job may still read are skipped until it ends (see ``_still_needed``).

    The DB transaction is short (read a batch; later mark it): object-store calls never run
    inside it. An object the store refuses to delete is skipped and reported, not retried in
    this pass, so one bad key cannot stall the rest.
    """
    now = now or utcnow()
    report = PurgeReport()
    failed: list[uuid.UUID] = []
    while max_batches is None or report.batches < max_batches:
        batch = _expired_batch(engine, now=now, limit=batch_size, skip=failed)
        if not batch:
            break
        report.batches += 1
        gone: list[uuid.UUID] = []
        for artifact_id, key, size in batch:
            try:
                existed = store.exists(key)
                store.delete(key)
            except Exception as exc:  # noqa: BLE001 - report and carry on with the other objects
                failed.append(artifact_id)
                report.failed_artifact_ids.append(str(artifact_id))
                if log is not None:
                    log.warning(f"retention: could not delete object of artifact {artifact_id}: {type(exc).__name__}")
                continue
            if existed:
                report.objects_deleted += 1
                report.bytes_freed += int(size)
            else:
                report.missing_objects += 1
            gone.append(artifact_id)
        if gone:
            with system_session(engine) as session:
                result = session.execute(
                    update(Artifact)
                    .where(Artifact.id.in_(gone), Artifact.status == "available")
                    .values(status="deleted", deleted_at=now, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                report.rows_marked += result.rowcount or 0
    return report


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def partition_jobs(engine: Engine, *, kinds: Sequence[str], keys: Sequence[str]) -> list[PartitionJob]:
    """Jobs of ``kinds`` carrying one of ``keys``, with their artifact counts."""
    if not kinds or not keys:
        return []
    available = func.coalesce(func.sum(case((Artifact.status == "available", 1), else_=0)), 0)
    found: list[PartitionJob] = []
    with system_session(engine) as session:
        for chunk in _chunks(list(keys)):
            query = (
                select(Job.kind, Job.partition_key, Job.status, Job.finished_at, func.count(Artifact.id), available)
                .outerjoin(Artifact, (Artifact.workspace_id == Job.workspace_id) & (Artifact.job_id == Job.id))
                .where(Job.kind.in_(list(kinds)), Job.partition_key.in_(list(chunk)))
                .group_by(Job.id, Job.kind, Job.partition_key, Job.status, Job.finished_at)
            )
            for kind, key, status, finished_at, total, left in session.execute(query):
                found.append(PartitionJob(kind, key, status, finished_at, int(total), int(left)))
    return found


def stale_partitions(
    engine: Engine,
    existing: Mapping[str, Sequence[str]],
    *,
    now: datetime | None = None,
    empty_job_grace: timedelta,
    registry: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Which of the ``existing`` partition keys (per partitions definition) can be deleted."""
    now = now or utcnow()
    kinds_of = kinds_by_partitions_def(registry)
    jobs: list[PartitionJob] = []
    for name, keys in existing.items():
        jobs.extend(partition_jobs(engine, kinds=kinds_of.get(name, []), keys=list(keys)))
    return removable_partitions(existing, jobs, now=now, empty_job_grace=empty_job_grace, registry=registry)


# --- objects nobody points at -------------------------------------------------------------------

ORPHAN_PREFIX = "ws/"  # every artifact_key starts here; other keys (the readiness probe) are not artifacts
DEFAULT_ORPHAN_GRACE = timedelta(hours=24)
_MAX_REPORTED_KEYS = 100


@dataclass
class OrphanSweepReport:
    objects_checked: int = 0  # objects under ws/ older than the grace period
    orphans_deleted: int = 0
    bytes_freed: int = 0
    batches: int = 0
    failed: int = 0
    failed_keys: list[str] = field(default_factory=list)  # the first few, for the run's metadata
    incomplete_writes_removed: int = 0  # local temp files / S3 multipart uploads of crashed writes
    incomplete_bytes_freed: int = 0
    incomplete_writes_failed: int = 0


def _require_cross_tenant_reads(engine: Engine) -> None:
    """Refuse to sweep through a role that row-level security scopes to one (or no) tenant.

    Such a role would see no artifact rows, and every object would look orphaned.
    """
    if not is_postgres(engine):
        return
    query = text(
        "SELECT pg_has_role(current_user, 'kiln_system', 'USAGE') OR EXISTS "
        "(SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolbypassrls))"
    )
    with engine.connect() as conn:
        if not conn.execute(query).scalar():
            raise PermissionError(
                "the orphan sweep needs a database role in kiln_system (it must see every tenant's artifact rows)"
            )


def _batched(items: Iterator[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def sweep_orphans(
    engine: Engine,
    store: ObjectStore,
    *,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_ORPHAN_GRACE,
    batch: int = 1000,
    log=None,
) -> OrphanSweepReport:
    """Delete objects under ``ws/`` older than ``grace`` that no artifact row (any status) names.

    Writers put the object first and commit its row after, so a young object without a row may
    be a write in progress: only objects last modified before ``now - grace`` are considered.
    The listing streams; each batch costs one ``storage_key IN (...)`` query, and no transaction
    stays open across object-store calls. A delete that fails is reported and the sweep goes on.
    Finally removes what crashed writes left half done (stale temp files, multipart uploads).
    """
    if grace <= timedelta(0):
        raise ValueError("the orphan grace period must be positive")
    if not 1 <= batch <= 10_000:
        raise ValueError("batch must be within 1..10000")
    _require_cross_tenant_reads(engine)
    cutoff = as_utc(now or utcnow()) - grace
    report = OrphanSweepReport()
    for infos in _batched(store.list_objects(ORPHAN_PREFIX, older_than=cutoff), batch):
        report.batches += 1
        report.objects_checked += len(infos)
        with system_session(engine) as session:
            query = select(Artifact.storage_key).where(Artifact.storage_key.in_([info.key for info in infos]))
            known = set(session.scalars(query))
        for info in infos:
            if info.key in known:
                continue
            try:
                store.delete(info.key)
            except Exception as exc:  # noqa: BLE001 - report and carry on with the other objects
                report.failed += 1
                if len(report.failed_keys) < _MAX_REPORTED_KEYS:
                    report.failed_keys.append(info.key)
                if log is not None:
                    log.warning(f"orphan sweep: could not delete {info.key}: {type(exc).__name__}")
                continue
            report.orphans_deleted += 1
            report.bytes_freed += info.size_bytes
    try:
        incomplete = store.remove_incomplete_writes(cutoff)
    except Exception as exc:  # noqa: BLE001 - the orphans above are done; report this part as failed
        report.incomplete_writes_failed += 1
        if log is not None:
            log.warning(f"orphan sweep: could not clean up incomplete writes: {type(exc).__name__}")
        return report
    report.incomplete_writes_removed = incomplete.removed
    report.incomplete_bytes_freed = incomplete.bytes_freed
    report.incomplete_writes_failed = incomplete.failed
    return report

"""The job state machine, shared by every product. This module owns every transition.

    queued --claim--> running --ok--> succeeded
      ^                  |--error, attempts left--> retrying --backoff due--> queued
      |                  '--error, none left / permanent--> failed
      '--- canceled (from queued, retrying or running)

A transition is one conditional UPDATE (``WHERE id = :id AND status = :expected``): a lost race
changes nothing and returns ``False``/``None``. Each transition bumps ``job.event_seq`` in the
same UPDATE and appends a ``job_event`` with that number in the same transaction, so the history
is gap-free and ``(job_id, seq)`` stays unique without locks.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipelines.errors import IdempotencyConflict
from warehouse.db import utcnow
from warehouse.models import Job, JobEvent

ACTIVE_STATUSES = ("queued", "running", "retrying")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
CANCELABLE_STATUSES = ("queued", "retrying", "running")

# Every legal edge of the state machine; tests check the code never leaves this set.
ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("queued", "running"),
        ("running", "succeeded"),
        ("running", "retrying"),
        ("running", "failed"),
        ("retrying", "queued"),
        ("queued", "canceled"),
        ("retrying", "canceled"),
        ("running", "canceled"),
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 10.0
    max_seconds: float = 600.0

    def backoff_seconds(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with jitter: base * 2^(attempt-1), capped, times U[0.5, 1.0]."""
        rng = rng or random
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class SubmitResult:
    job: Job
    created: bool


def request_fingerprint(kind: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def submit_job(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    fingerprint_payload: dict[str, Any] | None = None,
    max_attempts: int = 3,
    subject_id: uuid.UUID | None = None,
    partition_key: str | None = None,
    created_by: uuid.UUID | None = None,
    request_id: str | None = None,
) -> SubmitResult:
    """Create a queued job, or return the first one for the same Idempotency-Key (Stripe's rules).

    The same key with a different request raises ``IdempotencyConflict``. Safe under concurrency:
    the unique ``(workspace_id, kind, idempotency_key)`` decides, inside a savepoint.
    """
    payload = payload or {}
    fingerprint = request_fingerprint(kind, fingerprint_payload if fingerprint_payload is not None else payload)
    if idempotency_key is not None:
        existing = find_by_idempotency_key(session, workspace_id, kind, idempotency_key)
        if existing is not None:
            return _same_request_or_conflict(existing, fingerprint)
    job = Job(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        kind=kind,
        status="queued",
        payload=payload,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        subject_id=subject_id,
        created_by=created_by,
        request_id=request_id,
        next_attempt_at=utcnow(),
        event_seq=1,
    )
    job.partition_key = partition_key or str(job.id)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = find_by_idempotency_key(session, workspace_id, kind, idempotency_key)
        if existing is None:  # the row that beat us was rolled back; let the caller retry
            raise
        return _same_request_or_conflict(existing, fingerprint)
    session.add(
        JobEvent(workspace_id=workspace_id, job_id=job.id, seq=1, event="submitted", to_status="queued", attempt=0)
    )
    session.flush()
    return SubmitResult(job=job, created=True)


def find_by_idempotency_key(session: Session, workspace_id: uuid.UUID, kind: str, key: str) -> Job | None:
    """The job an earlier request with this ``Idempotency-Key`` created for ``kind``, if any."""
    return session.scalar(
        select(Job).where(Job.workspace_id == workspace_id, Job.kind == kind, Job.idempotency_key == key)
    )


def _same_request_or_conflict(existing: Job, fingerprint: str) -> SubmitResult:
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request; "
            "use a new key for a new request.",
            job_id=str(existing.id),
        )
    return SubmitResult(job=existing, created=False)


def _transition(
    session: Session,
    job_id: uuid.UUID | str,
    *,
    expected: Sequence[str],
    to_status: str,
    event: str,
    values: dict[str, Any] | None = None,
    extra_where: Sequence[Any] = (),
    detail: dict[str, Any] | None = None,
) -> bool:
    job_id = _as_uuid(job_id)
    now = utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(tuple(expected)), *extra_where)
        .values(status=to_status, event_seq=Job.event_seq + 1, updated_at=now, **(values or {}))
        .returning(Job.workspace_id, Job.event_seq, Job.attempt)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).first()
    if row is None:
        return False
    from_status = expected[0] if len(expected) == 1 else None
    session.add(
        JobEvent(
            workspace_id=row.workspace_id,
            job_id=job_id,
            seq=row.event_seq,
            event=event,
            from_status=from_status,
            to_status=to_status,
            attempt=row.attempt,
            detail=detail or {},
            created_at=now,
        )
    )
    session.flush()
    return True


def claim_job(session: Session, job_id: uuid.UUID | str, *, run_id: str, attempt: int | None = None) -> bool:
    """queued -> running for the run ``run_id``. Idempotent: re-claiming by the same run is a no-op success.

    ``attempt`` is the attempt the run was dispatched for (its ``kiln/attempt`` tag): a late claim by
    an earlier attempt's run, after the job was retried and requeued, then changes nothing.
    """
    attempt_guard = (Job.attempt == attempt - 1,) if attempt is not None else ()
    if _transition(
        session,
        job_id,
        expected=("queued",),
        to_status="running",
        event="started",
        values={
            "attempt": Job.attempt + 1,
            "dagster_run_id": run_id,
            "started_at": utcnow(),
            "error_code": None,
            "error_message": None,
        },
        extra_where=(Job.attempt < Job.max_attempts, *attempt_guard),
        detail={"run_id": run_id},
    ):
        return True
    current = session.execute(select(Job.status, Job.dagster_run_id).where(Job.id == _as_uuid(job_id))).first()
    return current is not None and current.status == "running" and current.dagster_run_id == run_id


def succeed_job(session: Session, job_id: uuid.UUID | str, *, run_id: str | None = None) -> bool:
    where = (Job.dagster_run_id == run_id,) if run_id else ()
    return _transition(
        session,
        job_id,
        expected=("running",),
        to_status="succeeded",
        event="succeeded",
        values={"progress": 100, "finished_at": utcnow(), "next_attempt_at": utcnow()},
        extra_where=where,
        detail={"run_id": run_id} if run_id else None,
    )


def fail_job(
    session: Session,
    job_id: uuid.UUID | str,
    *,
    error_code: str,
    message: str,
    retryable: bool,
    run_id: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
) -> str | None:
    """running -> retrying (retryable, attempts left) or failed. Returns the new status, or None."""
    job_id = _as_uuid(job_id)
    current = session.execute(
        select(Job.status, Job.attempt, Job.max_attempts, Job.dagster_run_id).where(Job.id == job_id)
    ).first()
    if current is None or current.status != "running":
        return None
    if run_id is not None and current.dagster_run_id not in (None, run_id):
        return None  # a late report about an earlier attempt's run
    now = utcnow()
    message = message[:4000]
    guard = (Job.attempt == current.attempt,)
    if retryable and current.attempt < current.max_attempts:
        delay = policy.backoff_seconds(current.attempt, rng)
        ok = _transition(
            session,
            job_id,
            expected=("running",),
            to_status="retrying",
            event="retry_scheduled",
            values={
                "error_code": error_code,
                "error_message": message,
                "next_attempt_at": now + timedelta(seconds=delay),
                "dispatched_at": None,
            },
            extra_where=guard,
            detail={"error_code": error_code, "backoff_seconds": round(delay, 3), "run_id": run_id},
        )
        return "retrying" if ok else None
    ok = _transition(
        session,
        job_id,
        expected=("running",),
        to_status="failed",
        event="failed",
        values={"error_code": error_code, "error_message": message, "finished_at": now},
        extra_where=guard,
        detail={"error_code": error_code, "retryable": retryable, "run_id": run_id},
    )
    return "failed" if ok else None


def requeue_due(session: Session, *, kind: str | None = None, now: datetime | None = None, limit: int = 500) -> int:
    """retrying -> queued for every job whose backoff has elapsed."""
    now = now or utcnow()
    query = select(Job.id).where(Job.status == "retrying", Job.next_attempt_at <= now)
    if kind is not None:
        query = query.where(Job.kind == kind)
    ids = session.scalars(query.order_by(Job.next_attempt_at).limit(limit)).all()
    return sum(
        _transition(session, job_id, expected=("retrying",), to_status="queued", event="requeued") for job_id in ids
    )


def cancel_job(session: Session, job_id: uuid.UUID | str, *, reason: str = "canceled by user", actor: str | None = None) -> bool:
    """Cancel a queued, retrying or running job; False only once it is finished (or unknown).

    The UPDATE is conditional on the status just read, so the event records the real
    ``from_status``; when a worker moves the job in between (queued -> running), the UPDATE
    matches nothing and cancel reads again: the job is still cancelable, so a race with a
    claim must not answer "cannot be canceled".
    """
    job_id = _as_uuid(job_id)
    # Each retry means a worker moved the job meanwhile, and a job makes few moves: the bound only
    # guards against a livelock.
    for _ in range(16):
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status not in CANCELABLE_STATUSES:
            return False
        if _transition(
            session,
            job_id,
            expected=(status,),
            to_status="canceled",
            event="canceled",
            values={"finished_at": utcnow(), "error_code": "canceled", "error_message": reason},
            detail={"reason": reason, "actor": actor},
        ):
            return True
    return False


def set_progress(session: Session, job_id: uuid.UUID | str, progress: int) -> bool:
    """Move progress forward only; never backwards, never past 100, only while running."""
    progress = max(0, min(100, int(progress)))
    result = session.execute(
        update(Job)
        .where(Job.id == _as_uuid(job_id), Job.status == "running", Job.progress < progress)
        .values(progress=progress, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def due_jobs(
    session: Session, *, kind: str, now: datetime | None = None, limit: int = 25, redispatch_after: timedelta = timedelta(minutes=10)
) -> list[Job]:
    """Queued jobs of ``kind`` ready to run and not dispatched recently, oldest first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.kind == kind,
                Job.status == "queued",
                Job.next_attempt_at <= now,
                or_(Job.dispatched_at.is_(None), Job.dispatched_at < now - redispatch_after),
                Job.attempt < Job.max_attempts,
            )
            .order_by(Job.next_attempt_at, Job.id)
            .limit(limit)
        )
    )


def mark_dispatched(session: Session, job_ids: Sequence[uuid.UUID], *, now: datetime | None = None) -> None:
    if not job_ids:
        return
    session.execute(
        update(Job)
        .where(and_(Job.id.in_(list(job_ids)), Job.status == "queued"))
        .values(dispatched_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def run_key(job: Job) -> str:
    """Dagster never launches the same run key twice: one key per job attempt."""
    return f"{job.id}:{job.attempt + 1}"


# -- reads the Dagster side makes (assets, sensors): named here so SQL stays in warehouse/ -------------------------
def status_of(session: Session, job_id: uuid.UUID, workspace_id: uuid.UUID | None = None) -> str | None:
    query = select(Job.status).where(Job.id == job_id)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    return session.scalar(query)


def attempts_state(session: Session, job_id: uuid.UUID, workspace_id: uuid.UUID):
    """``(status, attempt, max_attempts)`` of a job, or None."""
    return session.execute(select(Job.status, Job.attempt, Job.max_attempts)
                           .where(Job.id == job_id, Job.workspace_id == workspace_id)).one_or_none()


def run_state(session: Session, job_id: uuid.UUID):
    """``(status, attempt, dagster_run_id)`` of a job, or None."""
    return session.execute(select(Job.status, Job.attempt, Job.dagster_run_id).where(Job.id == job_id)).first()


def newest_for_partition(session: Session, kind: str, partition_key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.kind == kind, Job.partition_key == partition_key)
                          .order_by(Job.created_at.desc(), Job.id.desc()).limit(1))

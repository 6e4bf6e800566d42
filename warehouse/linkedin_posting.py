"""SQL of LinkedIn drafts, schedules and post attempts: the owner of ``draft.status``, ``schedule.status``
and ``post_attempt.status``.

Every status change is a conditional update on the status (and, for a draft's text and approval, on its
``revision``) the caller saw, checked against the state machines in ``pipelines/linkedin/drafts.py``: of
two concurrent writers exactly one wins, and the loser learns it (``False``/``None``) instead of silently
overwriting. Posting's exactly-once rests on three things here: a schedule is claimed by one conditional
update, a ``post_attempt`` row is committed before the request is sent, and the outcome (attempt, schedule
and draft) is recorded in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from pipelines.linkedin.drafts import check_draft_transition, check_schedule_transition, content_sha256
from warehouse.db import utcnow
from warehouse.linkedin_models import LIVE_SCHEDULE_STATUSES, Draft, PostAttempt, Schedule
from warehouse.models import Job

UNSCHEDULABLE = ("scheduled", "paused", "blocked_reauth")  # a schedule no run has claimed yet


# -- drafts (owner of draft.status) ---------------------------------------------------------------------------
def create_draft(session: Session, *, workspace_id: uuid.UUID, text: str, source: str, author_id: uuid.UUID | None,
                 persona_version_id: uuid.UUID | None = None, pack_version_id: uuid.UUID | None = None,
                 generation_job_id: uuid.UUID | None = None, offline: bool = False) -> Draft:
    draft = Draft(id=uuid.uuid4(), workspace_id=workspace_id, text=text, status="draft", source=source, revision=1,
                  author_id=author_id, persona_version_id=persona_version_id, pack_version_id=pack_version_id,
                  generation_job_id=generation_job_id, offline=offline)
    session.add(draft)
    session.flush()
    return draft


def draft_of(session: Session, workspace_id: uuid.UUID, draft_id: uuid.UUID) -> Draft | None:
    return session.scalar(select(Draft).where(Draft.workspace_id == workspace_id, Draft.id == draft_id))


def draft_of_job(session: Session, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Draft | None:
    return session.scalar(select(Draft).where(Draft.workspace_id == workspace_id, Draft.generation_job_id == job_id))


def drafts_query(workspace_id: uuid.UUID, status: str | None = None):
    query = select(Draft).where(Draft.workspace_id == workspace_id)
    return query.where(Draft.status == status) if status else query


def _draft_update(session: Session, draft: Draft, values: dict[str, Any], *, revision: int | None = None) -> bool:
    """Apply ``values`` only if the draft still has the status (and revision) this caller read."""
    conditions = [Draft.workspace_id == draft.workspace_id, Draft.id == draft.id, Draft.status == draft.status]
    if revision is not None:
        conditions.append(Draft.revision == revision)
    result = session.execute(update(Draft).where(*conditions).values(**values, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    if result.rowcount == 1:
        session.refresh(draft)
        return True
    return False


def transition_draft(session: Session, draft: Draft, target: str, **values: Any) -> bool:
    check_draft_transition(draft.status, target)
    return _draft_update(session, draft, {"status": target, **values})


def edit_draft(session: Session, draft: Draft, new_text: str, *, seen_revision: int) -> bool:
    """Replace the text. A change voids any approval and sends a reviewed draft back to ``draft``; a
    scheduled draft's unclaimed schedule is canceled in the same transaction."""
    status = draft.status
    if status in ("in_review", "approved", "scheduled", "rejected"):
        status = check_draft_transition(status, "draft").value
    if draft.status == "scheduled" and not cancel_live_schedule(session, draft):
        return False  # claimed by a run meanwhile: the text is being sent
    return _draft_update(session, draft, {"text": new_text, "status": status, "revision": Draft.revision + 1,
                                          "approved_sha256": None, "approved_by": None, "approved_at": None},
                         revision=seen_revision)


def approve_draft(session: Session, draft: Draft, *, approver_id: uuid.UUID, seen_revision: int, at: datetime) -> bool:
    """Record the SHA-256 of the text as of ``seen_revision``; an edit that landed first makes this fail."""
    check_draft_transition(draft.status, "approved")
    return _draft_update(session, draft, {"status": "approved", "approved_sha256": content_sha256(draft.text),
                                          "approved_by": approver_id, "approved_at": at}, revision=seen_revision)


# -- schedules (owner of schedule.status) ---------------------------------------------------------------------
def create_schedule(session: Session, draft: Draft, *, account_id: uuid.UUID, publish_at: datetime,
                    created_by: uuid.UUID | None) -> Schedule | None:
    """approved → scheduled with one live schedule (None when the draft changed meanwhile)."""
    if not transition_draft(session, draft, "scheduled"):
        return None
    schedule = Schedule(id=uuid.uuid4(), workspace_id=draft.workspace_id, draft_id=draft.id, account_id=account_id,
                        publish_at=publish_at, next_attempt_at=publish_at, status="scheduled", claims=0, backoffs=0,
                        evidence={}, created_by=created_by)
    session.add(schedule)
    session.flush()
    return schedule


def current_schedules(session: Session, workspace_id: uuid.UUID, draft_ids: list[uuid.UUID]) -> dict[uuid.UUID, Schedule]:
    """Draft id -> its live schedule, else its newest one (one query for a page of drafts)."""
    if not draft_ids:
        return {}
    rows = session.scalars(select(Schedule).where(Schedule.workspace_id == workspace_id,
                                                  Schedule.draft_id.in_(draft_ids))
                           .order_by(Schedule.created_at, Schedule.id))
    current: dict[uuid.UUID, Schedule] = {}
    for row in rows:
        held = current.get(row.draft_id)
        if held is None or held.status not in LIVE_SCHEDULE_STATUSES:
            current[row.draft_id] = row
    return current


def cancel_live_schedule(session: Session, draft: Draft) -> bool:
    """Cancel the draft's schedule if no run has claimed it (True), else False."""
    result = session.execute(
        update(Schedule)
        .where(Schedule.workspace_id == draft.workspace_id, Schedule.draft_id == draft.id,
               Schedule.status.in_(UNSCHEDULABLE))
        .values(status="canceled", updated_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount == 1


def unschedule(session: Session, draft: Draft) -> bool:
    return cancel_live_schedule(session, draft) and transition_draft(session, draft, "approved")


def resolve_needs_review(session: Session, draft: Draft, outcome: str, *, post_urn: str | None,
                         note: str | None) -> bool:
    """A person decides an undecided post: the schedule (needs_review) and its draft (publishing) together."""
    schedule = session.scalar(select(Schedule).where(Schedule.workspace_id == draft.workspace_id,
                                                     Schedule.draft_id == draft.id, Schedule.status == "needs_review"))
    if schedule is None:
        return False
    check_schedule_transition(schedule.status, outcome)
    result = session.execute(update(Schedule).where(Schedule.id == schedule.id, Schedule.status == "needs_review")
                             .values(status=outcome, post_urn=post_urn, error_message=note, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    return transition_draft(session, draft, outcome, post_urn=post_urn)


def cancel_draft(session: Session, draft: Draft) -> bool:
    """Cancel a draft that no run is publishing (its unclaimed schedule is canceled with it)."""
    if draft.status == "scheduled" and not cancel_live_schedule(session, draft):
        return False
    return transition_draft(session, draft, "canceled")


@dataclass(frozen=True)
class Claim:
    schedule_id: uuid.UUID
    workspace_id: uuid.UUID
    claims: int  # the run number: run_key "<schedule_id>:<claims>"
    reclaimed: bool  # a stale claim (its run died): the run must reconcile before any send


def claim_due(session: Session, *, now: datetime, limit: int, claim_timeout: timedelta) -> list[Claim]:
    """Claim due schedules (and stale claims) with one conditional update each; drafts go to ``publishing``."""
    candidates = session.execute(
        select(Schedule.id, Schedule.workspace_id, Schedule.status, Schedule.claims, Schedule.draft_id)
        .where(or_(and_(Schedule.status == "scheduled", Schedule.next_attempt_at <= now),
                   and_(Schedule.status == "claimed", Schedule.claimed_at < now - claim_timeout)))
        .order_by(Schedule.next_attempt_at, Schedule.id).limit(limit)).all()
    claimed: list[Claim] = []
    for row in candidates:
        result = session.execute(
            update(Schedule)
            .where(Schedule.id == row.id, Schedule.status == row.status, Schedule.claims == row.claims)
            .values(status="claimed", claims=row.claims + 1, claimed_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            continue  # another tick took it
        if row.status == "scheduled":
            session.execute(update(Draft).where(Draft.id == row.draft_id, Draft.status == "scheduled")
                            .values(status="publishing", updated_at=now).execution_options(synchronize_session=False))
        claimed.append(Claim(row.id, row.workspace_id, row.claims + 1, row.status == "claimed"))
    return claimed


def schedule_of(session: Session, workspace_id: uuid.UUID, schedule_id: uuid.UUID) -> Schedule | None:
    return session.scalar(select(Schedule).where(Schedule.workspace_id == workspace_id, Schedule.id == schedule_id))


def finish_schedule(session: Session, schedule: Schedule, target: str, *, draft_status: str | None,
                    post_urn: str | None = None, next_attempt_at: datetime | None = None,
                    error_code: str | None = None, error_message: str | None = None,
                    evidence: dict[str, Any] | None = None, backoff: bool = False) -> bool:
    """Move a claimed schedule (conditional on ``claimed`` and its run number) and its draft together."""
    check_schedule_transition(schedule.status, target)
    values: dict[str, Any] = {"status": target, "updated_at": utcnow(), "error_code": error_code,
                              "error_message": error_message}
    if post_urn:
        values["post_urn"] = post_urn
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if evidence is not None:
        values["evidence"] = evidence
    if backoff:
        values["backoffs"] = Schedule.backoffs + 1
    result = session.execute(update(Schedule).where(Schedule.id == schedule.id, Schedule.status == schedule.status,
                                                    Schedule.claims == schedule.claims)
                             .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    if draft_status is not None:
        draft_values: dict[str, Any] = {"status": draft_status, "updated_at": utcnow()}
        if post_urn:
            draft_values["post_urn"] = post_urn
        session.execute(update(Draft).where(Draft.id == schedule.draft_id, Draft.status == "publishing")
                        .values(**draft_values).execution_options(synchronize_session=False))
    return True


# -- post attempts (owner of post_attempt.status) -------------------------------------------------------------
def attempts_of(session: Session, schedule_id: uuid.UUID) -> list[PostAttempt]:
    return list(session.scalars(select(PostAttempt).where(PostAttempt.schedule_id == schedule_id)
                                .order_by(PostAttempt.attempt)))


def attempts_of_draft(session: Session, workspace_id: uuid.UUID, draft_id: uuid.UUID) -> list[PostAttempt]:
    return list(session.scalars(
        select(PostAttempt).join(Schedule, and_(Schedule.id == PostAttempt.schedule_id,
                                                Schedule.workspace_id == PostAttempt.workspace_id))
        .where(PostAttempt.workspace_id == workspace_id, Schedule.draft_id == draft_id)
        .order_by(PostAttempt.created_at, PostAttempt.attempt)))


def begin_attempt(session: Session, schedule: Schedule, *, fingerprint: str, reconciling: bool,
                  api_version: str | None) -> PostAttempt:
    """The attempt row, status ``sending``: the caller commits it BEFORE the request goes out."""
    number = (session.scalar(select(func.max(PostAttempt.attempt)).where(PostAttempt.schedule_id == schedule.id)) or 0) + 1
    attempt = PostAttempt(workspace_id=schedule.workspace_id, schedule_id=schedule.id, account_id=schedule.account_id,
                          attempt=number, fingerprint=fingerprint, reconciling=reconciling, status="sending",
                          api_version=api_version)
    session.add(attempt)
    session.flush()
    return attempt


def finish_attempt(session: Session, attempt_id: uuid.UUID, status: str, *, http_status: int | None = None,
                   post_urn: str | None = None, error_code: str | None = None, message: str | None = None) -> None:
    session.execute(update(PostAttempt).where(PostAttempt.id == attempt_id)
                    .values(status=status, http_status=http_status, post_urn=post_urn, error_code=error_code,
                            message=message, finished_at=utcnow()).execution_options(synchronize_session=False))


def sends_since(session: Session, since: datetime, *, account_id: uuid.UUID | None = None) -> int:
    """Attempts that may have reached LinkedIn since ``since`` (the daily budgets count these)."""
    query = select(func.count()).select_from(PostAttempt).where(PostAttempt.created_at >= since,
                                                                PostAttempt.status != "retry")
    if account_id is not None:
        query = query.where(PostAttempt.account_id == account_id)
    return int(session.scalar(query) or 0)


def claims_of_jobs(session: Session, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """``linkedin_post`` job id -> the schedule run number in its payload (the sensor's run keys)."""
    if not job_ids:
        return {}
    rows = session.execute(select(Job.id, Job.payload).where(Job.id.in_(job_ids))).all()
    return {row.id: int((row.payload or {}).get("claims", 0)) for row in rows}

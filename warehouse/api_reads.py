"""The tenant-scoped lookups and list queries behind the platform's API routes (jobs, events, artifacts, tokens).

Each function takes the caller's workspace id and filters on it, whatever the session's scope: a foreign id finds
nothing (the route answers 404). List queries come back as ``Select`` statements for the API's keyset pagination.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine, Select, select, text
from sqlalchemy.orm import Session

from warehouse.models import ApiToken, Artifact, AuditLog, Job, JobEvent, Membership


def job_by_id(session: Session, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return session.scalar(select(Job).where(Job.workspace_id == workspace_id, Job.id == job_id))


def jobs_query(workspace_id: uuid.UUID, *, status: str | None = None, kind: str | None = None,
               created_after: datetime | None = None, created_before: datetime | None = None) -> Select:
    query = select(Job).where(Job.workspace_id == workspace_id)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if created_after:
        query = query.where(Job.created_at > created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    return query


def job_events_query(workspace_id: uuid.UUID, job_id: uuid.UUID) -> Select:
    return select(JobEvent).where(JobEvent.workspace_id == workspace_id, JobEvent.job_id == job_id)


def artifact_by_id(session: Session, workspace_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.workspace_id == workspace_id, Artifact.id == artifact_id))


def artifacts_query(workspace_id: uuid.UUID, *, job_id: uuid.UUID | None = None) -> Select:
    query = select(Artifact).where(Artifact.workspace_id == workspace_id)
    return query if job_id is None else query.where(Artifact.job_id == job_id)


def tokens_query(workspace_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> Select:
    """The workspace's tokens; only ``user_id``'s when given (what a non-admin may see)."""
    query = select(ApiToken).where(ApiToken.workspace_id == workspace_id)
    return query if user_id is None else query.where(ApiToken.user_id == user_id)


def token_by_id(session: Session, workspace_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.workspace_id == workspace_id, ApiToken.id == token_id))


def member_role(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return session.scalar(select(Membership.role).where(Membership.workspace_id == workspace_id,
                                                        Membership.user_id == user_id))


def database_answers(engine: Engine) -> None:
    """Raise unless the database answers a trivial query (the readiness probe)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def audit_query(workspace_id: uuid.UUID, *, action: str | None = None, target_type: str | None = None,
                target_id: str | None = None, actor_user_id: uuid.UUID | None = None,
                created_after: datetime | None = None, created_before: datetime | None = None) -> Select:
    """The workspace's audit entries matching the filters; ``action`` ending in ``.`` matches a prefix
    (``draft.`` is every draft transition)."""
    query = select(AuditLog).where(AuditLog.workspace_id == workspace_id)
    if action:
        query = query.where(AuditLog.action.startswith(action, autoescape=True) if action.endswith(".")
                            else AuditLog.action == action)
    if target_type:
        query = query.where(AuditLog.target_type == target_type)
    if target_id:
        query = query.where(AuditLog.target_id == target_id)
    if actor_user_id:
        query = query.where(AuditLog.actor_user_id == actor_user_id)
    if created_after:
        query = query.where(AuditLog.created_at > created_after)
    if created_before:
        query = query.where(AuditLog.created_at < created_before)
    return query

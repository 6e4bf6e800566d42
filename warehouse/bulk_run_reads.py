"""The lookups behind ``api/routes/bulk_runs.py``: runs, their rows, and what a restart still needs stored.

Every query is scoped by workspace. Status changes of a run stay in ``warehouse/documents.py`` (their owner).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from warehouse.documents import BulkRow, BulkRun, TemplateVersion
from warehouse.models import Artifact, Job


def bulk_run_by_id(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> BulkRun | None:
    return session.scalar(select(BulkRun).where(BulkRun.workspace_id == workspace_id, BulkRun.id == run_id))


def bulk_runs_query(workspace_id: uuid.UUID) -> Select:
    return select(BulkRun).where(BulkRun.workspace_id == workspace_id)


def bulk_rows_query(workspace_id: uuid.UUID, run_id: uuid.UUID, status: str | None = None) -> Select:
    query = select(BulkRow).where(BulkRow.workspace_id == workspace_id, BulkRow.bulk_run_id == run_id)
    return query if status is None else query.where(BulkRow.status == status)


def available_artifacts(session: Session, workspace_id: uuid.UUID,
                        ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Artifact]:
    """The available artifacts among ``ids``, by id: one query however many ids."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {a.id: a for a in session.scalars(select(Artifact).where(
        Artifact.workspace_id == workspace_id, Artifact.id.in_(wanted), Artifact.status == "available"))}


def jobs_by_id(session: Session, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, Job]:
    return {j.id: j for j in session.scalars(select(Job).where(Job.workspace_id == workspace_id, Job.id.in_(ids)))}


def versions_by_id(session: Session, workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, TemplateVersion]:
    return {v.id: v for v in session.scalars(select(TemplateVersion).where(
        TemplateVersion.workspace_id == workspace_id, TemplateVersion.id.in_(ids)))}


def add_bulk_run(session: Session, run: BulkRun, source: Artifact | None) -> None:
    """Insert a new run and, when it came as an upload, its spreadsheet's artifact (first: the run points at it)."""
    if source is not None:
        session.add(source)
        session.flush()
    session.add(run)
    session.flush()


def _gone(now: datetime) -> ColumnElement[bool]:
    """Artifacts a restart can no longer use: deleted by retention, or past their expiry (about to be)."""
    return or_(Artifact.status != "available", Artifact.expires_at <= now)


def input_gone(session: Session, run: BulkRun, now: datetime) -> bool:
    return run.input_artifact_id is not None and session.scalar(select(Artifact.id).where(
        Artifact.workspace_id == run.workspace_id, Artifact.id == run.input_artifact_id, _gone(now))) is not None


def succeeded_rows_without_files(session: Session, run: BulkRun, now: datetime) -> int:
    """How many succeeded rows lost a file (DOCX or PDF) the ZIP would be rebuilt from (the larger count)."""
    lost = 0
    for column in (BulkRow.docx_artifact_id, BulkRow.pdf_artifact_id):
        lost = max(lost, session.scalar(select(func.count()).select_from(BulkRow).join(Artifact, (
            Artifact.workspace_id == BulkRow.workspace_id) & (Artifact.id == column)).where(
            BulkRow.workspace_id == run.workspace_id, BulkRow.bulk_run_id == run.id,
            BulkRow.status == "succeeded", _gone(now))) or 0)
    return lost

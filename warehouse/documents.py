"""Tables of the Document generation product: templates, their immutable versions and fields,
bulk runs and their rows.

Every row carries ``workspace_id`` and children point at parents through ``(workspace_id, id)``
composite foreign keys, so nothing can reference another tenant's rows. Constraints that carry
the product's guarantees:

- ``template_version``: unique ``(template_id, version)`` and ``(template_id, content_sha256)``:
  versions are immutable and the same bytes uploaded twice are the same version;
- ``template_field``: unique ``(template_version_id, name)``;
- ``bulk_row``: unique ``(bulk_run_id, row_index)``: a row's outcome is recorded once, so a resumed
  or repeated run can never produce a row twice; ``(bulk_run_id, status)`` serves "failed rows".

This module owns ``bulk_run.status`` (like ``warehouse/jobs.py`` owns ``job.status``): the routes and the
bulk engine change it, and the run's counters, only through the functions at the end of this file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from warehouse.db import utcnow
from warehouse.models import Base, TimestampMixin, _in, new_id

TEMPLATE_STATUSES = ("valid", "invalid")
FIELD_KINDS = ("value", "loop", "condition", "image")
OUTPUT_FORMATS = ("docx", "pdf", "both")
BULK_RUN_STATUSES = ("queued", "running", "succeeded", "partially_succeeded", "failed")
BULK_ROW_STATUSES = ("succeeded", "failed")

DOCUMENT_TABLES = ("template", "template_version", "template_field", "bulk_run", "bulk_row")


class Template(TimestampMixin, Base):
    """A named Word template; its content lives in immutable versions."""

    __tablename__ = "template"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        Index("ix_template_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class TemplateVersion(Base):
    """One uploaded .docx of a template, addressed by its SHA-256; never changed after insert."""

    __tablename__ = "template_version"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        UniqueConstraint("template_id", "version"),
        UniqueConstraint("template_id", "content_sha256"),
        CheckConstraint(_in("status", TEMPLATE_STATUSES), name="status_valid"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(content_sha256) = 64", name="sha256_length"),
        ForeignKeyConstraint(["workspace_id", "template_id"], ["template.workspace_id", "template.id"],
                             ondelete="CASCADE"),
        ForeignKeyConstraint(["workspace_id", "artifact_id"], ["artifact.workspace_id", "artifact.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    template_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    artifact_id: Mapped[uuid.UUID] = mapped_column(nullable=False)  # the uploaded .docx (kind "input")
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    syntax: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class TemplateField(Base):
    """A field detected in a template version."""

    __tablename__ = "template_field"
    __table_args__ = (
        UniqueConstraint("template_version_id", "name"),
        CheckConstraint(_in("kind", FIELD_KINDS), name="kind_valid"),
        ForeignKeyConstraint(["workspace_id", "template_version_id"],
                             ["template_version.workspace_id", "template_version.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    template_version_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False)
    locations: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    children: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)


class BulkRun(TimestampMixin, Base):
    """Filling one template version for every row of a spreadsheet; driven by jobs of kind
    ``documents_bulk`` (one per start, resume or retry), whose partition key is this row's id."""

    __tablename__ = "bulk_run"
    __table_args__ = (
        UniqueConstraint("workspace_id", "id"),
        CheckConstraint(_in("status", BULK_RUN_STATUSES), name="status_valid"),
        CheckConstraint(_in("output_format", OUTPUT_FORMATS), name="format_valid"),
        CheckConstraint("succeeded_rows >= 0 AND failed_rows >= 0", name="counts_non_negative"),
        ForeignKeyConstraint(["workspace_id", "template_version_id"],
                             ["template_version.workspace_id", "template_version.id"]),
        ForeignKeyConstraint(["workspace_id", "job_id"], ["job.workspace_id", "job.id"]),
        ForeignKeyConstraint(["workspace_id", "input_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        ForeignKeyConstraint(["workspace_id", "zip_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        ForeignKeyConstraint(["workspace_id", "report_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        Index("ix_bulk_run_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    template_version_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    job_id: Mapped[uuid.UUID] = mapped_column(nullable=False)  # the latest job working on this run
    input_artifact_id: Mapped[uuid.UUID | None] = mapped_column()  # None until a source_url is fetched
    source_url: Mapped[str | None] = mapped_column(String(2048))
    output_format: Mapped[str] = mapped_column(String(8), nullable=False)
    filename_pattern: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="queued")
    total_rows: Mapped[int | None] = mapped_column(Integer)
    succeeded_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    zip_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    report_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column()


class BulkRow(Base):
    """The outcome of one spreadsheet row (1-based data row number), written once it is known."""

    __tablename__ = "bulk_row"
    __table_args__ = (
        UniqueConstraint("bulk_run_id", "row_index"),
        CheckConstraint(_in("status", BULK_ROW_STATUSES), name="status_valid"),
        CheckConstraint("row_index >= 1", name="row_index_positive"),
        ForeignKeyConstraint(["workspace_id", "bulk_run_id"], ["bulk_run.workspace_id", "bulk_run.id"],
                             ondelete="CASCADE"),
        ForeignKeyConstraint(["workspace_id", "docx_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        ForeignKeyConstraint(["workspace_id", "pdf_artifact_id"], ["artifact.workspace_id", "artifact.id"]),
        Index("ix_bulk_row_run_status", "bulk_run_id", "status", "row_index"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    bulk_run_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    row_index: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Names inside the ZIP (unique per run, case-insensitively) and the outputs' per-row artifacts.
    docx_filename: Mapped[str | None] = mapped_column(String(255))
    pdf_filename: Mapped[str | None] = mapped_column(String(255))
    docx_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    pdf_artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    docx_sha256: Mapped[str | None] = mapped_column(String(64))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


# --------------------------------------------------------------------------- bulk_run: the one owner of its status
# queued (new, or restarted) -> running (the engine started) -> succeeded | partially_succeeded | failed.


def new_bulk_run(**fields: Any) -> BulkRun:
    """A new bulk run row, ``queued`` (the caller adds it in the transaction that submits its job)."""
    return BulkRun(status="queued", **fields)


def claim_bulk_run_restart(session: Session, run: BulkRun, *, finished_job_id: uuid.UUID) -> bool:
    """Compare-and-set before a restart queues anything: True only while the run still points at the finished
    job the caller checked (a rival restart moved ``job_id``). Also the transaction's first write, on purpose."""
    return session.execute(update(BulkRun).where(
        BulkRun.workspace_id == run.workspace_id, BulkRun.id == run.id, BulkRun.job_id == finished_job_id,
    ).values(updated_at=utcnow())).rowcount == 1


def requeue_bulk_run(session: Session, run: BulkRun, *, job_id: uuid.UUID) -> None:
    """The run's new job was queued: follow it, ``queued`` again."""
    session.execute(update(BulkRun).where(BulkRun.workspace_id == run.workspace_id, BulkRun.id == run.id).values(
        job_id=job_id, status="queued", updated_at=utcnow()))


def start_bulk_run(session: Session, bulk_run_id: uuid.UUID) -> None:
    session.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(status="running", updated_at=utcnow()))


def set_bulk_run_counts(session: Session, bulk_run_id: uuid.UUID, *, succeeded_rows: int, failed_rows: int,
                        total_rows: int | None = None, now: datetime | None = None) -> None:
    values: dict[str, Any] = {"succeeded_rows": succeeded_rows, "failed_rows": failed_rows,
                              "updated_at": now or utcnow()}
    if total_rows is not None:
        values["total_rows"] = total_rows
    session.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(**values))


def count_bulk_rows(session: Session, workspace_id: uuid.UUID, bulk_run_id: uuid.UUID, total: int) -> tuple[int, int]:
    """(succeeded, failed) rows recorded among the first ``total``, counted in the database."""
    counted = dict(session.execute(select(BulkRow.status, func.count()).where(
        BulkRow.workspace_id == workspace_id, BulkRow.bulk_run_id == bulk_run_id,
        BulkRow.row_index <= total).group_by(BulkRow.status)).all())
    return counted.get("succeeded", 0), counted.get("failed", 0)


def finish_bulk_run(session: Session, bulk_run_id: uuid.UUID, *, succeeded: int, failed: int,
                    zip_artifact_id: uuid.UUID, report_artifact_id: uuid.UUID) -> str:
    """Every row has an outcome: ``succeeded``, ``failed`` (none succeeded) or ``partially_succeeded``."""
    status = "succeeded" if failed == 0 else "failed" if succeeded == 0 else "partially_succeeded"
    session.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(
        status=status, zip_artifact_id=zip_artifact_id, report_artifact_id=report_artifact_id, updated_at=utcnow()))
    return status


def fail_bulk_run(session: Session, bulk_run_id: uuid.UUID) -> None:
    session.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(status="failed", updated_at=utcnow()))


def set_bulk_run_input(session: Session, bulk_run_id: uuid.UUID, input_artifact_id: uuid.UUID) -> None:
    """The fetched ``source_url`` is stored: later attempts read this artifact instead of fetching again."""
    session.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(input_artifact_id=input_artifact_id))


# --------------------------------------------------------------------------- queries and row outcomes of the bulk engine


def bulk_run_of(session: Session, workspace_id: uuid.UUID, bulk_run_id: uuid.UUID) -> BulkRun | None:
    return session.scalar(select(BulkRun).where(BulkRun.workspace_id == workspace_id, BulkRun.id == bulk_run_id))


def template_version_by_id(session: Session, version_id: uuid.UUID) -> TemplateVersion | None:
    return session.scalar(select(TemplateVersion).where(TemplateVersion.id == version_id))


def recorded_rows(session: Session, bulk_run_id: uuid.UUID) -> dict[int, BulkRow]:
    """The run's recorded row outcomes by row number, detached from the session (read-only snapshots)."""
    recorded = {r.row_index: r for r in session.scalars(select(BulkRow).where(BulkRow.bulk_run_id == bulk_run_id))}
    for row in recorded.values():
        session.expunge(row)
    return recorded


def record_row_outcome(session: Session, workspace_id: uuid.UUID, bulk_run_id: uuid.UUID, row_index: int, *,
                       previous: BulkRow | None, attempts: int, outcome: dict[str, Any]) -> None:
    """A row's outcome: inserted the first time, updated (attempts added up) when an earlier attempt failed it."""
    if previous is None:
        session.add(BulkRow(workspace_id=workspace_id, bulk_run_id=bulk_run_id, row_index=row_index,
                            attempts=attempts, **outcome))
    else:
        session.execute(update(BulkRow).where(BulkRow.id == previous.id).values(
            attempts=previous.attempts + attempts, **outcome))


def succeeded_row_files(session: Session, workspace_id: uuid.UUID, bulk_run_id: uuid.UUID) -> list[Any]:
    """(row, docx name, docx key, pdf name, pdf key) of every succeeded row, in row order."""
    from sqlalchemy.orm import aliased

    from warehouse.models import Artifact

    docx, pdf = aliased(Artifact), aliased(Artifact)
    return list(session.execute(
        select(BulkRow.row_index, BulkRow.docx_filename, docx.storage_key, BulkRow.pdf_filename, pdf.storage_key)
        .outerjoin(docx, docx.id == BulkRow.docx_artifact_id)
        .outerjoin(pdf, pdf.id == BulkRow.pdf_artifact_id)
        .where(BulkRow.workspace_id == workspace_id, BulkRow.bulk_run_id == bulk_run_id,
               BulkRow.status == "succeeded")
        .order_by(BulkRow.row_index)).all())


def rows_in_order(session: Session, bulk_run_id: uuid.UUID) -> Iterator[BulkRow]:
    """Every recorded row of the run in row order, streamed (for the report)."""
    query = select(BulkRow).where(BulkRow.bulk_run_id == bulk_run_id).order_by(BulkRow.row_index)
    yield from session.scalars(query.execution_options(yield_per=500))


def output_formats(session: Session, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Bulk run id -> its output format (``docx``, ``pdf`` or ``both``), for the runs that exist."""
    return dict(session.execute(select(BulkRun.id, BulkRun.output_format).where(BulkRun.id.in_(run_ids))).all())

"""Row work of the bulk-run engine: check, render, convert and persist one batch of rows.

``assets/documents/bulk.py`` drives the run (which rows, in which batches, pipelined); this module
does what happens to each batch. Split out so each part stays readable; no Dagster import.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.documents.errors import clean_message
from pipelines.documents.fields import TemplateAnalysis
from pipelines.documents.render import PreparedTemplate, render_docx
from pipelines.documents.tabular import RowError, unescape_literal, validate_row
from pipelines.errors import KilnError
from resources.objectstore import ObjectStore, PutItem, artifact_key, file_chunks, sanitize_filename
from resources.settings import Settings, get_settings
from warehouse import documents as bulk_store
from warehouse.artifacts import expiry
from warehouse.db import utcnow
from warehouse.models import Artifact

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"


@dataclass
class Pending:
    """A row rendered in this batch, waiting for conversion and storing."""

    index: int
    values: dict[str, str]
    docx: Path
    pdf: Path | None = None
    error: RowError | None = None
    attempts: int = 1


@dataclass
class BulkEnv:
    """What the engine needs from its host (the asset, a benchmark, a test)."""

    sessions: Callable[[], Any]  # a context manager: one tenant-scoped transaction
    store: ObjectStore
    workspace_id: uuid.UUID
    job_id: uuid.UUID
    converter: Any = None  # DocumentConverter, needed for pdf / both
    progress: Callable[[int], None] = lambda percent: None
    asset_key: str | None = None
    run_id: str | None = None
    settings: Settings = field(default_factory=get_settings)
    log: Any = None


def row_artifact_id(bulk_run_id: uuid.UUID, row_index: int, extension: str, attempt_key: int) -> uuid.UUID:
    return uuid.uuid5(bulk_run_id, f"row/{row_index}/{extension}/{attempt_key}")


def typed_values(row: dict[str, str], analysis: TemplateAnalysis) -> dict[str, Any] | RowError:
    """Cells are text ("'=1+1" is the escaped literal "=1+1"); a loop field's cell must hold a JSON
    array (of objects or values). Image fields' cells go to the renderer, which checks them."""
    values: dict[str, Any] = {name: unescape_literal(value) for name, value in row.items()}
    for f in analysis.fields:
        if f.kind == "loop" and f.name in row and row[f.name].strip():
            try:
                parsed = json.loads(row[f.name])
            except (ValueError, RecursionError):  # RecursionError: a cell of 100,000 nested '['
                parsed = None
            if not isinstance(parsed, list):
                return RowError("wrong_type", f"Column {f.name!r} must hold a JSON array for the loop it feeds.")
            values[f.name] = parsed
    return values


def render_row(template: PreparedTemplate, index: int, row: dict[str, str], out: Path) -> Pending:
    """One row's document, or its error: whatever goes wrong with one row fails that row, never the run."""
    pending = Pending(index, row, out)
    try:
        problem = validate_row(row, template.analysis.required_names())
        if problem is None:
            values = typed_values(row, template.analysis)
            if isinstance(values, RowError):
                problem = values
            else:
                render_docx(template, values, str(out), check_required=False)
    except KilnError as exc:
        problem = RowError(exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - a row's data must not stop the run (nor retry it for ever)
        problem = RowError("render_failed",
                           clean_message(f"The row could not be filled: {type(exc).__name__}: {exc}")[:2000])
    pending.error = problem
    return pending


def convert_rows(env: BulkEnv, pending: list[Pending]) -> None:
    """PDF for every rendered row, batched on the warm converter; transient failures retried per row."""
    todo = [p for p in pending if p.error is None]
    retries = env.settings.documents_conversion_retries
    for attempt in range(retries + 1):
        if not todo:
            return
        results = env.converter.convert_batch([p.docx for p in todo])
        again = []
        for p, result in zip(todo, results):
            p.attempts = attempt + 1
            if result.error is None:
                p.pdf = result.pdf
            elif result.error.retryable and attempt < retries:
                again.append(p)
            else:
                p.error = RowError(result.error.code, result.error.message)
        todo = again


def prepare_batch(env, template, fmt, batch, scratch) -> list[Pending]:
    pending = [render_row(template, index, row, scratch / f"{index:07d}.docx") for index, row in batch]
    if fmt != "docx":
        convert_rows(env, pending)
    return pending


def persist_batch(env, bulk_run_id, fmt, allocator, pending, recorded, counts) -> None:
    """Store the batch's files, then commit its outcomes, artifacts and the run's counters at once.

    The files go through ``ObjectStore.put_many``: one durability barrier for the whole batch (group
    commit), and it returns only once every file is durable, so the commit below, which marks rows
    ``succeeded``, always follows the barrier. A crash between the two leaves rows without an
    outcome; the redo writes the same keys (ids derive from the row) and overwrites them. Names are
    allocated first, in row order, so they do not depend on write timing.
    """
    now = utcnow()
    outcomes: list[tuple[Pending, dict]] = []
    files: list[tuple[dict, str, uuid.UUID, str, Path, str, str]] = []  # outcome, ext, id, key, path, name, type
    for p in pending:
        previous = recorded.get(p.index)
        outcome = {"status": "failed", "error_code": None, "error_message": None, "docx_filename": None,
                   "pdf_filename": None, "docx_artifact_id": None, "pdf_artifact_id": None,
                   "docx_sha256": None, "pdf_sha256": None, "updated_at": now}
        if p.error is not None:
            outcome.update(error_code=p.error.code, error_message=p.error.message[:2000])
            p.docx.unlink(missing_ok=True)  # failed rows keep no files: nothing half-made to clean up later
        else:
            outcome["status"] = "succeeded"
            attempt_key = previous.attempts if previous is not None else 0
            extension = "pdf" if fmt == "pdf" else "docx"
            name = allocator.allocate(p.values, p.index, extension)
            wanted = []
            if fmt in ("docx", "both"):
                wanted.append(("docx", p.docx, name, DOCX_TYPE))
            if fmt in ("pdf", "both"):
                pdf_name = name if fmt == "pdf" else f"{name[: -len(extension) - 1]}.pdf"
                allocator.reserve(pdf_name)
                wanted.append(("pdf", p.pdf, pdf_name, PDF_TYPE))
            for ext, path, filename, content_type in wanted:
                artifact_id = row_artifact_id(bulk_run_id, p.index, ext, attempt_key)
                key = artifact_key(env.workspace_id, "intermediate", bulk_run_id, artifact_id, f"row-{p.index:07d}.{ext}")
                files.append((outcome, ext, artifact_id, key, path, filename, content_type))
        outcomes.append((p, outcome))

    puts = env.store.put_many([PutItem(f[3], file_chunks(f[4]), content_type=f[6]) for f in files])
    ttl = env.settings.retention_ttl("intermediate")
    with env.sessions() as s:
        for (outcome, ext, artifact_id, _key, _path, filename, content_type), put in zip(files, puts):
            s.add(Artifact(id=artifact_id, workspace_id=env.workspace_id, kind="intermediate", storage_key=put.key,
                           sha256=put.sha256, size_bytes=put.size_bytes, content_type=content_type,
                           filename=sanitize_filename(filename), job_id=env.job_id, asset_key=env.asset_key,
                           run_id=env.run_id, expires_at=expiry(ttl, now=now)))
            outcome.update({f"{ext}_filename": filename, f"{ext}_artifact_id": artifact_id, f"{ext}_sha256": put.sha256})
        s.flush()  # artifacts before the rows that reference them
        for p, outcome in outcomes:
            previous = recorded.get(p.index)
            if previous is not None:
                counts[previous.status] -= 1
            bulk_store.record_row_outcome(s, env.workspace_id, bulk_run_id, p.index, previous=previous,
                                          attempts=p.attempts, outcome=outcome)
            counts[outcome["status"]] += 1
        s.flush()
        bulk_store.set_bulk_run_counts(s, bulk_run_id, succeeded_rows=counts["succeeded"],
                                       failed_rows=counts["failed"], now=now)


"""Row work of the bulk-run engine: check, render, convert and persist one batch of rows.

``assets/documents/bulk.py`` drives the run (which rows, in which batches, pipelined); this module
does what happens to each batch. Split out so each part stays readable; no Dagster import.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.documents.bulk_render import Pending, render_row, typed_values  # noqa: F401 - render_row, typed_values re-exported
from pipelines.documents.tabular import RowError
from resources.objectstore import ObjectStore, PutItem, artifact_key, file_chunks, sanitize_filename
from resources.settings import Settings, get_settings
from warehouse import documents as bulk_store
from warehouse.artifacts import expiry
from warehouse.db import utcnow
from warehouse.models import Artifact

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"


@dataclass
class BulkEnv:
    """What the engine needs from its host (the asset, a benchmark, a test)."""

    sessions: Callable[[], Any]  # a context manager: one tenant-scoped transaction
    store: ObjectStore
    workspace_id: uuid.UUID
    job_id: uuid.UUID
    converter: Any = None  # DocumentConverter or ConverterPool (one per core), needed for pdf / both
    progress: Callable[[int], None] = lambda percent: None
    asset_key: str | None = None
    run_id: str | None = None
    settings: Settings = field(default_factory=get_settings)
    log: Any = None


def row_artifact_id(bulk_run_id: uuid.UUID, row_index: int, extension: str, attempt_key: int) -> uuid.UUID:
    return uuid.uuid5(bulk_run_id, f"row/{row_index}/{extension}/{attempt_key}")


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


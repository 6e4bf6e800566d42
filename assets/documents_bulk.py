"""The bulk-run engine: fill a template for every spreadsheet row, resumably, then ZIP + report.

Plain code (no Dagster import) so the asset, the benchmark and the crash test drive the very same
path. The guarantees, and how they are kept:

- **Row outcomes persist as they go.** Rows are handled in small batches; each batch's per-row
  artifacts and ``bulk_row`` outcomes (and the run's counters) commit in one transaction.
- **Nothing is produced twice.** ``bulk_row`` is unique on ``(bulk_run_id, row_index)`` and a row
  is only processed when it has no outcome yet (``run``/``resume``) or failed (``retry_failed``).
  Per-row artifact ids are derived from ``(bulk_run, row, format)`` (uuid5), so a batch redone
  after a crash between writing objects and committing overwrites the same objects instead of
  orphaning new ones. Output names are allocated after reserving every name already recorded.
- **One bad row never stops the run.** Validation, rendering and conversion errors become that
  row's ``failed`` outcome with a stable ``error_code``; transient conversion failures
  (timeouts) are retried per row first.
- **Outputs stream.** The ZIP is produced by ``archive.zip_chunks`` straight into
  ``ObjectStore.put_stream``; members come from this run's scratch folder or, for rows finished
  by an earlier attempt, are fetched one at a time.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from assets.documents_source import fetch_source
from pipelines.documents.archive import zip_chunks
from pipelines.documents.errors import MissingColumns, RenderFailed, TabularInvalid
from pipelines.documents.fields import TemplateAnalysis
from pipelines.documents.render import PreparedTemplate, prepare_template, render_docx
from pipelines.documents.tabular import FilenameAllocator, ReportWriter, RowError, check_columns, iter_rows, validate_row
from pipelines.errors import KilnError, PermanentError
from resources.objectstore import ObjectStore, artifact_key, sanitize_filename
from resources.settings import Settings, get_settings
from warehouse.artifacts import store_artifact
from warehouse.db import utcnow
from warehouse.documents import BulkRow, BulkRun, TemplateVersion
from warehouse.models import Artifact

KIND = "documents_bulk"
MODES = ("run", "resume", "retry_failed")
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"
CHUNK = 1024 * 1024


@dataclass
class BulkResult:
    total_rows: int
    succeeded_rows: int
    failed_rows: int
    processed_now: int
    zip_artifact_id: uuid.UUID
    report_artifact_id: uuid.UUID


@dataclass
class _Pending:
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


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _ttl(settings: Settings, kind: str) -> timedelta | None:
    days = settings.retention_days(kind)
    return timedelta(days=days) if days and days > 0 else None


def load_prepared(session, store: ObjectStore, version: TemplateVersion) -> PreparedTemplate:
    """The version's template, analysed and translated once for every row of the run."""
    key = session.scalar(select(Artifact.storage_key).where(
        Artifact.workspace_id == version.workspace_id, Artifact.id == version.artifact_id))
    return prepare_template(store.get_bytes(key))


def _typed_values(row: dict[str, str], analysis: TemplateAnalysis) -> dict[str, Any] | RowError:
    """Cells are text; a loop field's cell must hold a JSON array (of objects or values)."""
    values: dict[str, Any] = dict(row)
    for f in analysis.fields:
        if f.kind == "loop" and f.name in row and row[f.name].strip():
            try:
                parsed = json.loads(row[f.name])
            except ValueError:
                parsed = None
            if not isinstance(parsed, list):
                return RowError("wrong_type", f"Column {f.name!r} must hold a JSON array for the loop it feeds.")
            values[f.name] = parsed
    return values


def run_bulk(env: BulkEnv, bulk_run_id: uuid.UUID, mode: str = "run") -> BulkResult:
    """Process the rows ``mode`` selects, then (re)write the ZIP and the report."""
    if mode not in MODES:
        raise PermanentError(f"Unknown bulk mode {mode!r}.", code="invalid_mode")
    settings = env.settings
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bulk-"))
    try:
        with env.sessions() as s:
            run = s.scalar(select(BulkRun).where(BulkRun.workspace_id == env.workspace_id, BulkRun.id == bulk_run_id))
            if run is None:
                raise PermanentError("The bulk run no longer exists.", code="bulk_run_missing")
            version = s.scalar(select(TemplateVersion).where(TemplateVersion.id == run.template_version_id))
            template = load_prepared(s, env.store, version)
            fmt, pattern, input_artifact_id = run.output_format, run.filename_pattern, run.input_artifact_id
            source_url = run.source_url
            s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(status="running", updated_at=utcnow()))
            recorded = {r.row_index: r for r in s.scalars(select(BulkRow).where(BulkRow.bulk_run_id == bulk_run_id))}
            for r in recorded.values():
                s.expunge(r)
        if input_artifact_id is None:
            input_artifact_id = _fetch_input(env, bulk_run_id, source_url)
        rows_path = scratch / "rows"
        with env.sessions() as s:
            key = s.scalar(select(Artifact.storage_key).where(Artifact.id == input_artifact_id))
        env.store.download_to(key, str(rows_path))

        columns, rows = iter_rows(rows_path)
        check_columns(columns, template.analysis.required_names())
        total = sum(1 for _ in iter_rows(rows_path)[1])
        if total > settings.documents_max_rows:
            raise TabularInvalid(f"The spreadsheet has {total} rows; at most {settings.documents_max_rows} are allowed.")
        if fmt != "docx" and env.converter is None:
            raise PermanentError("This worker has no PDF converter configured.", code="converter_missing")

        allocator = FilenameAllocator(pattern)
        for r in recorded.values():
            if r.status == "succeeded":
                for name in (r.docx_filename, r.pdf_filename):
                    if name:
                        allocator.reserve(name)
        succeeded = sum(1 for r in recorded.values() if r.status == "succeeded")
        failed = sum(1 for r in recorded.values() if r.status == "failed")
        with env.sessions() as s:
            s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(
                total_rows=total, succeeded_rows=succeeded, failed_rows=failed, updated_at=utcnow()))

        def wanted(index: int) -> bool:
            previous = recorded.get(index)
            if mode == "retry_failed":
                return previous is not None and previous.status == "failed"
            return previous is None

        batch_size = settings.documents_pdf_batch_size if fmt != "docx" else settings.documents_rows_per_commit
        counts = {"succeeded": succeeded, "failed": failed}
        processed = 0
        # Two-stage pipeline: this thread renders (and converts) batch k+1 while one writer thread
        # stores batch k's files and commits its outcomes; the writer keeps batches in order, so
        # output names are allocated in row order. Only one batch waits at a time (bounded memory).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-bulk-writer") as writer:
            in_flight = None
            batch: list[tuple[int, dict[str, str]]] = []
            rows_iter = (item for item in enumerate(rows, start=1) if wanted(item[0]))
            while True:
                for index, row in rows_iter:
                    batch.append((index, row))
                    if len(batch) >= batch_size:
                        break
                if not batch:
                    break
                pending = _prepare_batch(env, template, fmt, batch, scratch)
                if in_flight is not None:
                    in_flight.result()
                    env.progress(min(95, int(95 * (counts["succeeded"] + counts["failed"]) / max(total, 1))))
                in_flight = writer.submit(_persist_batch, env, bulk_run_id, fmt, allocator, pending, recorded, counts)
                processed += len(pending)
                batch = []
            if in_flight is not None:
                in_flight.result()
        zip_id, report_id = _write_outputs(env, bulk_run_id, fmt, input_artifact_id, scratch)
        status = ("succeeded" if counts["failed"] == 0 else
                  "failed" if counts["succeeded"] == 0 else "partially_succeeded")
        with env.sessions() as s:
            s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(
                status=status, zip_artifact_id=zip_id, report_artifact_id=report_id, updated_at=utcnow()))
        return BulkResult(total, counts["succeeded"], counts["failed"], processed, zip_id, report_id)
    except (MissingColumns, TabularInvalid, PermanentError) as exc:
        # A run that cannot start (bad spreadsheet, missing columns) fails as a whole.
        with env.sessions() as s:
            s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(status="failed", updated_at=utcnow()))
        raise exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch_input(env: BulkEnv, bulk_run_id: uuid.UUID, source_url: str | None) -> uuid.UUID:
    if not source_url:
        raise PermanentError("The bulk run has neither an upload nor a source_url.", code="bulk_input_missing")
    with env.sessions() as s:
        artifact = store_artifact(
            s, env.store, workspace_id=env.workspace_id, kind="input", subject_id=bulk_run_id, name="rows.csv",
            chunks=fetch_source(source_url, env.settings), filename="rows.csv", content_type="text/csv",
            job_id=env.job_id, asset_key=env.asset_key, run_id=env.run_id, ttl=_ttl(env.settings, "input"),
            max_bytes=env.settings.fetch_max_bytes)
        s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(input_artifact_id=artifact.id))
        return artifact.id


def _render_row(template: PreparedTemplate, index: int, row: dict[str, str], out: Path) -> _Pending:
    pending = _Pending(index, row, out)
    problem = validate_row(row, template.analysis.required_names())
    if problem is None:
        values = _typed_values(row, template.analysis)
        if isinstance(values, RowError):
            problem = values
        else:
            try:
                render_docx(template, values, str(out), check_required=False)
            except KilnError as exc:
                problem = RowError(exc.code, exc.message)
    pending.error = problem
    return pending


def _convert(env: BulkEnv, pending: list[_Pending]) -> None:
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


def _prepare_batch(env, template, fmt, batch, scratch) -> list[_Pending]:
    pending = [_render_row(template, index, row, scratch / f"{index:07d}.docx") for index, row in batch]
    if fmt != "docx":
        _convert(env, pending)
    return pending


def _persist_batch(env, bulk_run_id, fmt, allocator, pending, recorded, counts) -> None:
    """Store the batch's files, then commit its outcomes, artifacts and the run's counters at once.

    Files are written concurrently (each write ends in an fsync that waits on the disk, not the
    CPU); names are allocated first, in row order, so they do not depend on write timing.
    """
    now = utcnow()
    outcomes: list[tuple[_Pending, dict]] = []
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

    puts = list(_file_writers().map(
        lambda f: env.store.put_stream(f[3], _file_chunks(f[4]), content_type=f[6]), files))
    ttl = _ttl(env.settings, "intermediate")
    with env.sessions() as s:
        for (outcome, ext, artifact_id, _key, _path, filename, content_type), put in zip(files, puts):
            s.add(Artifact(id=artifact_id, workspace_id=env.workspace_id, kind="intermediate", storage_key=put.key,
                           sha256=put.sha256, size_bytes=put.size_bytes, content_type=content_type,
                           filename=sanitize_filename(filename), job_id=env.job_id, asset_key=env.asset_key,
                           run_id=env.run_id, expires_at=(now + ttl) if ttl else None))
            outcome.update({f"{ext}_filename": filename, f"{ext}_artifact_id": artifact_id, f"{ext}_sha256": put.sha256})
        s.flush()  # artifacts before the rows that reference them
        for p, outcome in outcomes:
            previous = recorded.get(p.index)
            if previous is None:
                s.add(BulkRow(workspace_id=env.workspace_id, bulk_run_id=bulk_run_id, row_index=p.index,
                              attempts=p.attempts, **outcome))
            else:
                counts[previous.status] -= 1
                s.execute(update(BulkRow).where(BulkRow.id == previous.id).values(
                    attempts=previous.attempts + p.attempts, **outcome))
            counts[outcome["status"]] += 1
        s.flush()
        s.execute(update(BulkRun).where(BulkRun.id == bulk_run_id).values(
            succeeded_rows=counts["succeeded"], failed_rows=counts["failed"], updated_at=now))


_WRITERS: ThreadPoolExecutor | None = None


def _file_writers() -> ThreadPoolExecutor:
    global _WRITERS
    if _WRITERS is None:
        _WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kiln-bulk-put")
    return _WRITERS


def _succeeded_files(env: BulkEnv, bulk_run_id: uuid.UUID) -> list[tuple[int, str, str, str]]:
    """(row, extension, name in the ZIP, storage key) of every succeeded row's files, in row order."""
    docx, pdf = aliased(Artifact), aliased(Artifact)
    with env.sessions() as s:
        rows = s.execute(
            select(BulkRow.row_index, BulkRow.docx_filename, docx.storage_key, BulkRow.pdf_filename, pdf.storage_key)
            .outerjoin(docx, docx.id == BulkRow.docx_artifact_id)
            .outerjoin(pdf, pdf.id == BulkRow.pdf_artifact_id)
            .where(BulkRow.workspace_id == env.workspace_id, BulkRow.bulk_run_id == bulk_run_id,
                   BulkRow.status == "succeeded")
            .order_by(BulkRow.row_index)).all()
    files = []
    for index, docx_name, docx_key, pdf_name, pdf_key in rows:
        if docx_name:
            files.append((index, "docx", docx_name, docx_key))
        if pdf_name:
            files.append((index, "pdf", pdf_name, pdf_key))
    return files


def _zip_entries(env: BulkEnv, files: list[tuple[int, str, str, str]], scratch: Path) -> Iterator[tuple[Path, str]]:
    """Files rendered by this run come from scratch; earlier attempts' files are fetched one at a time
    (``zip_chunks`` streams each entry before asking for the next, so one scratch file serves all)."""
    fetched = scratch / "fetched"
    for index, extension, name, key in files:
        local = scratch / f"{index:07d}.{extension}"
        if not local.exists():
            env.store.download_to(key, str(fetched))
            local = fetched
        yield local, name


def _report_rows(env: BulkEnv, bulk_run_id: uuid.UUID, fmt: str, out: Path) -> None:
    extra = ["pdf_filename", "pdf_sha256"] if fmt == "both" else []
    with env.sessions() as s, open(out, "w", encoding="utf-8", newline="") as fh:
        writer = ReportWriter(fh, extra_columns=extra)
        query = select(BulkRow).where(BulkRow.bulk_run_id == bulk_run_id).order_by(BulkRow.row_index)
        for r in s.scalars(query.execution_options(yield_per=500)):
            primary_name = r.pdf_filename if fmt == "pdf" else r.docx_filename
            primary_sha = r.pdf_sha256 if fmt == "pdf" else r.docx_sha256
            writer.write(r.row_index, r.status, r.error_code or "", r.error_message or "", primary_name or "",
                         primary_sha or "", extra={"pdf_filename": r.pdf_filename or "", "pdf_sha256": r.pdf_sha256 or ""})


def _write_outputs(env: BulkEnv, bulk_run_id: uuid.UUID, fmt: str, input_artifact_id: uuid.UUID,
                   scratch: Path) -> tuple[uuid.UUID, uuid.UUID]:
    report_path = scratch / "report.csv"
    _report_rows(env, bulk_run_id, fmt, report_path)
    files = _succeeded_files(env, bulk_run_id)
    common = dict(workspace_id=env.workspace_id, subject_id=bulk_run_id, job_id=env.job_id,
                  asset_key=env.asset_key, run_id=env.run_id)
    with env.sessions() as s:
        report = store_artifact(s, env.store, kind="output", name="report.csv", chunks=_file_chunks(report_path),
                                filename="report.csv", content_type="text/csv; charset=utf-8",
                                ttl=_ttl(env.settings, "output"), **common)
        archive = store_artifact(s, env.store, kind="archive", name="documents.zip",
                                 chunks=zip_chunks(_zip_entries(env, files, scratch)),
                                 filename="documents.zip", content_type="application/zip",
                                 ttl=_ttl(env.settings, "archive"), **common)
        _lineage(s, env, input_artifact_id, report.id, archive.id)
        return archive.id, report.id


def _lineage(session, env: BulkEnv, input_artifact_id: uuid.UUID, *children: uuid.UUID) -> None:
    from warehouse.artifacts import add_lineage

    for child in children:
        add_lineage(session, workspace_id=env.workspace_id, parents=[input_artifact_id], child=child,
                    asset_key=env.asset_key, run_id=env.run_id)


__all__ = ["KIND", "MODES", "BulkEnv", "BulkResult", "RenderFailed", "row_artifact_id", "run_bulk"]

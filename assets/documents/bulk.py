"""The bulk-run engine: fill a template for every spreadsheet row, resumably, then ZIP + report.

Plain code (no Dagster import) so the asset, the benchmark and the crash test drive the very same
path. This module drives a run (which rows, in which batches, the pipeline); row work is in
``documents_bulk_rows``, the ZIP and report in ``documents_bulk_outputs``. The guarantees, and how
they are kept:

- **Row outcomes persist as they go.** Rows are handled in small batches; each batch's per-row
  artifacts and ``bulk_row`` outcomes (and the run's counters) commit in one transaction, after
  the batch's files passed one durability barrier (``ObjectStore.put_many``): a row is
  ``succeeded`` only once its output is durable, and durability is paid per batch, not per row.
- **Every core renders.** Batches render in a process pool (``bulk_render.BatchRenderer``,
  ``KILN_DOCUMENTS_RENDER_PROCESSES``, default the cores) and come back in row order.
- **Nothing is produced twice.** ``bulk_row`` is unique on ``(bulk_run_id, row_index)`` and a
  succeeded row is never processed again. ``run`` (the first attempt and its automatic crash
  retries) processes rows with no outcome yet; ``resume`` and ``retry_failed`` process every row
  not yet succeeded (no outcome, or failed), so either one leaves the run complete.
- **A run only finishes complete.** ``succeeded`` / ``partially_succeeded`` / ``failed`` are set
  only when every row has an outcome (``succeeded + failed == total``, counted in the database).
  Per-row artifact ids are derived from ``(bulk_run, row, format)`` (uuid5), so a batch redone
  after a crash between writing objects and committing overwrites the same objects instead of
  orphaning new ones. Output names are allocated after reserving every name already recorded.
- **One bad row never stops the run.** Validation, rendering and conversion errors become that
  row's ``failed`` outcome with a stable ``error_code``; transient conversion failures
  (timeouts, a crashed LibreOffice) are retried per row first.
- **A run that cannot go on says so.** Any error that stops the engine (an unreadable or expired
  input, per-row files gone before the ZIP is rebuilt, a lost object) marks the run ``failed``
  before the error reaches the job, so it never stays ``running``.
- **Outputs stream.** The ZIP is produced by ``archive.zip_chunks`` straight into
  ``ObjectStore.put_stream``; members come from this run's scratch folder or, for rows finished
  by an earlier attempt, are fetched one at a time.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from dataclasses import dataclass
from pathlib import Path

from assets.documents.bulk_outputs import write_outputs
from assets.documents.bulk_render import BatchRenderer, render_processes
from assets.documents.bulk_rows import (  # noqa: F401 - BulkEnv and row_artifact_id are re-exported
    BulkEnv, convert_rows, persist_batch, row_artifact_id,
)
from pipelines.documents.analysis_limits import AnalysisLimits
from pipelines.documents.errors import MissingColumns, RenderFailed, TabularInvalid  # noqa: F401 - re-exported
from pipelines.documents.product import KIND
from pipelines.documents.render import PreparedTemplate, prepare_template
from pipelines.documents.tabular import FilenameAllocator, check_columns, count_rows, iter_rows
from pipelines.errors import ObjectMissing, PermanentError, RetryableError
from resources.objectstore import ObjectStore
from resources.settings import get_settings
from resources.source_fetch import fetch_source
from warehouse import documents as bulk_store
from warehouse.artifacts import storage_key_of, store_artifact
from warehouse.documents import TemplateVersion

MODES = ("run", "resume", "retry_failed")


@dataclass
class BulkResult:
    total_rows: int
    succeeded_rows: int
    failed_rows: int
    processed_now: int
    zip_artifact_id: uuid.UUID
    report_artifact_id: uuid.UUID



def load_prepared(session, store: ObjectStore, version: TemplateVersion) -> PreparedTemplate:
    """The version's template, analysed and translated once for every row of the run."""
    key = storage_key_of(session, version.workspace_id, version.artifact_id)
    # The limits the upload was analysed with (a version stored valid must stay valid here).
    return prepare_template(store.get_bytes(key), limits=AnalysisLimits.from_settings(get_settings()))



def run_bulk(env: BulkEnv, bulk_run_id: uuid.UUID, mode: str = "run") -> BulkResult:
    """Process the rows ``mode`` selects, then (re)write the ZIP and the report."""
    if mode not in MODES:
        raise PermanentError(f"Unknown bulk mode {mode!r}.", code="invalid_mode")
    settings = env.settings
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bulk-"))
    try:
        with env.sessions() as s:
            run = bulk_store.bulk_run_of(s, env.workspace_id, bulk_run_id)
            if run is None:
                raise PermanentError("The bulk run no longer exists.", code="bulk_run_missing")
            version = bulk_store.template_version_by_id(s, run.template_version_id)
            template = load_prepared(s, env.store, version)
            fmt, pattern, input_artifact_id = run.output_format, run.filename_pattern, run.input_artifact_id
            source_url = run.source_url
            bulk_store.start_bulk_run(s, bulk_run_id)
            recorded = bulk_store.recorded_rows(s, bulk_run_id)
        if input_artifact_id is None:
            input_artifact_id = _fetch_input(env, bulk_run_id, source_url)
        rows_path = scratch / "rows"
        _download_input(env, input_artifact_id, rows_path)

        columns, rows = iter_rows(rows_path)
        check_columns(columns, template.analysis.required_names())
        total = count_rows(iter_rows(rows_path)[1], settings.documents_max_rows, float("inf"))  # TooManyRows
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
            bulk_store.set_bulk_run_counts(s, bulk_run_id, total_rows=total, succeeded_rows=succeeded, failed_rows=failed)

        def wanted(index: int) -> bool:
            previous = recorded.get(index)
            return previous is None or (mode != "run" and previous.status == "failed")

        # A PDF batch gives every converter of a pool (one LibreOffice per core) a batch of its own.
        batch_size = (settings.documents_pdf_batch_size * getattr(env.converter, "size", 1) if fmt != "docx"
                      else settings.documents_rows_per_commit)
        counts = {"succeeded": succeeded, "failed": failed}
        todo = total - sum(1 for i, r in recorded.items() if i <= total and not wanted(i))
        processes = render_processes(settings.documents_render_processes, todo, batch_size)
        processed = 0
        # Three stages: worker processes render the next batches (``BatchRenderer``, in row order),
        # this thread converts a rendered batch to PDF, and one writer thread stores batch k's files
        # and commits its outcomes while batch k+1 is prepared; the writer keeps batches in order,
        # so output names are allocated in row order. A bounded number of batches is in flight.
        with BatchRenderer(template, scratch, processes) as renderer, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-bulk-writer") as writer:
            in_flight = None
            rendering: deque = deque()
            rows_iter = (item for item in enumerate(rows, start=1) if wanted(item[0]))
            while True:
                while len(rendering) < renderer.depth:
                    batch = list(islice(rows_iter, batch_size))
                    if not batch:
                        break
                    rendering.append(renderer.submit(batch))
                if not rendering:
                    break
                pending = renderer.result(rendering.popleft())
                if fmt != "docx":
                    convert_rows(env, pending)
                if in_flight is not None:
                    in_flight.result()
                    env.progress(min(95, int(95 * (counts["succeeded"] + counts["failed"]) / max(total, 1))))
                in_flight = writer.submit(persist_batch, env, bulk_run_id, fmt, allocator, pending, recorded, counts)
                processed += len(pending)
            if in_flight is not None:
                in_flight.result()
        succeeded, failed = _recount(env, bulk_run_id, total)
        try:
            zip_id, report_id = write_outputs(env, bulk_run_id, fmt, input_artifact_id, scratch)
        except ObjectMissing as exc:
            raise PermanentError(
                "A succeeded row's file is no longer stored (the per-row files' retention ended), so the ZIP "
                "cannot be rebuilt; submit the spreadsheet again as a new bulk run.", code="bulk_outputs_expired",
            ) from exc
        with env.sessions() as s:
            bulk_store.finish_bulk_run(s, bulk_run_id, succeeded=succeeded, failed=failed,
                                       zip_artifact_id=zip_id, report_artifact_id=report_id)
        return BulkResult(total, succeeded, failed, processed, zip_id, report_id)
    except Exception:
        # Whatever stops the engine (bad spreadsheet, missing columns, a refused source, an expired
        # input, a lost object, a bug) ends the run as failed; the job records the error itself.
        with env.sessions() as s:
            bulk_store.fail_bulk_run(s, bulk_run_id)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _recount(env: BulkEnv, bulk_run_id: uuid.UUID, total: int) -> tuple[int, int]:
    """(succeeded, failed) from the recorded rows; refuses to finish a run that left rows without an outcome."""
    with env.sessions() as s:
        succeeded, failed = bulk_store.count_bulk_rows(s, env.workspace_id, bulk_run_id, total)
        bulk_store.set_bulk_run_counts(s, bulk_run_id, succeeded_rows=succeeded, failed_rows=failed)
    if succeeded + failed != total:
        raise RetryableError(f"{total - succeeded - failed} of {total} rows have no outcome yet; the run is "
                             "retried to process them.", code="bulk_run_incomplete")
    return succeeded, failed


def _download_input(env: BulkEnv, input_artifact_id: uuid.UUID, path: Path) -> None:
    expired = PermanentError("The bulk run's spreadsheet is no longer stored (its retention period ended); "
                             "submit it again as a new bulk run.", code="bulk_input_expired")
    with env.sessions() as s:
        key = storage_key_of(s, env.workspace_id, input_artifact_id, available_only=True)
    if key is None:
        raise expired
    try:
        env.store.download_to(key, str(path))
    except ObjectMissing as exc:
        raise expired from exc


def _fetch_input(env: BulkEnv, bulk_run_id: uuid.UUID, source_url: str | None) -> uuid.UUID:
    if not source_url:
        raise PermanentError("The bulk run has neither an upload nor a source_url.", code="bulk_input_missing")
    with env.sessions() as s:
        artifact = store_artifact(
            s, env.store, workspace_id=env.workspace_id, kind="input", subject_id=bulk_run_id, name="rows.csv",
            chunks=fetch_source(source_url, env.settings), filename="rows.csv", content_type="text/csv",
            job_id=env.job_id, asset_key=env.asset_key, run_id=env.run_id, ttl=env.settings.retention_ttl("input"),
            max_bytes=env.settings.fetch_max_bytes)
        bulk_store.set_bulk_run_input(s, bulk_run_id, artifact.id)
        return artifact.id


__all__ = ["KIND", "MODES", "BulkEnv", "BulkResult", "RenderFailed", "row_artifact_id", "run_bulk"]

"""Bulk runs: submit a spreadsheet against a template, follow counts, list failed rows, resume, retry.

Submitting checks the spreadsheet's columns against the template's required fields before any
work starts (422 ``missing_columns`` naming them). A ``source_url`` (a Google Sheet's published
CSV export) is never fetched here: only its host is checked against ``KILN_FETCH_ALLOWED_HOSTS``;
the worker fetches it and checks the columns then.

Resume and retry-failed are refused (409) while the run's job is active, when the run's input or a
succeeded row's file has expired, and when another request restarted the run first: the restart
claims the run with a compare-and-set on ``bulk_run.job_id`` before queuing, so two concurrent
calls cannot both queue a job on the same partition.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.bulk_input import check_spreadsheet, form_options, required_fields
from api.connection_gate import reclaim_connection, release_connection
from api.deps import (
    DbSession,
    JobsReader,
    SettingsDep,
    StoreDep,
    authorize,
    idempotency_key_header,
    request_id,
)
from api.links import LinkMinter, Links
from api.limits import ensure_job_capacity, upload_limits
from api.pagination import Cursor, Page, ascending_int_page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.routes.templates import load_template, load_version
from api.schemas import UtcDatetime
from api.uploads import stream_upload_to_store
from pipelines.documents.product import CARD, KIND
from resources.objectstore import artifact_key
from resources.settings import Settings
from resources.source_fetch import check_fetch_allowed
from warehouse import api_reads
from warehouse import bulk_run_reads as bulk_reads
from warehouse import documents as bulk_store
from warehouse import jobs as job_machine
from warehouse.artifacts import expiry, sanitize_filename
from warehouse.db import utcnow
from warehouse.documents import BulkRow, BulkRun, TemplateVersion
from warehouse.models import Artifact, Job

router = APIRouter(prefix="/v1", tags=["bulk runs"], responses=problem_responses(401, 403, 422))

SMALL_FORM_BYTES = 64 * 1024  # a form without a file (source_url) is parsed in memory

IdempotencyKey = idempotency_key_header()
BulkUploadLimits = upload_limits(KIND)  # quotas and upload caps, checked before the body (api/limits.py)


class BulkRunOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    template_id: uuid.UUID
    template_version: int
    status: str
    job_status: str
    format: Literal["docx", "pdf", "both"]
    filename_pattern: str
    source_address: str | None = Field(
        default=None, description="The published CSV export address the run reads (the request's source_url); "
        "not a download link")
    total_rows: int | None
    succeeded_rows: int
    failed_rows: int
    progress: int = Field(ge=0, le=100)
    error_code: str | None = None
    error_message: str | None = None
    zip_url: str | None = None
    report_url: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class BulkRunPage(Page[BulkRunOut]):
    pass


class BulkRowOut(BaseModel):
    row: int
    status: Literal["succeeded", "failed"]
    error_code: str | None
    error_message: str | None
    docx_filename: str | None
    pdf_filename: str | None
    docx_sha256: str | None
    pdf_sha256: str | None
    attempts: int
    docx_url: str | None = None
    pdf_url: str | None = None
    updated_at: UtcDatetime = Field(description="When the row's outcome was last written")


class BulkRowPage(Page[BulkRowOut]):
    pass


# --------------------------------------------------------------------------- helpers

def load_run(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> BulkRun:
    run = bulk_reads.bulk_run_by_id(session, workspace_id, run_id)
    if run is None:
        raise not_found("bulk run")
    return run


def runs_out(session: Session, links: LinkMinter, runs: list[BulkRun]) -> list[BulkRunOut]:
    """The answers for ``runs`` (one workspace's) in three queries, whatever their number: their jobs,
    their template versions and their artifacts are each loaded in one go."""
    if not runs:
        return []
    workspace_id = runs[0].workspace_id
    jobs = bulk_reads.jobs_by_id(session, workspace_id, {r.job_id for r in runs})
    versions = bulk_reads.versions_by_id(session, workspace_id, {r.template_version_id for r in runs})
    artifacts = bulk_reads.available_artifacts(session, workspace_id,
                                     [a for r in runs for a in (r.zip_artifact_id, r.report_artifact_id)])
    return [_run_out(links, run, jobs[run.job_id], versions[run.template_version_id], artifacts) for run in runs]


def run_out(session: Session, links: LinkMinter, run: BulkRun) -> BulkRunOut:
    return runs_out(session, links, [run])[0]


def _run_out(links: LinkMinter, run: BulkRun, job: Job, version: TemplateVersion,
             artifacts: dict[uuid.UUID, Artifact]) -> BulkRunOut:
    # While the job is not done, its state (queued, retrying, failed, canceled) is the run's news; so is
    # "running" or "succeeded" while the run row still says "queued".
    status = run.status if job.status in ("succeeded", "running") and run.status != "queued" else job.status
    processed = run.succeeded_rows + run.failed_rows
    progress = 100 if job.status == "succeeded" else (
        min(99, int(100 * processed / run.total_rows)) if run.total_rows else job.progress)
    return BulkRunOut(
        id=run.id, job_id=run.job_id, template_id=version.template_id, template_version=version.version,
        status=status, job_status=job.status, format=run.output_format, filename_pattern=run.filename_pattern,
        source_address=run.source_url, total_rows=run.total_rows, succeeded_rows=run.succeeded_rows,
        failed_rows=run.failed_rows, progress=max(0, min(100, progress)), error_code=job.error_code,
        error_message=job.error_message,
        zip_url=links.url(artifacts.get(run.zip_artifact_id)),
        report_url=links.url(artifacts.get(run.report_artifact_id)),
        created_at=run.created_at, updated_at=run.updated_at)


async def _receive_rows(request: Request, store, settings: Settings, workspace_id, run_id, artifact_id):
    """(upload or None, form fields). Small bodies are parsed whole (they may carry only a
    source_url); anything larger streams to the object store."""
    key = artifact_key(workspace_id, "input", run_id, artifact_id, "rows")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) <= SMALL_FORM_BYTES:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        file = form.get("file")
        if file is None or isinstance(file, str):
            return None, fields
        return await stream_upload_to_store(file, store, key, max_bytes=settings.max_upload_bytes), fields
    upload = await stream_upload_to_store(request, store, key, max_bytes=settings.max_upload_bytes)
    return upload, upload.fields


def _submit_job(session, principal, settings, run_id, payload, fingerprint, idempotency_key, request):
    ensure_job_capacity(session, settings, principal.workspace_id, KIND, idempotency_key)
    return job_machine.submit_job(
        session, workspace_id=principal.workspace_id, kind=KIND, payload=payload, fingerprint_payload=fingerprint,
        idempotency_key=idempotency_key, max_attempts=CARD.kind(KIND).max_attempts or settings.job_max_attempts, subject_id=run_id,
        partition_key=str(run_id), created_by=principal.user_id,
        request_id=request_id(request))


# --------------------------------------------------------------------------- routes

@router.post("/templates/{id}/bulk-runs", status_code=202, response_model=BulkRunOut,
             responses={200: {"model": BulkRunOut, "description": "The run an earlier request with this key made"},
                        **problem_responses(404, 409, 413, 415, 429)})
async def create_bulk_run(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                          settings: SettingsDep, store: StoreDep, _limits: BulkUploadLimits,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """multipart: ``file`` (CSV or XLSX) or ``source_url``; ``format`` docx|pdf|both; ``filename_pattern``."""
    template = await anyio.to_thread.run_sync(load_template, session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    version = await anyio.to_thread.run_sync(load_version, session, template, None)
    if version.status != "valid":
        raise ApiProblem(422, "template_invalid", "The template's latest version has broken tags; upload a fixed "
                         "version first.", errors=version.errors)
    required = await anyio.to_thread.run_sync(required_fields, session, version)
    run_id, artifact_id = uuid.uuid4(), uuid.uuid4()
    release_connection(session)
    upload, fields = await _receive_rows(request, store, settings, principal.workspace_id, run_id, artifact_id)
    try:
        fmt, pattern, source_url = form_options(fields, upload)
        content_type = None
        if upload is not None:
            # Off the event loop and before the database is used again: the parse is linear and bounded
            # (size, rows, seconds), but a big upload still takes seconds, and must not hold a connection.
            # MissingColumns -> 422 `missing`; TooManyRows -> 422 too_many_rows.
            content_type = await anyio.to_thread.run_sync(
                check_spreadsheet, store, settings, upload, required, pattern)
        else:
            check_fetch_allowed(source_url, settings)
        await reclaim_connection(session)
        return await anyio.to_thread.run_sync(
            _create, session, principal, settings, store, request, version, run_id, artifact_id, upload,
            (fmt, pattern, source_url, content_type), idempotency_key)
    except BaseException:
        if upload is not None:
            with anyio.CancelScope(shield=True):  # a client that went away must not leave the bytes behind
                await anyio.to_thread.run_sync(store.delete, upload.key)
        raise


def _create(session, principal, settings, store, request, version, run_id, artifact_id, upload, options,
            idempotency_key) -> JSONResponse:
    links = LinkMinter(settings, principal)
    fmt, pattern, source_url, content_type = options
    fingerprint = {"template_version_id": str(version.id), "format": fmt, "filename_pattern": pattern,
                   "input_sha256": upload.sha256 if upload else None, "source_url": source_url}
    result = _submit_job(session, principal, settings, run_id, {"bulk_run_id": str(run_id), "mode": "run"},
                         fingerprint, idempotency_key, request)
    if not result.created:  # the same Idempotency-Key and request: answer the first run
        if upload is not None:
            store.delete(upload.key)
        existing = load_run(session, principal.workspace_id, result.job.subject_id)
        return JSONResponse(run_out(session, links, existing).model_dump(mode="json"), status_code=200,
                            headers=links.headers)
    source = None if upload is None else Artifact(
        id=artifact_id, workspace_id=principal.workspace_id, kind="input", storage_key=upload.key,
        sha256=upload.sha256, size_bytes=upload.size_bytes, content_type=content_type,
        filename=sanitize_filename(upload.filename or "rows"), job_id=result.job.id,
        expires_at=expiry(settings.retention_ttl("input")))
    run = bulk_store.new_bulk_run(
        id=run_id, workspace_id=principal.workspace_id, template_version_id=version.id,
        job_id=result.job.id, input_artifact_id=artifact_id if upload else None, source_url=source_url,
        output_format=fmt, filename_pattern=pattern, created_by=principal.user_id)
    bulk_reads.add_bulk_run(session, run, source)
    return JSONResponse(run_out(session, links, run).model_dump(mode="json"), status_code=202, headers=links.headers)


@router.get("/bulk-runs", response_model=BulkRunPage)
def list_bulk_runs(principal: JobsReader, session: DbSession, links: Links,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   cursor: Cursor = None) -> BulkRunPage:
    query = bulk_reads.bulk_runs_query(principal.workspace_id)
    page, next_cursor = newest_first_page(session, query, BulkRun, limit=limit, cursor=cursor)
    return BulkRunPage(items=runs_out(session, links, page), next_cursor=next_cursor)


@router.get("/bulk-runs/{id}", response_model=BulkRunOut, responses=problem_responses(404))
def get_bulk_run(id: uuid.UUID, principal: JobsReader, session: DbSession, links: Links) -> BulkRunOut:
    return run_out(session, links, load_run(session, principal.workspace_id, id))


@router.get("/bulk-runs/{id}/rows", response_model=BulkRowPage, responses=problem_responses(404))
def list_rows(id: uuid.UUID, principal: JobsReader, session: DbSession, links: Links,
              status: Literal["succeeded", "failed"] | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              cursor: Cursor = None) -> BulkRowPage:
    run = load_run(session, principal.workspace_id, id)
    query = bulk_reads.bulk_rows_query(principal.workspace_id, run.id, status)
    page, next_cursor = ascending_int_page(session, query, BulkRow.row_index, cursor_field="row", limit=limit,
                                           cursor=cursor)
    artifacts = bulk_reads.available_artifacts(session, principal.workspace_id,
                                     [a for r in page for a in (r.docx_artifact_id, r.pdf_artifact_id)])

    def url(artifact_id):
        return links.url(artifacts.get(artifact_id))

    items = [BulkRowOut(row=r.row_index, status=r.status, error_code=r.error_code, error_message=r.error_message,
                        docx_filename=r.docx_filename, pdf_filename=r.pdf_filename, docx_sha256=r.docx_sha256,
                        pdf_sha256=r.pdf_sha256, attempts=r.attempts, docx_url=url(r.docx_artifact_id),
                        pdf_url=url(r.pdf_artifact_id), updated_at=r.updated_at) for r in page]
    return BulkRowPage(items=items, next_cursor=next_cursor)


def _check_still_stored(session: Session, run: BulkRun) -> None:
    """409 when a restart would fail in the worker: its input, or a succeeded row's file (the ZIP is
    rebuilt from every succeeded row), is no longer stored."""
    now = utcnow()
    if bulk_reads.input_gone(session, run, now):
        raise ApiProblem(409, "bulk_input_expired", "The bulk run's spreadsheet is no longer stored (its retention "
                         "period ended), so the run cannot be resumed; submit the spreadsheet again as a new run.")
    lost = bulk_reads.succeeded_rows_without_files(session, run, now)
    if lost:
        raise ApiProblem(409, "bulk_outputs_expired", f"{lost} succeeded row(s) of this run no longer have their "
                         "file (the per-row files' retention ended), so the ZIP cannot be rebuilt; submit the "
                         "spreadsheet again as a new run.", rows=lost)


def _restart(mode: str, id: uuid.UUID, request: Request, principal, session: Session, settings: Settings,
             idempotency_key: str | None) -> JSONResponse:
    run = load_run(session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    links = LinkMinter(settings, principal)
    job = api_reads.job_by_id(session, run.workspace_id, run.job_id)
    if job.status in job_machine.ACTIVE_STATUSES:
        raise ApiProblem(409, "bulk_run_active", f"The bulk run's job is {job.status}; wait for it to finish.")
    if mode == "retry_failed" and run.failed_rows == 0:
        raise ApiProblem(409, "nothing_to_retry", "The bulk run has no failed rows; to finish rows that have no "
                         f"outcome yet, use POST /v1/bulk-runs/{run.id}/resume.")
    _check_still_stored(session, run)
    # Compare-and-set before queuing anything: only a request that still finds the finished job it
    # checked may restart the run. A rival that restarted it meanwhile moved job_id, so this UPDATE
    # matches nothing and the answer is 409. On PostgreSQL a concurrent rival's UPDATE waits for this
    # row lock and then re-checks job_id; on SQLite the write lock serializes them. The claim is also
    # this transaction's first write, which matters on SQLite: pysqlite only opens a transaction at an
    # INSERT/UPDATE, so submit_job's SAVEPOINT, if first, would commit its job on release.
    if not bulk_store.claim_bulk_run_restart(session, run, finished_job_id=job.id):
        raise ApiProblem(409, "bulk_run_active", "Another request restarted this bulk run just now; follow it "
                         f"with GET /v1/bulk-runs/{run.id}.")
    payload = {"bulk_run_id": str(run.id), "mode": mode}
    result = _submit_job(session, principal, settings, run.id, payload, {**payload, "after_job": str(job.id)},
                         idempotency_key, request)
    if result.created:
        bulk_store.requeue_bulk_run(session, run, job_id=result.job.id)
    session.refresh(run)
    return JSONResponse(run_out(session, links, run).model_dump(mode="json"),
                        status_code=202 if result.created else 200, headers=links.headers)


@router.post("/bulk-runs/{id}/resume", status_code=202, response_model=BulkRunOut,
             responses=problem_responses(404, 409))
def resume_bulk_run(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                    settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Process every row not yet succeeded (no outcome yet, or failed); succeeded rows are kept. For a run
    stopped by a crash or a cancel, or one whose failures came from a passing cause."""
    return _restart("resume", id, request, principal, session, settings, idempotency_key)


@router.post("/bulk-runs/{id}/retry-failed", status_code=202, response_model=BulkRunOut,
             responses=problem_responses(404, 409))
def retry_failed_rows(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                      settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Process the failed rows again (and any row with no outcome yet, so the run ends complete); succeeded
    rows are kept. The ZIP and report are rewritten to include them. 409 ``nothing_to_retry`` when no row
    failed."""
    return _restart("retry_failed", id, request, principal, session, settings, idempotency_key)

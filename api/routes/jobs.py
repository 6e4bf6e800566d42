"""Jobs of every product: submit (with Idempotency-Key), list, get, cancel, events, artifacts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.deps import (
    DbSession, JobsReader, JobsWriter, SettingsDep, audit, authorize, idempotency_key_header, request_id,
)
from api.job_kinds import get_job_kind, job_kinds
from api.limits import ensure_job_capacity
from api.observability import bind_context
from api.pagination import Cursor, ascending_int_page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.links import Links
from api.routes.artifacts import artifact_out, list_artifacts_query
from api.schemas import (
    ArtifactPage, JobCreate, JobEventOut, JobEventPage, JobOut, JobPage, JobStatus, UtcTimeIn,
)
from warehouse import api_reads
from warehouse import jobs as job_machine
from warehouse.models import Job, JobEvent

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=problem_responses(401, 403, 422))

IdempotencyKey = idempotency_key_header(
    "Same key + same request returns the first job; a different request answers 409")


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate({**{c: getattr(job, c) for c in JobOut.model_fields if c != "job_id"}, "job_id": job.id})


def note_job(request: Request, job_id: uuid.UUID) -> None:
    """Name the job in this request's log lines, the access line included.

    Sync routes run in a worker thread with a copy of the request's context, so ``bind_context`` alone
    reaches only the lines logged inside the route; the access middleware reads ``request.state``.
    """
    bind_context(job_id=job_id)
    request.state.job_id = str(job_id)


def load_job(request: Request, session: Session, principal_ws: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = api_reads.job_by_id(session, principal_ws, job_id)
    if job is None:
        raise not_found("job")
    note_job(request, job.id)
    return job


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={200: {"model": JobOut, "description": "The job an earlier request with this Idempotency-Key created"},
               **problem_responses(409)},
)
def submit_job(
    body: JobCreate,
    request: Request,
    principal: JobsWriter,
    session: DbSession,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    kind = get_job_kind(body.kind)
    if kind is None:
        raise ApiProblem(422, "unknown_job_kind", f"Unknown job kind {body.kind!r}; known: {', '.join(job_kinds())}.")
    if not kind.submit_via_jobs_api:
        raise ApiProblem(422, "use_product_route",
                         f"Jobs of kind {kind.name!r} are submitted through {kind.product_route}, not POST /v1/jobs.",
                         route=kind.product_route)
    try:
        payload = kind.payload_model.model_validate(body.payload).model_dump(mode="json")
    except ValidationError as exc:
        errors = [{"loc": ["body", "payload", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ApiProblem(422, "validation_error", f"payload: {errors[0]['msg']}", errors=errors) from None
    ensure_job_capacity(session, settings, principal.workspace_id, kind.name, idempotency_key)
    result = job_machine.submit_job(
        session,
        workspace_id=principal.workspace_id,
        kind=kind.name,
        payload=payload,
        idempotency_key=idempotency_key,
        max_attempts=kind.max_attempts or settings.job_max_attempts,
        created_by=principal.user_id,
        request_id=request_id(request),
    )
    note_job(request, result.job.id)
    return JSONResponse(job_out(result.job).model_dump(mode="json"), status_code=202 if result.created else 200)


@router.get("", response_model=JobPage)
def list_jobs(
    principal: JobsReader,
    session: DbSession,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    created_after: UtcTimeIn | None = None,
    created_before: UtcTimeIn | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> JobPage:
    query = api_reads.jobs_query(principal.workspace_id, status=status, kind=kind, created_after=created_after,
                                 created_before=created_before)
    page, next_cursor = newest_first_page(session, query, Job, limit=limit, cursor=cursor)
    return JobPage(items=[job_out(j) for j in page], next_cursor=next_cursor)


@router.get("/{id}", response_model=JobOut, responses=problem_responses(404))
def get_job(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession) -> JobOut:
    return job_out(load_job(request, session, principal.workspace_id, id))


@router.post("/{id}/cancel", response_model=JobOut, responses=problem_responses(404, 409))
def cancel_job(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession) -> JobOut:
    job = load_job(request, session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")  # after the lookup: foreign ids stay 404 for everyone
    if not job_machine.cancel_job(session, job.id, reason="canceled through the API", actor=str(principal.user_id)):
        session.refresh(job)
        raise ApiProblem(409, "job_not_cancelable", f"A {job.status} job cannot be canceled.")
    audit(session, request, principal, "job.cancel", "job", str(job.id), kind=job.kind)
    session.flush()
    session.refresh(job)
    return job_out(job)


@router.get("/{id}/events", response_model=JobEventPage, responses=problem_responses(404))
def job_events(
    id: uuid.UUID,
    request: Request,
    principal: JobsReader,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> JobEventPage:
    job = load_job(request, session, principal.workspace_id, id)
    query = api_reads.job_events_query(principal.workspace_id, job.id)
    page, next_cursor = ascending_int_page(session, query, JobEvent.seq, cursor_field="seq", limit=limit,
                                           cursor=cursor)
    return JobEventPage(items=[JobEventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@router.get("/{id}/artifacts", response_model=ArtifactPage, responses=problem_responses(404))
def job_artifacts(
    id: uuid.UUID,
    request: Request,
    principal: JobsReader,
    session: DbSession,
    links: Links,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> ArtifactPage:
    job = load_job(request, session, principal.workspace_id, id)
    authorize(principal, "viewer", "artifacts:read")
    rows, next_cursor = list_artifacts_query(session, principal.workspace_id, job_id=job.id, limit=limit, cursor=cursor)
    return ArtifactPage(items=[artifact_out(a, links) for a in rows], next_cursor=next_cursor)

"""Templates: upload (validated, analysed, content-addressed versions), read, and single fills.

Field analysis runs in the request, in a worker thread (never on the event loop) and within the
``KILN_DOCUMENTS_*`` analysis budget (``pipelines/documents/analysis_limits.py``: seconds at worst),
so the client sees the fields, or the located errors, in the upload's answer.
A template with broken tags is stored as ``invalid`` with its errors; only an unsafe or
non-.docx upload is refused (typed 4xx from ``validate_docx``), and then nothing is kept.
"""

from __future__ import annotations

import io
import tempfile
import threading
import uuid
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.connection_gate import reclaim_connection, release_connection
from api.deps import DbSession, JobsReader, JobsWriter, SettingsDep, StoreDep, authorize
from api.limits import UploadLimits
from api.pagination import Cursor, Page, newest_first_page
from api.render_gate import render_gate, run_fill
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import UtcDatetime, has_control_chars
from api.uploads import stream_upload_to_store
from pipelines.documents.analysis_limits import AnalysisLimits
from pipelines.documents.fields import TemplateAnalysis, analyze_template
from pipelines.documents.render import PreparedTemplate, prepare_template, render_docx
from pipelines.documents.validation import validate_docx
from resources.converter import DocumentConverter
from resources.objectstore import ObjectStore, artifact_key, content_disposition, sanitize_filename
from resources.settings import Settings, get_settings
from warehouse import document_templates as template_rows
from warehouse.artifacts import storage_key_of
from warehouse.documents import Template, TemplateField, TemplateVersion
from warehouse.models import Artifact

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=problem_responses(401, 403, 422))

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class FieldOut(BaseModel):
    name: str
    kind: str
    required: bool
    locations: list[str]
    children: list[str] = []


class TemplateVersionOut(BaseModel):
    id: uuid.UUID
    template_id: uuid.UUID
    version: int
    content_sha256: str
    size_bytes: int
    filename: str
    syntax: str
    status: Literal["valid", "invalid"]
    errors: list[dict[str, Any]]
    fields: list[FieldOut]
    created_at: UtcDatetime


class TemplateOut(BaseModel):
    id: uuid.UUID
    name: str
    status: Literal["valid", "invalid"] | None
    latest_version: TemplateVersionOut | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TemplatePage(Page[TemplateOut]):
    pass


MAX_VERSION = 2**31 - 1  # version numbers are INTEGER columns: larger ones are 422 at the edge, never a DB error


class RenderRequest(BaseModel):
    values: dict[str, Any] = Field(default_factory=dict)
    format: Literal["docx", "pdf"] = "docx"
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION, description="Default: the latest version")


# --------------------------------------------------------------------------- helpers

def load_template(session: Session, workspace_id: uuid.UUID, template_id: uuid.UUID) -> Template:
    template = template_rows.template_by_id(session, workspace_id, template_id)
    if template is None:
        raise not_found("template")
    return template


def load_version(session: Session, template: Template, version: int | None = None) -> TemplateVersion:
    number = version or template.latest_version
    found = template_rows.version_by_number(session, template, number)
    if found is None:
        raise not_found("template version")
    return found


def _version_out(version: TemplateVersion, fields: list[TemplateField]) -> TemplateVersionOut:
    return TemplateVersionOut(
        id=version.id, template_id=version.template_id, version=version.version,
        content_sha256=version.content_sha256, size_bytes=version.size_bytes, filename=version.filename,
        syntax=version.syntax, status=version.status, errors=version.errors,
        fields=[FieldOut(name=f.name, kind=f.kind, required=f.required, locations=f.locations, children=f.children)
                for f in fields],
        created_at=version.created_at)


def version_out(session: Session, version: TemplateVersion) -> TemplateVersionOut:
    fields = template_rows.fields_by_version(session, version.workspace_id, {version.id})[version.id]
    return _version_out(version, fields)


def templates_out(session: Session, templates: list[Template]) -> list[TemplateOut]:
    """The answers for ``templates`` (one workspace's) in two queries, whatever their number: their latest
    versions, then those versions' fields."""
    if not templates:
        return []
    workspace_id = templates[0].workspace_id
    latest = template_rows.latest_versions(session, workspace_id, {t.id for t in templates if t.latest_version})
    fields = template_rows.fields_by_version(session, workspace_id, {v.id for v in latest.values()})
    out = []
    for t in templates:
        version = latest.get(t.id)
        latest_out = _version_out(version, fields[version.id]) if version is not None else None
        out.append(TemplateOut(id=t.id, name=t.name, status=latest_out.status if latest_out else None,
                               latest_version=latest_out, created_at=t.created_at, updated_at=t.updated_at))
    return out


def template_out(session: Session, template: Template) -> TemplateOut:
    return templates_out(session, [template])[0]


async def _receive_docx(request: Request, store: ObjectStore, settings: Settings, workspace_id: uuid.UUID,
                        template_id: uuid.UUID):
    """Stream the upload into the store, then validate it; refused uploads leave nothing behind."""
    artifact_id = uuid.uuid4()
    key = artifact_key(workspace_id, "input", template_id, artifact_id, "template.docx")
    upload = await stream_upload_to_store(request, store, key, max_bytes=settings.documents_max_template_bytes)
    try:
        data = await anyio.to_thread.run_sync(store.get_bytes, key)
        await anyio.to_thread.run_sync(validate_docx, data)
    except BaseException:
        store.delete(key)
        raise
    return artifact_id, upload, data


def _add_version(session: Session, store: ObjectStore, settings: Settings, template: Template, artifact_id,
                 upload, data: bytes, user_id: uuid.UUID) -> tuple[TemplateVersion, bool]:
    """The version for these bytes: the existing one (same SHA-256) or a new, analysed one.

    Two uploads to one template at once both read the same ``latest_version``; the loser of the
    race hits a unique constraint, so its insert runs in a savepoint and, on that conflict, it reads
    again: the same bytes answer the winner's version, other bytes take the next number.
    """
    analysis: TemplateAnalysis | None = None
    for attempt in range(_VERSION_ATTEMPTS):
        existing = template_rows.version_by_sha256(session, template, upload.sha256)
        if existing is not None:
            store.delete(upload.key)
            return existing, False
        if analysis is None:
            analysis = analyze_template(io.BytesIO(data), AnalysisLimits.from_settings(settings))
        try:
            with session.begin_nested():
                return _insert_version(session, template, artifact_id, upload, analysis, user_id), True
        except IntegrityError:
            if attempt == _VERSION_ATTEMPTS - 1:
                raise
            session.refresh(template)  # the winner's latest_version
    raise AssertionError("unreachable")


_VERSION_ATTEMPTS = 5


def _insert_version(session: Session, template: Template, artifact_id, upload, analysis,
                    user_id: uuid.UUID) -> TemplateVersion:
    filename = sanitize_filename(upload.filename or "template.docx", default="template.docx")
    source = Artifact(
        id=artifact_id, workspace_id=template.workspace_id, kind="input", storage_key=upload.key,
        sha256=upload.sha256, size_bytes=upload.size_bytes, content_type=DOCX_TYPE, filename=filename,
        expires_at=None)  # a template's bytes live as long as the template: no retention TTL
    return template_rows.insert_version(
        session, template, source, syntax=analysis.syntax, status=analysis.status,
        errors=[e.__dict__ for e in analysis.errors], user_id=user_id,
        fields=[{"name": f.name, "kind": f.kind, "required": f.required, "locations": f.locations,
                 "children": f.children} for f in analysis.fields])


async def _dropping_upload_on_error(session: Session, store: ObjectStore, key: str, work):
    """Take the connection back, then run ``work`` in a thread; if either fails, the transaction rolls back, so
    no row names the upload, and the bytes go."""
    try:
        await reclaim_connection(session)
        return await anyio.to_thread.run_sync(work)
    except BaseException:
        store.delete(key)
        raise


# --------------------------------------------------------------------------- routes

@router.post("", status_code=201, response_model=TemplateOut, responses=problem_responses(413, 415, 429))
async def create_template(request: Request, principal: JobsWriter, session: DbSession, settings: SettingsDep,
                          store: StoreDep, _limits: UploadLimits) -> JSONResponse:
    """Upload a .docx as a new template (form field ``file``; optional ``name``)."""
    template_id = uuid.uuid4()
    release_connection(session)
    artifact_id, upload, data = await _receive_docx(request, store, settings, principal.workspace_id, template_id)
    name = (upload.fields.get("name")
            or PurePath(sanitize_filename(upload.filename or "", default="template")).stem or "template")[:255]

    def _create() -> TemplateOut:
        if has_control_chars(name):  # PostgreSQL refuses NUL in text; the others break listings
            raise ApiProblem(422, "invalid_characters", "The template name holds control characters.")
        template = Template(id=template_id, workspace_id=principal.workspace_id, name=name, latest_version=0,
                            created_by=principal.user_id)
        template_rows.add_template(session, template)
        _add_version(session, store, settings, template, artifact_id, upload, data, principal.user_id)
        return template_out(session, template)

    out = await _dropping_upload_on_error(session, store, upload.key, _create)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


@router.post("/{id}/versions", status_code=201, response_model=TemplateVersionOut,
             responses={200: {"model": TemplateVersionOut, "description": "These bytes are already a version"},
                        **problem_responses(404, 413, 415, 429)})
async def add_version(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                      settings: SettingsDep, store: StoreDep, _limits: UploadLimits) -> JSONResponse:
    """Upload a new version; the same bytes as an existing version answer that version (200)."""
    template = await anyio.to_thread.run_sync(load_template, session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    release_connection(session)
    artifact_id, upload, data = await _receive_docx(request, store, settings, principal.workspace_id, template.id)

    def _add() -> tuple[TemplateVersionOut, bool]:
        version, created = _add_version(session, store, settings, template, artifact_id, upload, data,
                                        principal.user_id)
        return version_out(session, version), created

    out, created = await _dropping_upload_on_error(session, store, upload.key, _add)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("", response_model=TemplatePage)
def list_templates(principal: JobsReader, session: DbSession,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   cursor: Cursor = None) -> TemplatePage:
    query = template_rows.templates_query(principal.workspace_id)
    page, next_cursor = newest_first_page(session, query, Template, limit=limit, cursor=cursor)
    return TemplatePage(items=templates_out(session, page), next_cursor=next_cursor)


@router.get("/{id}", response_model=TemplateOut, responses=problem_responses(404))
def get_template(id: uuid.UUID, principal: JobsReader, session: DbSession) -> TemplateOut:
    return template_out(session, load_template(session, principal.workspace_id, id))


@router.get("/{id}/versions/{n}", response_model=TemplateVersionOut, responses=problem_responses(404))
def get_version(id: uuid.UUID, n: Annotated[int, PathParam(ge=1, le=MAX_VERSION)], principal: JobsReader,
                session: DbSession) -> TemplateVersionOut:
    template = load_template(session, principal.workspace_id, id)
    return version_out(session, load_version(session, template, n) if n >= 1 else _missing_version())


def _missing_version():
    raise not_found("template version")


# --------------------------------------------------------------------------- single fill

_PREPARED: dict[str, PreparedTemplate] = {}
_PREPARED_LOCK = threading.Lock()
_PREPARED_MAX = 64


def prepared_template(store: ObjectStore, storage_key: str) -> PreparedTemplate:
    """Templates are immutable, so one analysed + translated copy per version serves every fill."""
    with _PREPARED_LOCK:
        cached = _PREPARED.get(storage_key)
    if cached is not None:
        return cached
    prepared = prepare_template(store.get_bytes(storage_key), limits=AnalysisLimits.from_settings(get_settings()))
    with _PREPARED_LOCK:
        if len(_PREPARED) >= _PREPARED_MAX:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[storage_key] = prepared
    return prepared


_CONVERTER: DocumentConverter | None = None
_CONVERTER_LOCK = threading.Lock()


def api_converter() -> DocumentConverter:
    """One converter per API process: one LibreOffice profile, one conversion at a time (its lock)."""
    global _CONVERTER
    with _CONVERTER_LOCK:
        if _CONVERTER is None:
            _CONVERTER = DocumentConverter()
        return _CONVERTER


@router.post("/{id}/render", response_class=Response, responses={
    200: {"content": {DOCX_TYPE: {}, "application/pdf": {}}, "description": "The filled document"},
    **problem_responses(404, 503)})
async def render(id: uuid.UUID, body: RenderRequest, request: Request, principal: JobsReader, session: DbSession,
                 store: StoreDep) -> Response:
    """Fill the template once with ``values``; answers the DOCX (or PDF) itself. A PDF waits for this
    process's converter: when ``KILN_RENDER_QUEUE_MAX`` renders already wait, 503 ``converter_busy``
    with ``Retry-After``."""

    def load() -> tuple[str, str]:
        template = load_template(session, principal.workspace_id, id)
        authorize(principal, "editor", "jobs:write")
        version = load_version(session, template, body.version)
        if version.status != "valid":
            raise ApiProblem(422, "template_invalid", "This template version has broken tags; upload a fixed "
                             "version.", errors=version.errors)
        key = storage_key_of(session, principal.workspace_id, version.artifact_id)
        stem = PurePath(version.filename).stem or "document"
        # Filling and converting need no database: give the connection back now, not after the converter.
        release_connection(session)
        return key, stem

    def fill() -> bytes:
        # MissingFields -> 422 missing_fields listing `missing`
        return render_docx(prepared_template(store, key), body.values)

    key, stem = await anyio.to_thread.run_sync(load)
    if body.format == "docx":
        docx = await run_fill(request.app, fill)
        return Response(docx, media_type=DOCX_TYPE, headers={
            "Content-Disposition": content_disposition(f"{stem}.docx"), "X-Content-Type-Options": "nosniff"})
    gate = render_gate(request.app)
    async with gate.admit():  # 503 converter_busy at once when the queue is full
        docx = await run_fill(request.app, fill)
        async with gate.turn():  # waits on the event loop: no thread, no connection
            pdf = await anyio.to_thread.run_sync(_convert_to_pdf, docx)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": content_disposition(f"{stem}.pdf"), "X-Content-Type-Options": "nosniff"})


def _convert_to_pdf(docx: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="kiln-render-") as tmp:
        source = Path(tmp, "document.docx")
        source.write_bytes(docx)
        return api_converter().convert_one(source).read_bytes()

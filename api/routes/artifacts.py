"""Artifact metadata, signed download links and the download itself (with HTTP Range).

``GET /v1/downloads/{token}`` takes no bearer token: the signed link is the credential. It is
checked (signature, then expiry) before the database is touched, and the artifact is then read
in a session scoped to the workspace named inside the signed link.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ArtifactsReader, DbSession, SettingsDep, StoreDep, get_engine
from api.pagination import newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import ArtifactOut, DownloadLink, DownloadLinkCreate
from api.signing import LinkExpired, LinkInvalid, sign_download, verify_download
from resources.objectstore import content_disposition
from resources.settings import Settings
from warehouse.artifacts import sanitize_filename
from warehouse.db import tenant_session, utcnow
from warehouse.models import Artifact

router = APIRouter(prefix="/v1", tags=["artifacts"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def download_link(settings: Settings, artifact: Artifact, ttl_seconds: int | None = None) -> DownloadLink:
    expires_at = utcnow() + timedelta(seconds=ttl_seconds or settings.download_link_ttl_seconds)
    token = sign_download(settings.secret_key.get_secret_value(), artifact.id, artifact.workspace_id, expires_at)
    # Rounded down to the second the signature covers.
    expires_at = expires_at.replace(microsecond=0)
    return DownloadLink(url=f"{settings.api_base_url.rstrip('/')}/v1/downloads/{token}", expires_at=expires_at)


def available_download_url(settings: Settings, artifact: Artifact | None) -> str | None:
    """A signed link for a ``*_url`` field; None while the artifact is missing or no longer available."""
    return download_link(settings, artifact).url if artifact is not None and artifact.status == "available" else None


def artifact_out(artifact: Artifact, settings: Settings) -> ArtifactOut:
    fields = {name: getattr(artifact, name) for name in ArtifactOut.model_fields if hasattr(artifact, name)}
    if artifact.status == "available":
        link = download_link(settings, artifact)
        fields.update(download_url=link.url, download_url_expires_at=link.expires_at)
    return ArtifactOut.model_validate(fields)


def list_artifacts_query(
    session: Session, workspace_id: uuid.UUID, *, job_id: uuid.UUID | None, limit: int, cursor: str | None
) -> tuple[list[Artifact], str | None]:
    query = select(Artifact).where(Artifact.workspace_id == workspace_id)
    if job_id is not None:
        query = query.where(Artifact.job_id == job_id)
    return newest_first_page(session, query, Artifact, limit=limit, cursor=cursor)


def load_artifact(session: Session, workspace_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact:
    artifact = session.scalar(select(Artifact).where(Artifact.workspace_id == workspace_id, Artifact.id == artifact_id))
    if artifact is None:
        raise not_found("artifact")
    return artifact


@router.get("/artifacts/{id}", response_model=ArtifactOut, responses=problem_responses(401, 403, 404, 422))
def get_artifact(id: uuid.UUID, principal: ArtifactsReader, session: DbSession, settings: SettingsDep) -> ArtifactOut:
    return artifact_out(load_artifact(session, principal.workspace_id, id), settings)


@router.post(
    "/artifacts/{id}/download-link", response_model=DownloadLink, responses=problem_responses(401, 403, 404, 410, 422)
)
def create_download_link(
    id: uuid.UUID,
    principal: ArtifactsReader,
    session: DbSession,
    settings: SettingsDep,
    body: Annotated[DownloadLinkCreate | None, Body()] = None,
) -> DownloadLink:
    artifact = load_artifact(session, principal.workspace_id, id)
    if artifact.status != "available":
        raise ApiProblem(410, "artifact_deleted", "This artifact was deleted by retention.")
    return download_link(settings, artifact, body.expires_in_seconds if body else None)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range -> (start, end inclusive); None: serve everything. Raises on 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: RFC 9110 lets us ignore Range
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApiProblem:
    return ApiProblem(416, "range_not_satisfiable", "The requested range is outside the file.",
                      headers={"Content-Range": f"bytes */{size}"})


@router.get(
    "/downloads/{token}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"},
               206: {"description": "Part of the file (HTTP Range)"},
               307: {"description": "Redirect to the object store's presigned URL (S3 mode)"},
               **problem_responses(403, 404, 416)},
)
def download(token: str, request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    try:
        grant = verify_download(settings.secret_key.get_secret_value(), token)
    except LinkExpired:
        raise ApiProblem(403, "link_expired", "This download link has expired; ask for a new one.") from None
    except LinkInvalid:
        raise ApiProblem(403, "link_invalid", "This download link is not valid.") from None
    with tenant_session(get_engine(request), grant.workspace_id) as session:
        artifact = session.scalar(
            select(Artifact).where(Artifact.workspace_id == grant.workspace_id, Artifact.id == grant.artifact_id)
        )
        if artifact is None or artifact.status != "available":
            raise not_found("artifact")
        session.expunge(artifact)
    remaining = max(1, int((grant.expires_at - utcnow()).total_seconds()))
    presigned = store.presigned_url(
        artifact.storage_key, expires_in=remaining, filename=sanitize_filename(artifact.filename),
        content_type=artifact.content_type,
    )
    if presigned:
        return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": "no-store"})

    size = artifact.size_bytes
    headers = {
        "Content-Disposition": content_disposition(artifact.filename),
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "ETag": f'"{artifact.sha256}"',
    }
    byte_range = parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if byte_range and if_range and if_range.strip() != headers["ETag"]:
        byte_range = None  # the client's partial copy is of another version: send it all
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(store.iter_range(artifact.storage_key, 0, None), media_type=artifact.content_type,
                                 headers=headers)
    start, end = byte_range
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(store.iter_range(artifact.storage_key, start, end), status_code=206,
                             media_type=artifact.content_type, headers=headers)

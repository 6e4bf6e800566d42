"""Artifact metadata, signed download links and the download itself (with HTTP Range).

``GET /v1/downloads/{token}`` takes no bearer token: the signed link is the credential. It is
checked (signature, then expiry) before the database is touched; then, in a session scoped to the
workspace named inside the signed link, the token that minted it must still be live
(``api.links.check_issuer``: else 403 ``link_revoked``) before the artifact is read. ``HEAD`` answers
GET's headers (Range included) without a body. Links are minted only by ``api.links.LinkMinter``.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from api.deps import ArtifactsReader, ConnectionSlotDep, DbSession, SettingsDep, StoreDep
from api.links import LinkMinter, LinkRevoked, Links, check_issuer
from api.pagination import newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import ArtifactOut, DownloadLink, DownloadLinkCreate
from api.signing import DownloadGrant, LinkExpired, LinkInvalid, verify_download
from resources.objectstore import content_disposition
from resources.settings import Settings
from warehouse import api_reads
from warehouse.artifacts import sanitize_filename
from warehouse.db import tenant_session, utcnow
from warehouse.models import Artifact

router = APIRouter(prefix="/v1", tags=["artifacts"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def artifact_out(artifact: Artifact, links: LinkMinter) -> ArtifactOut:
    fields = {name: getattr(artifact, name) for name in ArtifactOut.model_fields if hasattr(artifact, name)}
    if artifact.status == "available" and links.allowed:
        link = links.link(artifact)
        fields.update(download_url=link.url, download_url_expires_at=link.expires_at)
    return ArtifactOut.model_validate(fields)


def list_artifacts_query(
    session: Session, workspace_id: uuid.UUID, *, job_id: uuid.UUID | None, limit: int, cursor: str | None
) -> tuple[list[Artifact], str | None]:
    return newest_first_page(session, api_reads.artifacts_query(workspace_id, job_id=job_id), Artifact, limit=limit,
                             cursor=cursor)


def load_artifact(session: Session, workspace_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact:
    artifact = api_reads.artifact_by_id(session, workspace_id, artifact_id)
    if artifact is None:
        raise not_found("artifact")
    return artifact


@router.get("/artifacts/{id}", response_model=ArtifactOut, responses=problem_responses(401, 403, 404, 422))
def get_artifact(id: uuid.UUID, principal: ArtifactsReader, session: DbSession, links: Links) -> ArtifactOut:
    return artifact_out(load_artifact(session, principal.workspace_id, id), links)


@router.post(
    "/artifacts/{id}/download-link", response_model=DownloadLink, responses=problem_responses(401, 403, 404, 410, 422)
)
def create_download_link(
    id: uuid.UUID,
    principal: ArtifactsReader,
    session: DbSession,
    links: Links,
    body: Annotated[DownloadLinkCreate | None, Body()] = None,
) -> DownloadLink:
    artifact = load_artifact(session, principal.workspace_id, id)
    if artifact.status != "available":
        raise ApiProblem(410, "artifact_deleted", "This artifact was deleted by retention.")
    return links.link(artifact, body.expires_in_seconds if body else None)


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


_DOWNLOAD_RESPONSES = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file"},
    206: {"description": "Part of the file (HTTP Range)"},
    307: {"description": "Redirect to the object store's presigned URL (S3 mode)"},
    **problem_responses(403, 404, 416),
}


def _granted_artifact(request: Request, settings: Settings, token: str) -> tuple[DownloadGrant, Artifact]:
    """The artifact a link grants, once its signature, expiry and issuing token are checked."""
    try:
        grant = verify_download(settings.secret_key.get_secret_value(), token)
    except LinkExpired:
        raise ApiProblem(403, "link_expired", "This download link has expired; ask for a new one.") from None
    except LinkInvalid:
        raise ApiProblem(403, "link_invalid", "This download link is not valid.") from None
    with tenant_session(request.app.state.engine, grant.workspace_id) as session:
        try:
            check_issuer(session, grant)  # before the artifact: a revoked link tells nothing about it
        except LinkRevoked:
            raise ApiProblem(403, "link_revoked", "This download link was revoked: the API token that made it was "
                             "revoked or expired, or its member left the workspace or lost access to files.") from None
        artifact = api_reads.artifact_by_id(session, grant.workspace_id, grant.artifact_id)
        if artifact is None or artifact.status != "available":
            raise not_found("artifact")
        session.expunge(artifact)
    return grant, artifact


def _file_headers(request: Request, artifact: Artifact) -> tuple[int, dict[str, str], tuple[int, int] | None]:
    """(status, headers, byte range or None) of a download, shared by GET and HEAD."""
    size = artifact.size_bytes
    headers = {
        "Content-Disposition": content_disposition(artifact.filename),
        "Content-Type": artifact.content_type,
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
        return 200, headers, None
    start, end = byte_range
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return 206, headers, byte_range


@router.get("/downloads/{token}", response_class=StreamingResponse, responses=_DOWNLOAD_RESPONSES)
def download(token: str, request: Request, settings: SettingsDep, store: StoreDep, _slot: ConnectionSlotDep) -> Response:
    grant, artifact = _granted_artifact(request, settings, token)
    # S3 mode: the presigned URL is a second credential the link's checks no longer govern (a revoked token does
    # not end it), so it lives only long enough for the client to follow the redirect; a later read re-enters here.
    remaining = max(1, int((grant.expires_at - utcnow()).total_seconds()))
    presigned = store.presigned_url(
        artifact.storage_key, expires_in=min(remaining, settings.presigned_redirect_ttl_seconds), filename=sanitize_filename(artifact.filename),
        content_type=artifact.content_type,
    )
    if presigned:
        return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": "no-store"})
    status, headers, byte_range = _file_headers(request, artifact)
    start, end = byte_range if byte_range else (0, None)
    media_type = headers.pop("Content-Type")
    return StreamingResponse(store.iter_range(artifact.storage_key, start, end), status_code=status,
                             media_type=media_type, headers=headers)


@router.head("/downloads/{token}", responses={
    200: {"description": "The file's headers, no body"}, 206: {"description": "The range's headers, no body"},
    **problem_responses(403, 404, 416)})
def download_head(token: str, request: Request, settings: SettingsDep, _slot: ConnectionSlotDep) -> Response:
    """GET's headers without the body, answered here even in S3 mode: a presigned URL is signed for GET only,
    and the metadata the headers need is in the database."""
    _grant, artifact = _granted_artifact(request, settings, token)
    status, headers, _ = _file_headers(request, artifact)
    return Response(status_code=status, headers=headers)

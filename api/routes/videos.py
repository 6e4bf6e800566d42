"""Video notes: upload a video (or audio) file, follow its job, read its notes, reprocess it.

``POST /v1/videos`` streams the multipart ``file`` to the object store (flat memory, size limit,
SHA-256 on the way), checks its magic bytes and that PyAV opens it as a container with an audio or
video stream (headers only, through ranged reads: ``api.video_input``; the ``video_probe`` asset
does the deep check, truncation included, and fails the job with ``invalid_media``), dedupes by
SHA-256 within the workspace and queues a ``video_notes`` job whose partition key is the video id.
Every link is a signed download link.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
import anyio.to_thread
import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.connection_gate import reclaim_connection, release_connection
from api.deps import (
    DbSession,
    JobsReader,
    JobsWriter,
    SettingsDep,
    StoreDep,
    audit,
    authorize,
    idempotency_key_header,
    request_id,
)
from api.limits import ensure_job_capacity, upload_limits
from api.links import LinkMinter, Links
from api.observability import bind_context
from api.pagination import Cursor, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.security import Principal
from api.uploads import StreamedUpload, stream_upload_to_store
from api.video_input import Verdict, normalize_language, open_as_media
from api.video_views import (
    NotesOut,
    VideoOut,
    VideoPage,
    notes_out,
    video_out,
    videos_out,
)
from pipelines.errors import IdempotencyConflict
from pipelines.video_notes.product import CARD, VideoNotesPayload
from resources.objectstore import ObjectStore, artifact_key
from resources.settings import Settings
from warehouse import jobs as job_machine
from warehouse import video_notes as video_rows
from warehouse.artifacts import artifact_id_by_storage_key, expiry, sanitize_filename
from warehouse.models import Artifact, Job
from warehouse.video_notes import (
    JOB_KIND,
    VideoAsset,
    load_video,
    notes_job,
    video_by_sha256,
)

_log = structlog.get_logger("kiln.api")
router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=problem_responses(401, 403, 422))

# Containers PyAV reads that the upload check lets through to PyAV by their magic bytes (api.uploads.sniff).
MEDIA_TYPES = frozenset({
    "video/mp4", "video/quicktime", "audio/mp4", "video/webm", "video/x-matroska", "video/x-msvideo",
    "audio/wav", "audio/ogg", "audio/flac", "audio/mpeg",
})

IdempotencyKey = idempotency_key_header(
    "Same key + same upload returns the first video; a different upload answers 409")
VideoUploadLimits = upload_limits(JOB_KIND)  # quotas and upload caps, checked before the body (api/limits.py)


# -- helpers ---------------------------------------------------------------------------------------------------
def _is_media(store: ObjectStore, upload: StreamedUpload) -> bool:
    """Known container magic first: cheap, and it keeps images out (FFmpeg opens a JPEG as a one-frame video)."""
    if upload.content_type not in MEDIA_TYPES:
        head = b"".join(store.iter_range(upload.key, 0, 376))  # MPEG-TS: a sync byte every 188 bytes
        if not (len(head) > 376 and head[0] == head[188] == head[376] == 0x47):
            return False
    return open_as_media(store, upload.key, upload.size_bytes) is not Verdict.NOT_MEDIA


def _source_gone(session: Session, store: ObjectStore, video: VideoAsset) -> bool:
    """Whether the video's uploaded file is gone (retention removed it, or the store lost it)."""
    source = video_rows.source_artifact(session, video)
    return source is None or source.status != "available" or not store.exists(source.storage_key)


def _load(session: Session, principal: Principal, video_id: uuid.UUID) -> VideoAsset:
    video = load_video(session, principal.workspace_id, video_id)
    if video is None:
        raise not_found("video")
    bind_context(video_id=video.id)
    return video


def _submit(session: Session, principal: Principal, settings: Settings, request: Request, video_id: uuid.UUID,
            options: dict[str, Any], idempotency_key: str | None, fingerprint: dict[str, Any]) -> job_machine.SubmitResult:
    payload = VideoNotesPayload(video_id=video_id, **options).model_dump(mode="json")
    ensure_job_capacity(session, settings, principal.workspace_id, JOB_KIND, idempotency_key)
    return job_machine.submit_job(
        session, workspace_id=principal.workspace_id, kind=JOB_KIND, payload=payload, idempotency_key=idempotency_key,
        fingerprint_payload=fingerprint, max_attempts=CARD.kind().max_attempts or settings.job_max_attempts, subject_id=video_id,
        partition_key=str(video_id), created_by=principal.user_id, request_id=request_id(request),
    )


def _options(upload: StreamedUpload) -> dict[str, Any]:
    exact = upload.fields.get("exact_clips", "false").strip().lower() in ("1", "true", "yes", "on")
    return {"exact_clips": exact, "language": normalize_language(upload.fields.get("language"))}


def _existing_video(session: Session, store: ObjectStore, settings: Settings, links: LinkMinter, request: Request,
                    principal: Principal, upload: StreamedUpload, artifact_id: uuid.UUID, video: VideoAsset) -> VideoOut:
    """A re-upload of ``video``'s bytes: they are stored once per workspace, unless the video's own copy is gone.
    Then the new upload becomes its source again, so that a reprocess has a file to work on."""
    if not _source_gone(session, store, video):
        store.delete(upload.key)
        return video_out(session, links, video)
    source = Artifact(
        id=artifact_id, workspace_id=video.workspace_id, kind="input", storage_key=upload.key,
        sha256=upload.sha256, size_bytes=upload.size_bytes, content_type=upload.content_type,
        filename=video.filename, asset_key="upload", expires_at=expiry(settings.retention_ttl("input")),
    )
    try:
        with session.begin_nested():
            if not video_rows.restore_source(session, video, source):  # the other racer is a plain duplicate
                raise _LostRace
    except _LostRace:
        store.delete(upload.key)
    else:
        audit(session, request, principal, "video.source_restored", "video", str(video.id), size_bytes=upload.size_bytes)
        session.flush()
    session.refresh(video)
    return video_out(session, links, video)


class _LostRace(Exception):
    """A concurrent request changed the video first (its savepoint is rolled back)."""


def _record_upload(session: Session, store: ObjectStore, settings: Settings, links: LinkMinter, request: Request,
                   principal: Principal, upload: StreamedUpload, video_id: uuid.UUID, artifact_id: uuid.UUID,
                   idempotency_key: str | None) -> tuple[VideoOut, bool]:
    """(the video, created?) for a stored upload; drops the blob again when it is a duplicate.
    On an exception the caller deletes the blob: nothing of this request is committed then."""
    options = _options(upload)
    fingerprint = {"sha256": upload.sha256, **options}
    ws = principal.workspace_id
    if idempotency_key is not None:
        earlier = job_machine.find_by_idempotency_key(session, ws, JOB_KIND, idempotency_key)
        if earlier is not None:
            if earlier.request_fingerprint != job_machine.request_fingerprint(JOB_KIND, fingerprint):
                raise IdempotencyConflict("This Idempotency-Key was already used with a different upload; "
                                          "use a new key for a new request.", job_id=str(earlier.id))
            video = _load(session, principal, earlier.subject_id)
            return _existing_video(session, store, settings, links, request, principal, upload, artifact_id, video), False
    duplicate = video_by_sha256(session, ws, upload.sha256)
    if duplicate is None:
        filename = sanitize_filename(upload.filename or "upload")
        try:
            with session.begin_nested():
                job = _submit(session, principal, settings, request, video_id, options, idempotency_key, fingerprint).job
                video = VideoAsset(
                    id=video_id, workspace_id=ws, input_artifact_id=artifact_id, latest_job_id=job.id,
                    sha256=upload.sha256, size_bytes=upload.size_bytes, content_type=upload.content_type,
                    filename=filename, created_by=principal.user_id,
                )
                video_rows.add_video(session, video, Artifact(
                    id=artifact_id, workspace_id=ws, kind="input", storage_key=upload.key, sha256=upload.sha256,
                    size_bytes=upload.size_bytes, content_type=upload.content_type,
                    filename=filename, job_id=job.id, asset_key="upload",
                    expires_at=expiry(settings.retention_ttl("input")),
                ))
        except IntegrityError:  # the same bytes won a concurrent race
            duplicate = video_by_sha256(session, ws, upload.sha256)
            if duplicate is None:
                raise
        else:
            audit(session, request, principal, "video.upload", "video", str(video.id),
                  size_bytes=upload.size_bytes, content_type=upload.content_type)
            session.flush()
            bind_context(job_id=job.id, video_id=video.id)
            return video_out(session, links, video, job), True
    return _existing_video(session, store, settings, links, request, principal, upload, artifact_id, duplicate), False


def _discard_upload(session: Session, store: ObjectStore, workspace_id: uuid.UUID, key: str) -> None:
    """After a failed upload request: roll back, then delete the bytes unless a committed row points at them.
    The key is fresh, so normally none does; asking the database, rather than assuming, keeps the file whenever
    it cannot tell (a commit whose answer was lost). Best effort: the request's own error is the one to report."""
    try:
        session.rollback()
        referenced = artifact_id_by_storage_key(session, workspace_id, key) is not None
    except Exception:  # noqa: BLE001 - best effort: never hide the request's own error
        _log.warning("upload_cleanup_failed", key=key, exc_info=True)
        return
    if referenced:
        return
    try:
        store.delete(key)
    except Exception:  # noqa: BLE001 - best effort: never hide the request's own error
        _log.warning("upload_not_deleted", key=key, exc_info=True)


# -- routes ----------------------------------------------------------------------------------------------------
@router.post(
    "",
    status_code=202,
    response_model=VideoOut,
    responses={200: {"model": VideoOut, "description": "The same bytes (or Idempotency-Key) were uploaded before"},
               **problem_responses(409, 413, 415, 429)},
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, "exact_clips": {"type": "boolean"},
                       "language": {"type": "string"}}}}}}},
)
async def upload_video(request: Request, principal: JobsWriter, session: DbSession, settings: SettingsDep,
                       store: StoreDep, links: Links, _limits: VideoUploadLimits,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    video_id, artifact_id = uuid.uuid4(), uuid.uuid4()
    key = artifact_key(principal.workspace_id, "input", video_id, artifact_id, "source")  # never the user's name
    release_connection(session)
    upload = await stream_upload_to_store(request, store, key, max_bytes=settings.max_upload_bytes)
    committed = False

    def check_and_record() -> tuple[VideoOut, bool]:
        nonlocal committed
        if upload.size_bytes == 0 or not _is_media(store, upload):
            raise ApiProblem(422, "invalid_media", "The file is not a video or audio container Kiln can read "
                             f"(its bytes look like {upload.content_type}).", title="Not a readable video or audio file")
        result = _record_upload(session, store, settings, links, request, principal, upload, video_id, artifact_id,
                                idempotency_key)
        # Committed here rather than after the route: until this returns the stored bytes are the request's to
        # delete on failure; after it, rows point at them.
        session.commit()
        committed = True
        return result

    try:
        await reclaim_connection(session)
    except BaseException:  # the database stayed busy (503): nothing was recorded, so the bytes go
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.delete, upload.key)
        raise
    try:
        out, created = await anyio.to_thread.run_sync(check_and_record)
    except BaseException:
        if not committed:
            with anyio.CancelScope(shield=True):  # a client that went away still must not leave the bytes behind
                await anyio.to_thread.run_sync(_discard_upload, session, store, principal.workspace_id, upload.key)
        raise
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200, headers=links.headers)


@router.get("", response_model=VideoPage)
def list_videos(principal: JobsReader, session: DbSession, links: Links,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                cursor: Cursor = None) -> VideoPage:
    query = video_rows.videos_query(principal.workspace_id)
    page, next_cursor = newest_first_page(session, query, VideoAsset, limit=limit, cursor=cursor)
    return VideoPage(items=videos_out(session, links, page), next_cursor=next_cursor)


@router.get("/{id}", response_model=VideoOut, responses=problem_responses(404))
def get_video(id: uuid.UUID, principal: JobsReader, session: DbSession, links: Links) -> VideoOut:
    return video_out(session, links, _load(session, principal, id))


@router.get("/{id}/notes", response_model=NotesOut, responses=problem_responses(404, 409))
def get_notes(id: uuid.UUID, principal: JobsReader, session: DbSession, links: Links,
              store: StoreDep) -> NotesOut:
    video = _load(session, principal, id)
    job = notes_job(session, principal.workspace_id, video.id)
    if job is None:
        latest = video_rows.newest_job(session, principal.workspace_id, video.id)
        status = latest.status if latest else "unknown"
        raise ApiProblem(409, "notes_not_ready", f"The notes are not ready: the video's job is {status}.",
                         status_detail=status, job_id=str(latest.id) if latest else None)
    return notes_out(session, store, links, video, job)


def _busy(job: Job | None) -> ApiProblem:
    status = job.status if job is not None else "active"
    return ApiProblem(409, "video_busy", f"The video's job is {status}; wait for it or cancel it first.",
                      job_id=str(job.id) if job is not None else None)


@router.post("/{id}/reprocess", status_code=202, response_model=VideoOut, responses=problem_responses(404, 409))
def reprocess_video(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                    settings: SettingsDep, store: StoreDep, links: Links, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    video = _load(session, principal, id)
    authorize(principal, "editor", "jobs:write")  # after the lookup: foreign ids stay 404 for everyone
    ws = principal.workspace_id
    latest = video_rows.newest_job(session, ws, video.id)
    options = {k: v for k, v in (latest.payload if latest else {}).items() if k in ("exact_clips", "language")}
    fingerprint = {"reprocess": str(video.id), **options}
    if idempotency_key is not None and job_machine.find_by_idempotency_key(session, ws, JOB_KIND,
                                                                         idempotency_key) is not None:
        # A retry of a request that went through: its job (or 409 idempotency_conflict), whatever runs now.
        result = _submit(session, principal, settings, request, video.id, options, idempotency_key, fingerprint)
        return JSONResponse(video_out(session, links, video, result.job).model_dump(mode="json"), status_code=200,
                            headers=links.headers)
    if latest is not None and latest.status in job_machine.ACTIVE_STATUSES:
        raise _busy(latest)
    if _source_gone(session, store, video):
        raise ApiProblem(409, "source_expired", "The uploaded file of this video is no longer stored (retention "
                         "removes uploads after their retention period). Upload the same file again with "
                         "POST /v1/videos: it becomes this video's source again, then reprocess.",
                         title="The video's file is gone")
    seen = video.latest_job_id
    try:
        with session.begin_nested():
            result = _submit(session, principal, settings, request, video.id, options, idempotency_key, fingerprint)
            # Check-and-submit as one step: the UPDATE succeeds for one of two concurrent reprocesses only (on
            # PostgreSQL the second waits on the row lock, then finds latest_job_id changed).
            if result.created and not video_rows.set_current_job(session, ws, video.id, result.job.id,
                                                                 expected=seen):
                raise _LostRace
    except _LostRace:
        raise _busy(video_rows.newest_job(session, ws, video.id) or latest) from None
    if result.created:
        session.refresh(video)
        audit(session, request, principal, "video.reprocess", "video", str(video.id))
        session.flush()
    out = video_out(session, links, video, result.job)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if result.created else 200,
                        headers=links.headers)

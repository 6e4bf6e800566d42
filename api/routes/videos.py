"""Video notes: upload a video (or audio) file, follow its job, read its notes, reprocess it.

``POST /v1/videos`` streams the multipart ``file`` to the object store (flat memory, size limit,
SHA-256 on the way), checks the leading bytes for a known audio/video container (a full PyAV probe
of a 2 GiB file does not belong in a request; the ``video_probe`` asset does the deep check and
fails the job with ``invalid_media``), dedupes by SHA-256 within the workspace and queues a
``video_notes`` job whose partition key is the video id. Every link is a signed download link.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import (
    DbSession, JobsReader, JobsWriter, SettingsDep, StoreDep, audit, authorize, idempotency_key_header,
    release_connection, request_id,
)
from api.job_kinds import register_job_kind
from api.observability import bind_context
from api.pagination import Cursor, Page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.routes.artifacts import available_download_url
from api.schemas import JobStatus, UtcDatetime
from api.security import Principal
from api.uploads import StreamedUpload, stream_upload_to_store
from pipelines.errors import IdempotencyConflict
from resources.objectstore import ObjectStore, artifact_key
from resources.settings import Settings
from warehouse import jobs as job_machine
from warehouse.artifacts import expiry, sanitize_filename
from warehouse.models import Artifact, Job
from warehouse.video_notes import (
    JOB_KIND,
    VideoAsset,
    highlights_of_job,
    job_outputs,
    load_video,
    notes_job,
    video_by_sha256,
    video_jobs,
)

router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=problem_responses(401, 403, 422))

# Containers PyAV reads that the upload check accepts by their magic bytes (api.uploads.sniff).
MEDIA_TYPES = frozenset({
    "video/mp4", "video/quicktime", "audio/mp4", "video/webm", "video/x-matroska", "video/x-msvideo",
    "audio/wav", "audio/ogg", "audio/flac", "audio/mpeg",
})
_OUTPUT_LINKS = {"transcript_json_url": "transcript.json", "srt_url": "transcript.srt", "vtt_url": "transcript.vtt",
                 "txt_url": "transcript.txt", "summary_url": "Summary.md", "highlights_url": "highlights.json"}

IdempotencyKey = idempotency_key_header(
    "Same key + same upload returns the first video; a different upload answers 409")


class VideoNotesPayload(BaseModel):
    """The ``video_notes`` job payload. Submitted only by ``POST /v1/videos`` and ``…/reprocess``: a job from the
    generic ``POST /v1/jobs`` would lack the upload and the video's partition key, so that route answers 422."""

    model_config = ConfigDict(extra="forbid")

    video_id: uuid.UUID
    exact_clips: bool = Field(default=False, description="Re-encode clips to cut exactly (slower) instead of stream copy")
    language: str | None = Field(default=None, max_length=16, description="Skip language detection, e.g. 'en'")


register_job_kind(JOB_KIND, VideoNotesPayload, description="Video notes: transcript, summary, highlights, screenshots, clips",
                  submit_via_jobs_api=False, product_route="POST /v1/videos (or POST /v1/videos/{id}/reprocess)")


class VideoOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID | None
    status: JobStatus | None
    progress: int = Field(ge=0, le=100)
    error_code: str | None = None
    error_message: str | None = None
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    duration_s: float | None = None
    container: str | None = None
    streams: list[dict[str, Any]] = Field(default_factory=list)
    language: str | None = None
    source_url: str | None = Field(default=None, description="A signed download link to the uploaded file "
                                   "(null once retention has removed it)")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class VideoPage(Page[VideoOut]):
    pass


class SegmentOut(BaseModel):
    id: int
    start: float
    end: float
    text: str


class HighlightOut(BaseModel):
    rank: int
    start: float
    end: float
    title: str
    score: float
    text: str
    screenshot_url: str | None = None
    clip_url: str | None = None
    clip_start: float | None = Field(default=None, description="Where the clip really starts (a keyframe in copy mode)")
    clip_end: float | None = None


class ScreenshotOut(BaseModel):
    time_s: float
    reason: str
    screenshot_url: str = Field(description="A signed download link to the JPEG")


class NotesOut(BaseModel):
    video_id: uuid.UUID
    job_id: uuid.UUID
    language: str | None
    duration_s: float | None
    summary_markdown: str
    summary_method: str | None = None
    segments: list[SegmentOut]
    highlights: list[HighlightOut]
    screenshots: list[ScreenshotOut]
    transcript_json_url: str | None = None
    srt_url: str | None = None
    vtt_url: str | None = None
    txt_url: str | None = None
    summary_url: str | None = None
    highlights_url: str | None = None


# -- helpers ---------------------------------------------------------------------------------------------------
def _is_media(store: ObjectStore, upload: StreamedUpload) -> bool:
    if upload.content_type in MEDIA_TYPES:
        return True
    head = b"".join(store.iter_range(upload.key, 0, 376))  # MPEG-TS: a sync byte every 188 bytes
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


def _newest_jobs(session: Session, workspace_id: uuid.UUID, video_ids: set[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """Each video's newest job (which may be a backfill's: Dagster re-submits through the asset helper), in one
    query: a window ranks every video's jobs newest first and only the first of each comes back."""
    if not video_ids:
        return {}
    ranked = select(Job.id, func.row_number().over(
        partition_by=Job.subject_id, order_by=(Job.created_at.desc(), Job.id.desc())).label("rank")).where(
        Job.workspace_id == workspace_id, Job.kind == JOB_KIND, Job.subject_id.in_(video_ids)).subquery()
    newest = session.scalars(select(Job).join(ranked, ranked.c.id == Job.id).where(
        Job.workspace_id == workspace_id, ranked.c.rank == 1))
    return {job.subject_id: job for job in newest}


def videos_out(session: Session, settings: Settings, videos: list[VideoAsset],
               jobs: dict[uuid.UUID, Job] | None = None) -> list[VideoOut]:
    """The answers for ``videos`` (one workspace's) in two queries, whatever their number: the newest jobs
    (unless ``jobs`` gives them by video id) and the uploaded files."""
    if not videos:
        return []
    workspace_id = videos[0].workspace_id
    if jobs is None:
        jobs = _newest_jobs(session, workspace_id, {v.id for v in videos})
    sources = {a.id: a for a in session.scalars(select(Artifact).where(
        Artifact.workspace_id == workspace_id, Artifact.id.in_({v.input_artifact_id for v in videos})))}
    return [_video_out(settings, v, jobs.get(v.id), sources.get(v.input_artifact_id)) for v in videos]


def video_out(session: Session, settings: Settings, video: VideoAsset, job: Job | None = None) -> VideoOut:
    return videos_out(session, settings, [video], {video.id: job} if job is not None else None)[0]


def _video_out(settings: Settings, video: VideoAsset, job: Job | None, source: Artifact | None) -> VideoOut:
    media = video.media or {}
    return VideoOut(
        id=video.id, job_id=job.id if job else None, status=job.status if job else None,
        progress=job.progress if job else 0, error_code=job.error_code if job else None,
        error_message=job.error_message if job else None, filename=video.filename, content_type=video.content_type,
        size_bytes=video.size_bytes, sha256=video.sha256,
        duration_s=video.duration_ms / 1000 if video.duration_ms is not None else None,
        container=media.get("container"), streams=list(media.get("streams") or []), language=video.language,
        source_url=available_download_url(settings, source), created_at=video.created_at, updated_at=video.updated_at,
    )


def _load(session: Session, principal: Principal, video_id: uuid.UUID) -> VideoAsset:
    video = load_video(session, principal.workspace_id, video_id)
    if video is None:
        raise not_found("video")
    bind_context(video_id=video.id)
    return video


def _submit(session: Session, principal: Principal, settings: Settings, request: Request, video_id: uuid.UUID,
            options: dict[str, Any], idempotency_key: str | None, fingerprint: dict[str, Any]) -> job_machine.SubmitResult:
    payload = VideoNotesPayload(video_id=video_id, **options).model_dump(mode="json")
    return job_machine.submit_job(
        session, workspace_id=principal.workspace_id, kind=JOB_KIND, payload=payload, idempotency_key=idempotency_key,
        fingerprint_payload=fingerprint, max_attempts=settings.job_max_attempts, subject_id=video_id,
        partition_key=str(video_id), created_by=principal.user_id, request_id=request_id(request),
    )


def _options(upload: StreamedUpload) -> dict[str, Any]:
    exact = upload.fields.get("exact_clips", "false").strip().lower() in ("1", "true", "yes", "on")
    language = (upload.fields.get("language") or "").strip() or None
    if language is not None and not (language.isascii() and language.replace("-", "").isalpha() and len(language) <= 16):
        raise ApiProblem(422, "validation_error", "language must be a language code such as 'en'.")
    return {"exact_clips": exact, "language": language}


def _record_upload(session: Session, store: ObjectStore, settings: Settings, request: Request, principal: Principal,
                   upload: StreamedUpload, video_id: uuid.UUID, artifact_id: uuid.UUID,
                   idempotency_key: str | None) -> tuple[VideoOut, bool]:
    """(the video, created?) for a stored upload; drops the blob again when it is a duplicate."""
    options = _options(upload)
    fingerprint = {"sha256": upload.sha256, **options}
    ws = principal.workspace_id
    if idempotency_key is not None:
        earlier = session.scalar(select(Job).where(Job.workspace_id == ws, Job.kind == JOB_KIND,
                                                   Job.idempotency_key == idempotency_key))
        if earlier is not None:
            store.delete(upload.key)
            if earlier.request_fingerprint != job_machine.request_fingerprint(JOB_KIND, fingerprint):
                raise IdempotencyConflict("This Idempotency-Key was already used with a different upload; "
                                          "use a new key for a new request.", job_id=str(earlier.id))
            return video_out(session, settings, _load(session, principal, earlier.subject_id)), False
    duplicate = video_by_sha256(session, ws, upload.sha256)
    if duplicate is None:
        filename = sanitize_filename(upload.filename or "upload")
        try:
            with session.begin_nested():
                job = _submit(session, principal, settings, request, video_id, options, idempotency_key, fingerprint).job
                session.add(Artifact(
                    id=artifact_id, workspace_id=ws, kind="input", storage_key=upload.key, sha256=upload.sha256,
                    size_bytes=upload.size_bytes, content_type=upload.content_type,
                    filename=filename, job_id=job.id, asset_key="upload",
                    expires_at=expiry(settings.retention_ttl("input")),
                ))
                session.flush()
                video = VideoAsset(
                    id=video_id, workspace_id=ws, input_artifact_id=artifact_id, latest_job_id=job.id,
                    sha256=upload.sha256, size_bytes=upload.size_bytes, content_type=upload.content_type,
                    filename=filename, created_by=principal.user_id,
                )
                session.add(video)
                session.flush()
        except IntegrityError:  # the same bytes won a concurrent race
            duplicate = video_by_sha256(session, ws, upload.sha256)
            if duplicate is None:
                raise
        else:
            audit(session, request, principal, "video.upload", "video", str(video.id),
                  size_bytes=upload.size_bytes, content_type=upload.content_type)
            session.flush()
            bind_context(job_id=job.id, video_id=video.id)
            return video_out(session, settings, video, job), True
    store.delete(upload.key)  # same bytes are stored once per workspace
    return video_out(session, settings, duplicate), False


# -- routes ----------------------------------------------------------------------------------------------------
@router.post(
    "",
    status_code=202,
    response_model=VideoOut,
    responses={200: {"model": VideoOut, "description": "The same bytes (or Idempotency-Key) were uploaded before"},
               **problem_responses(409, 413, 415)},
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, "exact_clips": {"type": "boolean"},
                       "language": {"type": "string"}}}}}}},
)
async def upload_video(request: Request, principal: JobsWriter, session: DbSession, settings: SettingsDep,
                       store: StoreDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    video_id, artifact_id = uuid.uuid4(), uuid.uuid4()
    key = artifact_key(principal.workspace_id, "input", video_id, artifact_id, "source")  # never the user's name
    release_connection(session)
    upload = await stream_upload_to_store(request, store, key, max_bytes=settings.max_upload_bytes)
    if upload.size_bytes == 0 or not await anyio.to_thread.run_sync(_is_media, store, upload):
        store.delete(upload.key)
        raise ApiProblem(422, "invalid_media", "The file is not a video or audio container Kiln can read "
                         f"(its bytes look like {upload.content_type}).", title="Not a readable video or audio file")
    try:
        out, created = await anyio.to_thread.run_sync(
            lambda: _record_upload(session, store, settings, request, principal, upload, video_id, artifact_id,
                                   idempotency_key))
    except BaseException:
        if video_by_sha256(session, principal.workspace_id, upload.sha256) is None:
            store.delete(upload.key)
        raise
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200)


@router.get("", response_model=VideoPage)
def list_videos(principal: JobsReader, session: DbSession, settings: SettingsDep,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                cursor: Cursor = None) -> VideoPage:
    query = select(VideoAsset).where(VideoAsset.workspace_id == principal.workspace_id)
    page, next_cursor = newest_first_page(session, query, VideoAsset, limit=limit, cursor=cursor)
    return VideoPage(items=videos_out(session, settings, page), next_cursor=next_cursor)


@router.get("/{id}", response_model=VideoOut, responses=problem_responses(404))
def get_video(id: uuid.UUID, principal: JobsReader, session: DbSession, settings: SettingsDep) -> VideoOut:
    return video_out(session, settings, _load(session, principal, id))


@router.get("/{id}/notes", response_model=NotesOut, responses=problem_responses(404, 409))
def get_notes(id: uuid.UUID, principal: JobsReader, session: DbSession, settings: SettingsDep,
              store: StoreDep) -> NotesOut:
    video = _load(session, principal, id)
    job = notes_job(session, principal.workspace_id, video.id)
    if job is None:
        latest = next(iter(video_jobs(session, principal.workspace_id, video.id)), None)
        status = latest.status if latest else "unknown"
        raise ApiProblem(409, "notes_not_ready", f"The notes are not ready: the video's job is {status}.",
                         status_detail=status, job_id=str(latest.id) if latest else None)
    outputs = job_outputs(session, principal.workspace_id, job.id)
    by_id = {a.id: a for a in outputs.values()}
    transcript = json.loads(store.get_bytes(outputs["transcript.json"].storage_key)) if "transcript.json" in outputs else {}
    summary = store.get_bytes(outputs["Summary.md"].storage_key).decode("utf-8") if "Summary.md" in outputs else ""
    method = json.loads(store.get_bytes(outputs["summary.json"].storage_key)).get("method") if "summary.json" in outputs else None
    shots = json.loads(store.get_bytes(outputs["screenshots.json"].storage_key))["screenshots"] if "screenshots.json" in outputs else []
    highlights = [
        HighlightOut(rank=h.rank, start=h.start_ms / 1000, end=h.end_ms / 1000, title=h.title, score=h.score,
                     text=h.text, screenshot_url=available_download_url(settings, by_id.get(h.screenshot_artifact_id)),
                     clip_url=available_download_url(settings, by_id.get(h.clip_artifact_id)),
                     clip_start=h.clip_start_ms / 1000 if h.clip_start_ms is not None else None,
                     clip_end=h.clip_end_ms / 1000 if h.clip_end_ms is not None else None)
        for h in highlights_of_job(session, principal.workspace_id, job.id)
    ]
    screenshots = [ScreenshotOut(time_s=s["actual_s"], reason=s.get("reason", ""), screenshot_url=url)
                   for s in shots if (url := available_download_url(settings, by_id.get(uuid.UUID(s["artifact_id"])))) is not None]
    return NotesOut(
        video_id=video.id, job_id=job.id, language=transcript.get("language"),
        duration_s=video.duration_ms / 1000 if video.duration_ms is not None else None,
        summary_markdown=summary, summary_method=method,
        segments=[SegmentOut(id=s["id"], start=s["start"], end=s["end"], text=s["text"])
                  for s in transcript.get("segments", [])],
        highlights=highlights, screenshots=screenshots,
        **{field: available_download_url(settings, outputs.get(name)) for field, name in _OUTPUT_LINKS.items()},
    )


@router.post("/{id}/reprocess", status_code=202, response_model=VideoOut, responses=problem_responses(404, 409))
def reprocess_video(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                    settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    video = _load(session, principal, id)
    authorize(principal, "editor", "jobs:write")  # after the lookup: foreign ids stay 404 for everyone
    latest = next(iter(video_jobs(session, principal.workspace_id, video.id)), None)
    options = {k: v for k, v in (latest.payload if latest else {}).items() if k in ("exact_clips", "language")}
    if idempotency_key is None and latest is not None and latest.status in job_machine.ACTIVE_STATUSES:
        raise ApiProblem(409, "video_busy", f"The video's job is {latest.status}; wait for it or cancel it first.",
                         job_id=str(latest.id))
    result = _submit(session, principal, settings, request, video.id, options, idempotency_key,
                     {"reprocess": str(video.id), **options})
    if result.created:
        video.latest_job_id = result.job.id
        audit(session, request, principal, "video.reprocess", "video", str(video.id))
        session.flush()
    out = video_out(session, settings, video, result.job)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if result.created else 200)

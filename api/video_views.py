"""The answers of the video notes API: videos with their newest job, and the notes a job made.

Every file is a signed download link (``api.links.LinkMinter.url``): null once retention removed it, and null
in every field when the caller's token lacks ``artifacts:read``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.pagination import Page
from api.links import LinkMinter
from api.schemas import JobStatus, UtcDatetime
from pipelines.errors import ObjectMissing
from resources.objectstore import ObjectStore
from warehouse.models import Artifact, Job
from warehouse.video_notes import (
    JOB_KIND,
    Highlight,
    VideoAsset,
    highlights_of_job,
    job_outputs,
)

_OUTPUT_LINKS = {"transcript_json_url": "transcript.json", "srt_url": "transcript.srt", "vtt_url": "transcript.vtt",
                 "txt_url": "transcript.txt", "summary_url": "Summary.md", "highlights_url": "highlights.json",
                 "bundle_url": "notes.zip"}
_SCREENSHOT_NAME = re.compile(r"shot_(\d{8})\.jpg")  # pipelines.video_notes.frames.screenshot_name


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
    screenshot_url: str | None = Field(description="A signed download link to the JPEG (null when the token "
                                       "lacks artifacts:read)")


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
    bundle_url: str | None = Field(default=None, description="notes.zip: Summary.md with the screenshots its "
                                   "relative links point to, for reading offline")


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


def videos_out(session: Session, links: LinkMinter, videos: list[VideoAsset],
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
    return [_video_out(links, v, jobs.get(v.id), sources.get(v.input_artifact_id)) for v in videos]


def video_out(session: Session, links: LinkMinter, video: VideoAsset, job: Job | None = None) -> VideoOut:
    return videos_out(session, links, [video], {video.id: job} if job is not None else None)[0]


def _video_out(links: LinkMinter, video: VideoAsset, job: Job | None, source: Artifact | None) -> VideoOut:
    media = video.media or {}
    return VideoOut(
        id=video.id, job_id=job.id if job else None, status=job.status if job else None,
        progress=job.progress if job else 0, error_code=job.error_code if job else None,
        error_message=job.error_message if job else None, filename=video.filename, content_type=video.content_type,
        size_bytes=video.size_bytes, sha256=video.sha256,
        duration_s=video.duration_ms / 1000 if video.duration_ms is not None else None,
        container=media.get("container"), streams=list(media.get("streams") or []), language=video.language,
        source_url=links.url(source), created_at=video.created_at, updated_at=video.updated_at,
    )


def notes_out(session: Session, store: ObjectStore, links: LinkMinter, video: VideoAsset, job: Job) -> NotesOut:
    """The notes ``job`` (a succeeded one) made of ``video``, every file as a signed link."""
    outputs = job_outputs(session, video.workspace_id, job.id)
    by_id = {a.id: a for a in outputs.values()}
    transcript = json.loads(store.get_bytes(outputs["transcript.json"].storage_key)) if "transcript.json" in outputs else {}
    summary = store.get_bytes(outputs["Summary.md"].storage_key).decode("utf-8") if "Summary.md" in outputs else ""
    method = json.loads(store.get_bytes(outputs["summary.json"].storage_key)).get("method") if "summary.json" in outputs else None
    rows = highlights_of_job(session, video.workspace_id, job.id)
    highlights = [
        HighlightOut(rank=h.rank, start=h.start_ms / 1000, end=h.end_ms / 1000, title=h.title, score=h.score,
                     text=h.text, screenshot_url=links.url(by_id.get(h.screenshot_artifact_id)),
                     clip_url=links.url(by_id.get(h.clip_artifact_id)),
                     clip_start=h.clip_start_ms / 1000 if h.clip_start_ms is not None else None,
                     clip_end=h.clip_end_ms / 1000 if h.clip_end_ms is not None else None)
        for h in rows
    ]
    return NotesOut(
        video_id=video.id, job_id=job.id, language=transcript.get("language"),
        duration_s=video.duration_ms / 1000 if video.duration_ms is not None else None,
        summary_markdown=summary, summary_method=method,
        segments=[SegmentOut(id=s["id"], start=s["start"], end=s["end"], text=s["text"])
                  for s in transcript.get("segments", [])],
        highlights=highlights, screenshots=_screenshots(store, links, outputs, rows),
        **{field: links.url(outputs.get(name)) for field, name in _OUTPUT_LINKS.items()},
    )


def _screenshots(store: ObjectStore, links: LinkMinter, outputs: dict[str, Artifact],
                 highlights: list[Highlight]) -> list[ScreenshotOut]:
    """From screenshots.json (exact frame times, every reason) while it is kept; else from the JPEGs' own rows,
    which outlive it: the time their name gives (a highlight's exact frame time), reason highlight or scene_change."""
    by_id = {a.id: a for a in outputs.values()}
    if "screenshots.json" in outputs:
        try:
            shots = json.loads(store.get_bytes(outputs["screenshots.json"].storage_key))["screenshots"]
        except ObjectMissing:
            pass
        else:
            kept = [(s, by_id.get(uuid.UUID(s["artifact_id"]))) for s in shots]
            return [ScreenshotOut(time_s=s["actual_s"], reason=s.get("reason", ""), screenshot_url=links.url(a))
                    for s, a in kept if a is not None and a.status == "available"]
    at_highlight = {h.screenshot_artifact_id: h.screenshot_ms for h in highlights if h.screenshot_artifact_id}
    screenshots = []
    for artifact in outputs.values():
        name = _SCREENSHOT_NAME.fullmatch(artifact.filename)
        if name is None or artifact.kind != "output":
            continue
        ms = at_highlight.get(artifact.id)
        screenshots.append(ScreenshotOut(
            time_s=(ms if ms is not None else int(name.group(1))) / 1000,
            reason="highlight" if artifact.id in at_highlight else "scene_change",
            screenshot_url=links.url(artifact)))
    return sorted(screenshots, key=lambda shot: shot.time_s)

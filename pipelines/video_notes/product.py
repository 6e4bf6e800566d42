"""The video notes card: a video or audio upload -> transcript, summary, highlights, screenshots, clips."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from pipelines.card import JobKind, ProductCard

KIND = "video_notes"
PARTITIONS = "videos"  # partition key: the video asset's id


class VideoNotesPayload(BaseModel):
    """The ``video_notes`` job payload. Submitted only by ``POST /v1/videos`` and ``…/reprocess``: a job from the
    generic ``POST /v1/jobs`` would lack the upload and the video's partition key, so that route answers 422."""

    model_config = ConfigDict(extra="forbid")

    video_id: uuid.UUID
    exact_clips: bool = Field(default=False, description="Re-encode clips to cut exactly (slower) instead of stream copy")
    language: str | None = Field(default=None, max_length=16, description="Skip language detection, e.g. 'en'")


CARD = ProductCard(
    name="video_notes",
    summary="Video notes: transcript, summary, highlights, screenshots, clips",
    job_kinds=(
        JobKind(KIND, partitions=PARTITIONS, payload_model=VideoNotesPayload,
                description="Video notes: transcript, summary, highlights, screenshots, clips",
                submit_via_jobs_api=False, product_route="POST /v1/videos (or POST /v1/videos/{id}/reprocess)"),
    ),
    artifact_ttls={"input": "retention_days_input", "intermediate": "retention_days_intermediate",
                   "output": "retention_days_output"},
    route_prefix="/v1/videos",
)

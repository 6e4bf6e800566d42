"""The LinkedIn publishing card: scheduled posts (exactly once) and generated drafts.

A ``linkedin_post`` job is created by the scheduler sensor when it claims a due schedule (never through
``POST /v1/jobs``): its partition key is the schedule id and its run key ``<schedule_id>:<claims>``, the
schedule's run number. A ``linkedin_generate_draft`` job comes from ``POST /v1/drafts/generate``.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from pipelines.card import JobKind, ProductCard

POST_KIND = "linkedin_post"
GENERATE_KIND = "linkedin_generate_draft"
POST_PARTITIONS = "scheduled_posts"  # partition key: the schedule's id
GENERATE_PARTITIONS = "draft_generations"  # partition key: the job's id
POOL = "linkedin"  # caps concurrent sends (dagster.yaml tag concurrency on kiln/pool)
ROUTE_PREFIX = "/v1/linkedin"


class PostPayload(BaseModel):
    """Written by the scheduler sensor for each claim."""

    model_config = ConfigDict(extra="forbid")

    schedule_id: uuid.UUID
    claims: int = Field(ge=1)  # the schedule's run number when claimed
    reclaimed: bool = False  # the previous run died: reconcile before any send


class GenerateDraftPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persona_id: uuid.UUID
    topic: str = Field(min_length=1, max_length=500)
    pack: str = Field(default="default", min_length=1, max_length=100)
    channel: str = Field(default="production", min_length=1, max_length=64)


CARD = ProductCard(
    name="linkedin",
    summary="LinkedIn publishing: connected member accounts, personas, config packs, approved drafts posted once",
    job_kinds=(
        JobKind(POST_KIND, partitions=POST_PARTITIONS, payload_model=PostPayload, pool=POOL, max_attempts=1,
                description="LinkedIn: publish one scheduled post (claimed by the scheduler sensor)",
                submit_via_jobs_api=False, product_route="POST /v1/drafts/{draft_id}/schedule"),
        JobKind(GENERATE_KIND, partitions=GENERATE_PARTITIONS, payload_model=GenerateDraftPayload,
                description="LinkedIn: write a draft from a persona, a topic and a config pack channel",
                submit_via_jobs_api=False, product_route="POST /v1/drafts/generate"),
    ),
    # The generation record (prompt inputs, pack and persona versions) of a generated draft.
    artifact_ttls={"output": "retention_days_output"},
    route_prefix=ROUTE_PREFIX,
)

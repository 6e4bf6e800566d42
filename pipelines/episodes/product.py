"""The Episodes card: characters defined once, an episode package per story, continuity checks.

``episode_package`` builds the package (script -> scenes -> asset plan -> render plan -> ZIP) for one episode,
partition key = the episode id. ``episode_render`` encodes the package's animatic (MP4) in pool ``render`` (one
encode per worker at a time), on the same partition. See docs/episodes.md.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

from pipelines.card import JobKind, ProductCard

PACKAGE_KIND = "episode_package"
RENDER_KIND = "episode_render"
PARTITIONS = "episodes"  # partition key: the episode's id
RENDER_POOL = "render"  # one animatic encode at a time per worker (dagster.yaml tag concurrency)


class EpisodePackagePayload(BaseModel):
    """Written by ``POST /v1/series/{id}/episodes`` and ``POST /v1/episodes/{id}/repin``."""

    model_config = ConfigDict(extra="forbid")

    episode_id: uuid.UUID


class EpisodeRenderPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episode_id: uuid.UUID
    burn_subtitles: bool = False


CARD = ProductCard(
    name="episodes",
    summary="Episodes: characters pinned per episode, a package per story (script, scenes, plans), continuity",
    job_kinds=(
        JobKind(PACKAGE_KIND, partitions=PARTITIONS, payload_model=EpisodePackagePayload,
                description="Episodes: build an episode package (script, scenes, asset and render plans, ZIP)",
                submit_via_jobs_api=False,
                product_route="POST /v1/series/{id}/episodes (or POST /v1/episodes/{id}/repin)"),
        JobKind(RENDER_KIND, partitions=PARTITIONS, payload_model=EpisodeRenderPayload, pool=RENDER_POOL,
                description="Episodes: render the animatic MP4 of a packaged episode whose continuity passes",
                submit_via_jobs_api=False, product_route="POST /v1/episodes/{id}/render"),
    ),
    artifact_ttls={"input": "retention_days_input", "intermediate": "retention_days_intermediate",
                   "output": "retention_days_output"},
    route_prefix="/v1/episodes",
)

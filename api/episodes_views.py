"""Request and response models of the Episodes routes, and the row -> answer conversions.

Request bodies reuse the domain's own models (``pipelines.episodes.models``), so the API refuses exactly
what the pipeline would (names with quotes or control characters, palette colours, voice ranges, ...) as
422 before anything is stored.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.links import LinkMinter
from api.pagination import Page
from api.schemas import PlainText, UtcDatetime
from pipelines.episodes.models import (
    NAME_PATTERN,
    Character as CharacterDefinition,
    DynamicState,
    RelationshipType,
    StaticTraits,
    StyleGuide,
    Voice,
)
from warehouse.episodes import Character, CharacterImage, CharacterVersion, Episode, Relationship, Series
from warehouse.models import Artifact

MAX_EPISODE_NUMBER = 100_000


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # Every free-text field (traits, descriptions, the story) lands in PostgreSQL text or JSON: no NUL.
        if _has_nul(data):
            raise ValueError("NUL characters are not allowed in any field")
        return data


class CharacterIn(_In):
    name: str = Field(pattern=NAME_PATTERN)
    static_traits: StaticTraits = StaticTraits()
    dynamic_defaults: DynamicState = DynamicState()
    description: str = Field("", max_length=2000)
    voice: Voice | None = None


class CharacterPatch(_In):
    """Only the fields given change; every accepted edit is a new immutable version."""

    name: str | None = Field(None, pattern=NAME_PATTERN)
    static_traits: StaticTraits | None = None
    dynamic_defaults: DynamicState | None = None
    description: str | None = Field(None, max_length=2000)
    voice: Voice | None = None


class ReferenceOut(BaseModel):
    view: str
    sha256: str
    phash: str | None
    media_type: str
    width: int | None
    height: int | None


class CharacterOut(BaseModel):
    id: uuid.UUID
    version: int
    digest: str
    name: str
    static_traits: dict[str, Any]
    dynamic_defaults: dict[str, Any]
    description: str
    voice: dict[str, Any] | None
    references: list[ReferenceOut]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class NearDuplicate(BaseModel):
    image_id: uuid.UUID
    character_id: uuid.UUID
    view: str
    sha256: str
    distance: int = Field(description="Bits of the 64-bit perceptual hash that differ")


class ImageOut(BaseModel):
    id: uuid.UUID
    character_id: uuid.UUID
    view: str
    sha256: str
    phash: str | None
    media_type: str
    width: int
    height: int
    created_at: UtcDatetime


class ImageUploadOut(BaseModel):
    image: ImageOut
    character: CharacterOut
    duplicate: bool = Field(description="These bytes were already this character's image: nothing new was stored")
    stored_bytes: bool = Field(description="False when the workspace already held these bytes (content-addressed)")
    near_duplicates: list[NearDuplicate]


class RelationshipIn(_In):
    a_id: uuid.UUID
    b_id: uuid.UUID
    type: RelationshipType
    directed: bool = False
    description: str = Field("", max_length=500)
    since_episode: int | None = Field(None, ge=1, le=MAX_EPISODE_NUMBER)


class RelationshipOut(BaseModel):
    id: uuid.UUID
    a_id: uuid.UUID
    b_id: uuid.UUID
    type: str
    directed: bool
    description: str
    since_episode: int | None
    created_at: UtcDatetime


class SeriesIn(_In):
    title: PlainText = Field(min_length=1, max_length=200)
    style: StyleGuide = StyleGuide()
    cast: list[uuid.UUID] = Field(default_factory=list, max_length=200)


class SeriesOut(BaseModel):
    id: uuid.UUID
    title: str
    style: dict[str, Any]
    cast: list[uuid.UUID]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EpisodeIn(_In):
    number: int = Field(ge=1, le=MAX_EPISODE_NUMBER)
    title: PlainText = Field(min_length=1, max_length=200)
    story: str = Field(description="Plain text; paragraphs become scenes (limits: KILN_EPISODES_MAX_STORY_CHARS, "
                       "KILN_EPISODES_MAX_SCENES)")
    cast: list[uuid.UUID] | None = Field(None, max_length=200, description="Default: the series' cast")


class PinOut(BaseModel):
    character_id: uuid.UUID
    version: int
    digest: str
    name: str


class ContinuityOut(BaseModel):
    passes: bool
    findings: list[dict[str, Any]]


class EpisodeOut(BaseModel):
    id: uuid.UUID
    series_id: uuid.UUID
    number: int
    title: str
    status: str = Field(description="queued, running, retrying, ready, blocked (continuity fails), failed, canceled")
    job_id: uuid.UUID
    job_status: str | None
    cast: list[PinOut]
    continuity: ContinuityOut | None = Field(description="The findings of the latest package (null until built)")
    package_url: str | None = None
    render_job_id: uuid.UUID | None = Field(None, description="The latest animatic render job")
    render_status: str | None = None
    animatic_url: str | None = Field(None, description="The latest rendered animatic (MP4), once there is one")
    estimate: dict[str, Any] | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class RenderIn(_In):
    burn_subtitles: bool = Field(False, description="Draw each line's subtitle on the frames too")


class EpisodeSummary(BaseModel):
    id: uuid.UUID
    number: int
    title: str
    status: str
    job_id: uuid.UUID
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EpisodePage(Page[EpisodeSummary]):
    pass


class CharacterPage(Page[CharacterOut]):
    pass


class SeriesPage(Page[SeriesOut]):
    pass


class EstimateOut(BaseModel):
    episode_id: uuid.UUID
    source: str = Field(description="package: from the latest package; computed: from the pins, before a package")
    estimate: dict[str, Any]


# --------------------------------------------------------------------------- conversions

def definition_of(version: CharacterVersion) -> CharacterDefinition:
    return CharacterDefinition.model_validate(version.definition)


def character_out(character: Character, version: CharacterVersion) -> CharacterOut:
    d = version.definition
    return CharacterOut(
        id=character.id, version=version.version, digest=version.digest, name=d["name"],
        static_traits=d.get("static_traits", {}), dynamic_defaults=d.get("dynamic_defaults", {}),
        description=d.get("description", ""), voice=d.get("voice"),
        references=[ReferenceOut(**{k: ref.get(k) for k in ReferenceOut.model_fields}) for ref in d.get("references", [])],
        created_at=character.created_at, updated_at=character.updated_at)


def image_out(image: CharacterImage) -> ImageOut:
    return ImageOut(id=image.id, character_id=image.character_id, view=image.view, sha256=image.sha256,
                    phash=image.phash, media_type=image.media_type, width=image.width, height=image.height,
                    created_at=image.created_at)


def relationship_out(row: Relationship) -> RelationshipOut:
    return RelationshipOut(id=row.id, a_id=row.a_id, b_id=row.b_id, type=row.type, directed=row.directed,
                           description=row.description, since_episode=row.since_episode, created_at=row.created_at)


def series_out(row: Series) -> SeriesOut:
    return SeriesOut(id=row.id, title=row.title, style=row.style, cast=[uuid.UUID(c) for c in row.cast_ids],
                     created_at=row.created_at, updated_at=row.updated_at)


def episode_status(episode: Episode, job_status: str | None) -> str:
    """The episode's own status once packaged; until then its job's (a failed job shows as failed)."""
    if episode.status == "queued" and job_status is not None and job_status != "succeeded":
        return job_status
    return episode.status


def episode_out(episode: Episode, pins: list[CharacterVersion], job_status: str | None,
                package: Artifact | None, links: LinkMinter, *, animatic: Artifact | None = None,
                render_status: str | None = None) -> EpisodeOut:
    findings = episode.continuity
    return EpisodeOut(
        id=episode.id, series_id=episode.series_id, number=episode.number, title=episode.title,
        status=episode_status(episode, job_status), job_id=episode.job_id, job_status=job_status,
        cast=[PinOut(character_id=v.character_id, version=v.version, digest=v.digest, name=v.definition["name"])
              for v in pins],
        continuity=None if findings is None else ContinuityOut(
            passes=not any(f.get("severity") == "error" for f in findings), findings=findings),
        package_url=links.url(package), render_job_id=episode.render_job_id, render_status=render_status,
        animatic_url=links.url(animatic), estimate=episode.estimate,
        created_at=episode.created_at, updated_at=episode.updated_at)


def episode_summary(episode: Episode, job_status: str | None) -> EpisodeSummary:
    return EpisodeSummary(id=episode.id, number=episode.number, title=episode.title,
                          status=episode_status(episode, job_status), job_id=episode.job_id,
                          created_at=episode.created_at, updated_at=episode.updated_at)

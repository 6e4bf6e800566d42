"""Queries of the Episodes product, and the one owner of ``episode.status`` (tables: ``episodes_models.py``).

Every function takes the workspace id and filters on it (row-level security on PostgreSQL is the second
lock, not the only one), so a foreign id reads as absent: the routes answer 404.

``episode.status`` (and ``render_job_id`` / ``animatic_artifact_id``): ``queued`` (created or re-pinned: a package job is on its way) -> ``ready`` (packaged,
continuity passes) or ``blocked`` (packaged, continuity fails). Only :func:`queue_episode` and
:func:`record_package` write the status; :func:`queue_render` and :func:`record_animatic` the render columns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from warehouse.db import is_postgres, utcnow
from warehouse.episodes_models import (
    EPISODE_TABLES,
    Asset,
    Character,
    CharacterImage,
    CharacterVersion,
    Episode,
    EpisodeCharacter,
    Relationship,
    Scene,
    SceneAsset,
    Series,
)
from warehouse.models import Artifact, Job, UsageCounter

__all__ = ["EPISODE_TABLES", "Asset", "Character", "CharacterImage", "CharacterVersion", "Episode",
           "EpisodeCharacter", "Relationship", "Scene", "SceneAsset", "Series"]


# --------------------------------------------------------------------------- characters

def create_character(session: Session, workspace_id: uuid.UUID, definition: dict[str, Any], digest: str,
                     user_id: uuid.UUID | None, *, character_id: uuid.UUID | None = None
                     ) -> tuple[Character, CharacterVersion]:
    character = Character(id=character_id or uuid.uuid4(), workspace_id=workspace_id, name=definition["name"], current_version=1, created_by=user_id)
    session.add(character)
    session.flush()
    version = CharacterVersion(workspace_id=workspace_id, character_id=character.id, version=1,
                               definition=definition, digest=digest, created_by=user_id)
    session.add(version)
    session.flush()
    return character, version


def load_character(session: Session, workspace_id: uuid.UUID, character_id: uuid.UUID,
                   *, for_update: bool = False) -> Character | None:
    query = select(Character).where(Character.workspace_id == workspace_id, Character.id == character_id)
    if for_update and not is_postgres(session):
        # SQLite has no row locks: a no-op UPDATE takes the database's write lock first, so two edits of one
        # character run one after the other and the second reads the first's version (not the same number twice).
        session.execute(update(Character).where(Character.workspace_id == workspace_id, Character.id == character_id)
                        .values(current_version=Character.current_version)
                        .execution_options(synchronize_session=False))
    return session.scalar(query.with_for_update() if for_update else query)


def characters_by_id(session: Session, workspace_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Character]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Character).where(Character.workspace_id == workspace_id, Character.id.in_(wanted)))
    return {row.id: row for row in rows}


def version_of(session: Session, workspace_id: uuid.UUID, character_id: uuid.UUID, version: int) -> CharacterVersion | None:
    return session.scalar(select(CharacterVersion).where(
        CharacterVersion.workspace_id == workspace_id, CharacterVersion.character_id == character_id,
        CharacterVersion.version == version))


def current_versions(session: Session, workspace_id: uuid.UUID,
                     character_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CharacterVersion]:
    """The current version of each character (one query, through the unique (character_id, version))."""
    wanted = set(character_ids)
    if not wanted:
        return {}
    rows = session.scalars(select(CharacterVersion).join(
        Character, (Character.workspace_id == CharacterVersion.workspace_id)
        & (Character.id == CharacterVersion.character_id)
        & (Character.current_version == CharacterVersion.version)).where(
        CharacterVersion.workspace_id == workspace_id, CharacterVersion.character_id.in_(wanted)))
    return {row.character_id: row for row in rows}


def add_version(session: Session, character: Character, definition: dict[str, Any], digest: str,
                user_id: uuid.UUID | None) -> CharacterVersion:
    """A new immutable version, now the current one (the caller locked the character row)."""
    number = character.current_version + 1
    version = CharacterVersion(workspace_id=character.workspace_id, character_id=character.id, version=number,
                               definition=definition, digest=digest, created_by=user_id)
    session.add(version)
    character.current_version = number
    character.name = definition["name"]
    character.updated_at = utcnow()
    session.flush()
    return version


# --------------------------------------------------------------------------- images

def image_by_sha(session: Session, workspace_id: uuid.UUID, sha256: str,
                 character_id: uuid.UUID | None = None) -> CharacterImage | None:
    """An image with these bytes in the workspace (of this character when given): its artifact is reused."""
    query = select(CharacterImage).where(CharacterImage.workspace_id == workspace_id, CharacterImage.sha256 == sha256)
    if character_id is not None:
        query = query.where(CharacterImage.character_id == character_id)
    return session.scalars(query.order_by(CharacterImage.created_at).limit(1)).first()


def workspace_phashes(session: Session, workspace_id: uuid.UUID, limit: int) -> list[CharacterImage]:
    """The workspace's hashed images, newest first, at most ``limit`` (the near-duplicate scan is bounded)."""
    return list(session.scalars(select(CharacterImage).where(
        CharacterImage.workspace_id == workspace_id, CharacterImage.phash.is_not(None)
    ).order_by(CharacterImage.created_at.desc()).limit(limit)))


def add_image(session: Session, **fields: Any) -> CharacterImage:
    image = CharacterImage(**fields)
    session.add(image)
    session.flush()
    return image


def ensure_uploaded_asset(session: Session, workspace_id: uuid.UUID, *, sha256: str, phash: str | None,
                          artifact_id: uuid.UUID) -> None:
    """The workspace's asset library row for uploaded bytes (one per SHA-256: plans reuse it by content hash)."""
    if session.scalar(select(Asset.id).where(Asset.workspace_id == workspace_id, Asset.sha256 == sha256,
                                             Asset.source == "uploaded")) is None:
        session.add(Asset(workspace_id=workspace_id, kind="image", source="uploaded", sha256=sha256, phash=phash,
                          artifact_id=artifact_id, cost_micros=0))
        session.flush()


def artifacts_by_sha(session: Session, workspace_id: uuid.UUID, shas: Iterable[str]) -> dict[str, Artifact]:
    """The stored, available bytes of reference images by SHA-256 (one query)."""
    wanted = set(shas)
    if not wanted:
        return {}
    rows = session.execute(select(CharacterImage.sha256, Artifact).join(
        Artifact, (Artifact.workspace_id == CharacterImage.workspace_id) & (Artifact.id == CharacterImage.artifact_id)
    ).where(CharacterImage.workspace_id == workspace_id, CharacterImage.sha256.in_(wanted),
            Artifact.status == "available"))
    return {sha: artifact for sha, artifact in rows}


# --------------------------------------------------------------------------- relationships and series

def add_relationship(session: Session, **fields: Any) -> Relationship:
    row = Relationship(**fields)
    session.add(row)
    session.flush()
    return row


def relationships_among(session: Session, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Relationship]:
    if not ids:
        return []
    return list(session.scalars(select(Relationship).where(
        Relationship.workspace_id == workspace_id, Relationship.a_id.in_(ids), Relationship.b_id.in_(ids)
    ).order_by(Relationship.a_id, Relationship.b_id, Relationship.type)))


def add_series(session: Session, **fields: Any) -> Series:
    row = Series(**fields)
    session.add(row)
    session.flush()
    return row


def add_episode(session: Session, **fields: Any) -> Episode:
    """A new episode, ``queued`` (its package job was submitted in the same transaction)."""
    row = Episode(status="queued", **fields)
    session.add(row)
    session.flush()
    return row


def load_series(session: Session, workspace_id: uuid.UUID, series_id: uuid.UUID) -> Series | None:
    return session.scalar(select(Series).where(Series.workspace_id == workspace_id, Series.id == series_id))


# --------------------------------------------------------------------------- episodes

def load_episode(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID) -> Episode | None:
    return session.scalar(select(Episode).where(Episode.workspace_id == workspace_id, Episode.id == episode_id))


def episode_number_taken(session: Session, workspace_id: uuid.UUID, series_id: uuid.UUID, number: int) -> bool:
    return session.scalar(select(Episode.id).where(
        Episode.workspace_id == workspace_id, Episode.series_id == series_id, Episode.number == number)) is not None


def pin(session: Session, episode: Episode, versions: Sequence[CharacterVersion]) -> None:
    """Replace the episode's pins by these versions (cast order kept)."""
    session.execute(delete(EpisodeCharacter).where(EpisodeCharacter.workspace_id == episode.workspace_id,
                                                   EpisodeCharacter.episode_id == episode.id))
    for position, version in enumerate(versions):
        session.add(EpisodeCharacter(workspace_id=episode.workspace_id, episode_id=episode.id,
                                     character_id=version.character_id, character_version_id=version.id,
                                     version=version.version, position=position))
    session.flush()


def pinned_versions(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID) -> list[CharacterVersion]:
    """The versions the episode is built from, in cast order (never the characters' current versions)."""
    return list(session.scalars(select(CharacterVersion).join(
        EpisodeCharacter, (EpisodeCharacter.workspace_id == CharacterVersion.workspace_id)
        & (EpisodeCharacter.character_version_id == CharacterVersion.id)
    ).where(EpisodeCharacter.workspace_id == workspace_id, EpisodeCharacter.episode_id == episode_id
            ).order_by(EpisodeCharacter.position)))


def queue_episode(session: Session, episode: Episode, job_id: uuid.UUID) -> None:
    """A (new) package job follows the episode: ``queued`` again; the last package's results stay until then."""
    episode.status = "queued"
    episode.job_id = job_id
    episode.updated_at = utcnow()
    session.flush()


def record_package(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID, job_id: uuid.UUID, *,
                   passes: bool, findings: list[dict[str, Any]], estimate: dict[str, Any],
                   package_artifact_id: uuid.UUID) -> bool:
    """The package job's outcome, only while that job is still the episode's (a re-pin moved on: False)."""
    return session.execute(update(Episode).where(
        Episode.workspace_id == workspace_id, Episode.id == episode_id, Episode.job_id == job_id
    ).values(status="ready" if passes else "blocked", continuity=findings, estimate=estimate,
             package_artifact_id=package_artifact_id, updated_at=utcnow())).rowcount == 1


def queue_render(session: Session, episode: Episode, job_id: uuid.UUID) -> None:
    """A render job follows the episode (the previous animatic stays until the new one is stored)."""
    episode.render_job_id = job_id
    episode.updated_at = utcnow()
    session.flush()


def record_animatic(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID, job_id: uuid.UUID,
                    artifact_id: uuid.UUID) -> bool:
    """The render job's MP4, only while that job is still the episode's latest render."""
    return session.execute(update(Episode).where(
        Episode.workspace_id == workspace_id, Episode.id == episode_id, Episode.render_job_id == job_id
    ).values(animatic_artifact_id=artifact_id, updated_at=utcnow())).rowcount == 1


def usage_since(session: Session, workspace_id: uuid.UUID, metric: str, first_day: str) -> int:
    """A usage counter summed from ``first_day`` (``YYYY-MM-DD``, UTC) on: the monthly render quota reads it."""
    return int(session.scalar(select(func.coalesce(func.sum(UsageCounter.value), 0)).where(
        UsageCounter.workspace_id == workspace_id, UsageCounter.metric == metric,
        UsageCounter.day >= first_day)) or 0)


def replace_scenes(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID,
                   scenes: Sequence[dict[str, Any]]) -> int:
    """The episode's scene rows for its latest package (their scene_asset rows go with them)."""
    session.execute(delete(Scene).where(Scene.workspace_id == workspace_id, Scene.episode_id == episode_id))
    for row in scenes:
        session.add(Scene(workspace_id=workspace_id, episode_id=episode_id, number=row["number"],
                          slugline=row["slugline"][:300], duration_ms=row["estimated_duration_ms"], data=row))
    session.flush()
    return len(scenes)


def replace_scene_assets(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID,
                         items: Sequence[dict[str, Any]]) -> int:
    """The asset-plan items of the episode's scenes (reused ones linked to a known asset by hash or key)."""
    scenes = dict(session.execute(select(Scene.number, Scene.id).where(
        Scene.workspace_id == workspace_id, Scene.episode_id == episode_id)).all())
    if scenes:
        session.execute(delete(SceneAsset).where(SceneAsset.workspace_id == workspace_id,
                                                 SceneAsset.scene_id.in_(scenes.values())))
    keys = {i["generation_key"] for i in items if i.get("generation_key")}
    shas = {i["sha256"] for i in items if i.get("sha256")}
    known = dict(session.execute(select(Asset.generation_key, Asset.id).where(
        Asset.workspace_id == workspace_id, Asset.generation_key.in_(keys))).all()) if keys else {}
    by_sha = dict(session.execute(select(Asset.sha256, Asset.id).where(
        Asset.workspace_id == workspace_id, Asset.sha256.in_(shas))).all()) if shas else {}
    count = 0
    for item in items:
        scene_id = scenes.get(item["scene"])
        if scene_id is None:
            continue
        session.add(SceneAsset(workspace_id=workspace_id, scene_id=scene_id, item_key=item["key"][:120],
                               kind=item["kind"], action=item["action"], asset_id=known.get(item.get("generation_key")) or by_sha.get(item.get("sha256")),
                               generation_key=item.get("generation_key"), cost_micros=item.get("cost_micros", 0)))
        count += 1
    session.flush()
    return count


def characters_query(workspace_id: uuid.UUID) -> Select:
    return select(Character).where(Character.workspace_id == workspace_id)


def series_query(workspace_id: uuid.UUID) -> Select:
    return select(Series).where(Series.workspace_id == workspace_id)


def episodes_query(workspace_id: uuid.UUID, series_id: uuid.UUID) -> Select:
    """A series' episodes (the unique (series_id, number) index serves the ascending listing)."""
    return select(Episode).where(Episode.workspace_id == workspace_id, Episode.series_id == series_id)


def job_statuses(session: Session, workspace_id: uuid.UUID, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = set(job_ids)
    if not wanted:
        return {}
    return dict(session.execute(select(Job.id, Job.status).where(Job.workspace_id == workspace_id,
                                                                Job.id.in_(wanted))).all())


def job_outputs(session: Session, workspace_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Artifact]:
    """The job's available artifacts by file name; the newest wins where a retried stage stored one twice."""
    rows = session.scalars(select(Artifact).where(
        Artifact.workspace_id == workspace_id, Artifact.job_id == job_id, Artifact.status == "available"
    ).order_by(Artifact.created_at, Artifact.id))
    return {a.filename: a for a in rows}


def generated_library(session: Session, workspace_id: uuid.UUID) -> list[Asset]:
    """Generated assets that exist (their key can be reused by an identical request)."""
    return list(session.scalars(select(Asset).where(
        Asset.workspace_id == workspace_id, Asset.source == "generated", Asset.sha256.is_not(None))))


def reference_bytes(session: Session, workspace_id: uuid.UUID) -> int:
    """Bytes of the distinct artifacts the workspace's reference images hold (the storage quota reads it)."""
    stored = select(CharacterImage.artifact_id).where(CharacterImage.workspace_id == workspace_id).distinct()
    return int(session.scalar(select(func.coalesce(func.sum(Artifact.size_bytes), 0)).where(
        Artifact.workspace_id == workspace_id, Artifact.id.in_(stored))) or 0)

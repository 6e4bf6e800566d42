"""Helpers of the Episodes assets: the job's episode and its pinned inputs, the job's stored stages, storage.

Stages hand each other JSON artifacts of the job (object store + database), never Dagster's IO manager: the
API serves artifacts anyway, and each stage's output is a file a human can open. Every query is scoped by
the job's workspace, and the inputs are the episode's **pinned** versions, never the characters' current ones.
"""

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets._job_context import JobHandle
from pipelines.episodes.product import CARD
from pipelines.episodes.asset_plan import KnownAsset
from pipelines.episodes.models import (
    Character as CharacterDefinition,
    CharacterVersion,
    EpisodeInput,
    Relationship,
    Series,
    StyleGuide,
)
from pipelines.errors import InvalidInput
from warehouse import episodes as rows
from warehouse.models import Artifact

CONTENT_TYPES = {".json": "application/json", ".md": "text/markdown; charset=utf-8",
                 ".srt": "application/x-subrip; charset=utf-8", ".zip": "application/zip"}


class EpisodeMissing(InvalidInput):
    code = "episode_missing"
    title = "The episode of this job no longer exists"


@dataclass(frozen=True)
class EpisodeInputs:
    """Everything the pipeline reads for one episode, loaded in one transaction."""

    episode_id: uuid.UUID
    episode: EpisodeInput
    series: Series
    pinned: dict[str, CharacterVersion]
    series_characters: dict[str, CharacterVersion]
    relationships: tuple[Relationship, ...]
    image_artifacts: dict[str, Artifact]  # reference bytes the store holds, by SHA-256
    library: tuple[KnownAsset, ...]

    @property
    def cast(self) -> tuple[str, ...]:
        return self.episode.cast if self.episode.cast is not None else self.series.cast


def _domain(version) -> CharacterVersion:
    return CharacterDefinition.model_validate(version.definition).pin(str(version.character_id), version.version)


def episode_id_of(job: JobHandle) -> uuid.UUID:
    """The episode a package or render job works on, read with its kind's payload model (the card's)."""
    return job.params(CARD.kind(job.kind).payload_model).episode_id


def load_inputs(job: JobHandle) -> EpisodeInputs:
    episode_id = episode_id_of(job)
    ws = job.workspace_id
    with job.database.tenant_session(ws) as session:
        episode = rows.load_episode(session, ws, episode_id)
        if episode is None:
            raise EpisodeMissing("The episode of this job no longer exists.")
        series = rows.load_series(session, ws, episode.series_id)
        pinned = {str(v.character_id): _domain(v) for v in rows.pinned_versions(session, ws, episode.id)}
        series_ids = [uuid.UUID(c) for c in series.cast_ids]
        current = rows.current_versions(session, ws, series_ids)
        # Series members outside the episode's cast: pinned where pinned, else their current version (names only).
        series_characters = {str(cid): pinned.get(str(cid)) or _domain(v) for cid, v in current.items()}
        ids = [uuid.UUID(c) for c in pinned]
        relationships = tuple(Relationship(a_id=str(r.a_id), b_id=str(r.b_id), type=r.type, directed=r.directed,
                                           description=r.description, since_episode=r.since_episode)
                              for r in rows.relationships_among(session, ws, ids))
        shas = {ref.sha256 for cv in pinned.values() for ref in cv.references}
        artifacts = rows.artifacts_by_sha(session, ws, shas)
        for artifact in artifacts.values():
            session.expunge(artifact)
        library = tuple(KnownAsset(sha256=a.sha256, generation_key=a.generation_key, kind=a.kind)
                        for a in rows.generated_library(session, ws))
        return EpisodeInputs(
            episode_id=episode.id,
            episode=EpisodeInput(number=episode.number, title=episode.title, story=episode.story,
                                 cast=tuple(episode.cast_ids)),
            series=Series(title=series.title, style=StyleGuide.model_validate(series.style),
                          cast=tuple(series.cast_ids)),
            pinned=pinned, series_characters=series_characters, relationships=relationships,
            image_artifacts=artifacts, library=library)


def outputs_of(job: JobHandle) -> dict[str, Artifact]:
    with job.database.tenant_session(job.workspace_id) as session:
        found = rows.job_outputs(session, job.workspace_id, job.job_id)
        for artifact in found.values():
            session.expunge(artifact)
    return found


def required(job: JobHandle, name: str) -> Artifact:
    artifact = outputs_of(job).get(name)
    if artifact is None:  # an upstream stage of this job did not finish: not the user's fault
        raise RuntimeError(f"{name} of job {job.job_id} is missing; its stage has to run first")
    return artifact


def stage_json(job: JobHandle, name: str) -> Any:
    return json.loads(job.store.get_bytes(required(job, name).storage_key))


def store_bytes(job: JobHandle, name: str, data: bytes, *, kind: str = "intermediate", parents=()) -> Artifact:
    return job.store_artifact(kind=kind, name=name, data=data, content_type=CONTENT_TYPES[Path(name).suffix],
                              parents=list(parents))


def store_json(job: JobHandle, name: str, value: Any, *, kind: str = "intermediate", parents=()) -> Artifact:
    data = (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    return store_bytes(job, name, data, kind=kind, parents=parents)


def write_rows(job: JobHandle, action) -> Any:
    """Run ``action(session, workspace_id, episode_id)`` in one tenant transaction."""
    episode_id = episode_id_of(job)
    with job.database.tenant_session(job.workspace_id) as session:
        return action(session, job.workspace_id, episode_id)

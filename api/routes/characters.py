"""Characters, their reference images and relationships (Episodes product).

Every edit makes a new immutable ``character_version`` (an episode pins one, so an edit never changes an
episode built before it). Reference images are streamed into the store (``api/uploads.py``), decoded once
under the size limits (``pipelines/episodes/images.py``: PNG, JPEG, WebP; SVG, non-images, oversize and
decompression bombs are typed 4xx and nothing is kept), addressed by SHA-256 per workspace (the same bytes
are stored once) and carry a perceptual hash: near duplicates in the workspace are reported in the answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.connection_gate import reclaim_connection, release_connection
from api.deps import DbSession, JobsReader, JobsWriter, SettingsDep, StoreDep, audit, authorize
from api.episodes_views import (
    CharacterIn,
    CharacterOut,
    CharacterPage,
    CharacterPatch,
    ImageUploadOut,
    NearDuplicate,
    RelationshipIn,
    RelationshipOut,
    character_out,
    definition_of,
    image_out,
    relationship_out,
)
from api.limits import seconds_until_next_day, upload_limits
from api.pagination import Cursor, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.uploads import stream_upload_to_store
from pipelines.episodes.errors import UnknownCharacter
from pipelines.episodes.images import ImageInfo, hamming, inspect_image
from pipelines.episodes.models import VIEW_PRIORITY, Character as CharacterDefinition, ReferenceImage
from pipelines.episodes.models import Relationship as RelationshipDefinition
from resources.objectstore import ObjectStore, artifact_key
from resources.settings import Settings
from warehouse import episodes as store_rows
from warehouse.models import Artifact

router = APIRouter(prefix="/v1", tags=["episodes: characters"], responses=problem_responses(401, 403, 422))
ImageUploadLimits = upload_limits()


def _load(session: Session, workspace_id: uuid.UUID, character_id: uuid.UUID, *, for_update: bool = False):
    character = store_rows.load_character(session, workspace_id, character_id, for_update=for_update)
    if character is None:
        raise not_found("character")
    return character


def _current(session: Session, character) -> Any:
    return store_rows.version_of(session, character.workspace_id, character.id, character.current_version)


def _digest(character_id: uuid.UUID, version: int, definition: CharacterDefinition) -> str:
    return definition.pin(str(character_id), version).digest


def _new_version(session: Session, character, definition: CharacterDefinition, user_id: uuid.UUID):
    return store_rows.add_version(session, character, definition.model_dump(mode="json"),
                                  _digest(character.id, character.current_version + 1, definition), user_id)


def _definition(data: dict[str, Any]) -> CharacterDefinition:
    try:
        return CharacterDefinition.model_validate(data)
    except ValidationError as exc:  # a combination the domain refuses (e.g. more than 12 references)
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'character'}: {e['msg']}" for e in exc.errors())
        raise ApiProblem(422, "character_invalid", message[:500]) from None


# --------------------------------------------------------------------------- characters

@router.post("/characters", status_code=201, response_model=CharacterOut)
def create_character(body: CharacterIn, request: Request, principal: JobsWriter, session: DbSession) -> CharacterOut:
    """A character (version 1); add reference images with ``POST /v1/characters/{id}/images``."""
    definition = _definition(body.model_dump(mode="json"))
    character_id = uuid.uuid4()
    character, version = store_rows.create_character(
        session, principal.workspace_id, definition.model_dump(mode="json"), _digest(character_id, 1, definition),
        principal.user_id, character_id=character_id)
    audit(session, request, principal, "character.create", "character", str(character.id))
    return character_out(character, version)


@router.get("/characters", response_model=CharacterPage)
def list_characters(principal: JobsReader, session: DbSession, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    cursor: Cursor = None) -> CharacterPage:
    """Newest first, each at its current version (two queries per page)."""
    page, next_cursor = newest_first_page(session, store_rows.characters_query(principal.workspace_id),
                                          store_rows.Character, limit=limit, cursor=cursor)
    versions = store_rows.current_versions(session, principal.workspace_id, [c.id for c in page])
    return CharacterPage(items=[character_out(c, versions[c.id]) for c in page], next_cursor=next_cursor)


@router.get("/characters/{id}", response_model=CharacterOut, responses=problem_responses(404))
def get_character(id: uuid.UUID, principal: JobsReader, session: DbSession) -> CharacterOut:
    character = _load(session, principal.workspace_id, id)
    return character_out(character, _current(session, character))


@router.get("/characters/{id}/versions/{version}", response_model=CharacterOut, responses=problem_responses(404))
def get_character_version(id: uuid.UUID, version: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                          principal: JobsReader, session: DbSession) -> CharacterOut:
    character = _load(session, principal.workspace_id, id)
    found = store_rows.version_of(session, principal.workspace_id, id, version)
    if found is None:
        raise not_found("character version")
    return character_out(character, found)


@router.patch("/characters/{id}", response_model=CharacterOut, responses=problem_responses(404))
def edit_character(id: uuid.UUID, body: CharacterPatch, request: Request, principal: JobsReader,
                   session: DbSession) -> CharacterOut:
    """A new immutable version with the fields given (an edit that changes nothing makes no version)."""
    character = _load(session, principal.workspace_id, id, for_update=True)
    authorize(principal, "editor", "jobs:write")
    current = _current(session, character)
    changes = body.model_dump(mode="json", exclude_unset=True)
    definition = _definition({**current.definition, **changes})
    if definition == definition_of(current):
        return character_out(character, current)
    version = _new_version(session, character, definition, principal.user_id)
    audit(session, request, principal, "character.edit", "character", str(character.id), version=version.version)
    return character_out(character, version)


# --------------------------------------------------------------------------- reference images

def _check_storage_quota(session: Session, settings: Settings, workspace_id: uuid.UUID) -> None:
    quota = settings.episodes_quota_reference_bytes
    if quota and (used := store_rows.reference_bytes(session, workspace_id)) >= quota:
        raise ApiProblem(429, "quota_exceeded", f"This workspace stores {used} bytes of reference images; the "
                         f"quota is {quota}. Remove characters' images or raise KILN_EPISODES_QUOTA_REFERENCE_BYTES.",
                         title="Quota exceeded", headers={"Retry-After": str(seconds_until_next_day())},
                         metric="reference_bytes", used=used, limit=quota)


async def _receive_image(request: Request, store: ObjectStore, settings: Settings, workspace_id: uuid.UUID,
                         character_id: uuid.UUID):
    artifact_id = uuid.uuid4()
    key = artifact_key(workspace_id, "input", character_id, artifact_id, "reference")
    upload = await stream_upload_to_store(request, store, key, max_bytes=settings.episodes_max_image_bytes)
    try:
        view = upload.fields.get("view", "")
        if view not in VIEW_PRIORITY:
            raise ApiProblem(422, "invalid_view", f"Give the form field 'view', one of: {', '.join(VIEW_PRIORITY)}.")
        data = await anyio.to_thread.run_sync(store.get_bytes, key)
        info = await anyio.to_thread.run_sync(
            lambda: inspect_image(data, max_side=settings.episodes_max_image_side))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.delete, key)
        raise
    return artifact_id, upload, view, info


def _near_duplicates(session: Session, settings: Settings, workspace_id: uuid.UUID, sha256: str,
                     phash: str) -> list[NearDuplicate]:
    limit = settings.episodes_near_duplicate_distance
    found = []
    for image in store_rows.workspace_phashes(session, workspace_id, settings.episodes_near_duplicate_scan):
        if image.sha256 != sha256 and (distance := hamming(image.phash, phash)) <= limit:
            found.append(NearDuplicate(image_id=image.id, character_id=image.character_id, view=image.view,
                                       sha256=image.sha256, distance=distance))
    return sorted(found, key=lambda d: (d.distance, str(d.image_id)))[:20]


def _attach(session: Session, store: ObjectStore, settings: Settings, request: Request, principal, character_id,
            artifact_id, upload, view: str, info: ImageInfo) -> tuple[ImageUploadOut, int]:
    character = _load(session, principal.workspace_id, character_id, for_update=True)
    current = _current(session, character)
    mine = store_rows.image_by_sha(session, principal.workspace_id, upload.sha256, character.id)
    if mine is not None:
        store.delete(upload.key)
        if mine.view != view:
            raise ApiProblem(409, "image_already_used", f"These bytes are already this character's {mine.view} "
                             "reference; upload a different image for this view.", image_id=str(mine.id))
        return ImageUploadOut(image=image_out(mine), character=character_out(character, current), duplicate=True,
                              stored_bytes=False, near_duplicates=[]), 200
    near = _near_duplicates(session, settings, principal.workspace_id, upload.sha256, info.phash)
    shared = store_rows.image_by_sha(session, principal.workspace_id, upload.sha256)
    if shared is not None:  # content-addressed per workspace: another character's copy of these bytes serves
        store.delete(upload.key)
        artifact_id = shared.artifact_id
    else:
        session.add(Artifact(id=artifact_id, workspace_id=principal.workspace_id, kind="input",
                             storage_key=upload.key, sha256=upload.sha256, size_bytes=upload.size_bytes,
                             content_type=info.media_type, filename=f"{view}.{info.media_type.split('/')[1]}",
                             expires_at=None))  # lives as long as a version may pin it: no retention TTL
        session.flush()
    image = store_rows.add_image(session, workspace_id=principal.workspace_id, character_id=character.id,
                                 artifact_id=artifact_id, sha256=upload.sha256, phash=info.phash, view=view,
                                 media_type=info.media_type, width=info.width, height=info.height)
    store_rows.ensure_uploaded_asset(session, principal.workspace_id, sha256=upload.sha256, phash=info.phash,
                                     artifact_id=artifact_id)
    definition = definition_of(current)
    reference = ReferenceImage(view=view, sha256=upload.sha256, phash=info.phash, media_type=info.media_type,
                               width=info.width, height=info.height)
    references = tuple(r for r in definition.references if r.view != view) + (reference,)
    version = _new_version(session, character, _definition({**definition.model_dump(mode="json"),
                                                             "references": [r.model_dump(mode="json")
                                                                            for r in references]}),
                           principal.user_id)
    audit(session, request, principal, "character.image", "character", str(character.id), view=view,
          sha256=upload.sha256, version=version.version)
    return ImageUploadOut(image=image_out(image), character=character_out(character, version), duplicate=False,
                          stored_bytes=shared is None, near_duplicates=near), 201


@router.post("/characters/{id}/images", status_code=201, response_model=ImageUploadOut,
             responses={200: {"model": ImageUploadOut, "description": "These bytes already are this view's image"},
                        **problem_responses(404, 409, 413, 415, 429)})
async def upload_image(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                       settings: SettingsDep, store: StoreDep, _limits: ImageUploadLimits) -> JSONResponse:
    """multipart: ``file`` (PNG, JPEG or WebP) and ``view`` (front, three_quarter, side, back, expression_sheet)."""
    await anyio.to_thread.run_sync(_load, session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    await anyio.to_thread.run_sync(_check_storage_quota, session, settings, principal.workspace_id)
    release_connection(session)
    artifact_id, upload, view, info = await _receive_image(request, store, settings, principal.workspace_id, id)
    try:
        await reclaim_connection(session)
        out, status = await anyio.to_thread.run_sync(
            _attach, session, store, settings, request, principal, id, artifact_id, upload, view, info)
    except BaseException:
        with anyio.CancelScope(shield=True):  # the transaction rolls back: no row names the bytes
            await anyio.to_thread.run_sync(store.delete, upload.key)
        raise
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


# --------------------------------------------------------------------------- relationships

@router.post("/relationships", status_code=201, response_model=RelationshipOut, responses=problem_responses(409))
def create_relationship(body: RelationshipIn, request: Request, principal: JobsWriter,
                        session: DbSession) -> RelationshipOut:
    """Typed; symmetric pairs are stored once (canonical order), directed types keep their direction."""
    try:
        rel = RelationshipDefinition(a_id=str(body.a_id), b_id=str(body.b_id), type=body.type,
                                     directed=body.directed, description=body.description,
                                     since_episode=body.since_episode)
    except ValidationError:
        raise ApiProblem(422, "relationship_invalid", "A relationship joins two different characters.") from None
    found = store_rows.characters_by_id(session, principal.workspace_id, {body.a_id, body.b_id})
    missing = sorted(str(c) for c in {body.a_id, body.b_id} - set(found))
    if missing:
        raise UnknownCharacter(f"No such character in this workspace: {', '.join(missing)}.", character_ids=missing)
    try:
        with session.begin_nested():
            row = store_rows.add_relationship(
                session, workspace_id=principal.workspace_id, a_id=uuid.UUID(rel.a_id), b_id=uuid.UUID(rel.b_id),
                type=rel.type, directed=rel.directed, description=rel.description, since_episode=rel.since_episode)
    except IntegrityError:
        raise ApiProblem(409, "relationship_exists", f"These two characters already have a {rel.type} "
                         "relationship.") from None
    audit(session, request, principal, "relationship.create", "relationship", str(row.id))
    return relationship_out(row)

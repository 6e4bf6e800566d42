"""Personas (immutable versions) and prompt/config packs (immutable versions, channels, rollback).

A persona edit is a new version; drafts record the version that made them. A pack version is validated
against ``PACK_SCHEMA`` at publish (422 ``pack_invalid`` naming the JSON path), stored with its SHA-256,
schema version, git commit and author; publishing the same content again answers the existing version.
Channels (``production``, ``staging``, ...) point at versions; every move is kept, and rollback re-points
a channel to the version it held before in one call.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DbSession, Viewer, audit, authorize
from api.pagination import Cursor, Page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import UtcDatetime
from pipelines.linkedin.packs import PackInvalid, pack_sha256, validate_pack
from warehouse import linkedin as store
from warehouse.linkedin_models import ConfigPack, ConfigPackVersion, Persona, PersonaVersion

router = APIRouter(prefix="/v1", tags=["linkedin content"], responses=problem_responses(401, 403, 422))

PackName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ChannelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ShortList = Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=50)]


class PersonaContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tone: str = Field("clear and friendly", max_length=500)
    audience: str = Field("professionals", max_length=500)
    topics: ShortList = []
    do: ShortList = []
    dont: ShortList = []
    sample_posts: Annotated[list[Annotated[str, Field(max_length=3000)]], Field(max_length=20)] = []


class PersonaIn(PersonaContent):
    name: str = Field(min_length=1, max_length=200)


class PersonaPatch(PersonaContent):
    name: str | None = Field(None, min_length=1, max_length=200)


class PersonaOut(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    version_id: uuid.UUID
    content: dict[str, Any]
    created_at: UtcDatetime


class PersonaPage(Page[PersonaOut]):
    pass


def _persona_out(persona: Persona, version: PersonaVersion) -> PersonaOut:
    return PersonaOut(id=persona.id, name=persona.name, version=version.version, version_id=version.id,
                      content=version.content, created_at=persona.created_at)


def _load_persona(session, workspace_id, persona_id) -> Persona:
    persona = store.persona_of(session, workspace_id, persona_id)
    if persona is None:
        raise not_found("persona")
    return persona


@router.post("/personas", status_code=201, response_model=PersonaOut)
def create_persona(body: PersonaIn, request: Request, principal: Viewer, session: DbSession) -> PersonaOut:
    authorize(principal, "editor", "drafts:write")
    persona, version = store.create_persona(session, workspace_id=principal.workspace_id, name=body.name,
                                            content=body.model_dump(exclude={"name"}), created_by=principal.user_id)
    audit(session, request, principal, "persona.created", "persona", str(persona.id), version=1)
    return _persona_out(persona, version)


@router.get("/personas", response_model=PersonaPage)
def list_personas(principal: Viewer, session: DbSession, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: Cursor = None) -> PersonaPage:
    rows, next_cursor = newest_first_page(session, store.personas_query(principal.workspace_id), Persona,
                                          limit=limit, cursor=cursor)
    latest = store.latest_persona_versions(session, principal.workspace_id, rows)
    items = [_persona_out(p, latest[p.id]) for p in rows]
    return PersonaPage(items=items, next_cursor=next_cursor)


@router.get("/personas/{id}", response_model=PersonaOut, responses=problem_responses(404))
def get_persona(id: uuid.UUID, principal: Viewer, session: DbSession,
                version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> PersonaOut:
    persona = _load_persona(session, principal.workspace_id, id)
    found = store.persona_version(session, principal.workspace_id, id, version or persona.latest_version)
    if found is None:
        raise not_found("persona version")
    return _persona_out(persona, found)


@router.patch("/personas/{id}", response_model=PersonaOut, responses=problem_responses(404))
def edit_persona(id: uuid.UUID, body: PersonaPatch, request: Request, principal: Viewer,
                 session: DbSession) -> PersonaOut:
    """A new immutable version: the fields sent replace those of the latest version."""
    persona = _load_persona(session, principal.workspace_id, id)
    authorize(principal, "editor", "drafts:write")
    latest = store.persona_version(session, principal.workspace_id, id, persona.latest_version)
    content = {**latest.content, **body.model_dump(exclude={"name"}, exclude_unset=True)}
    version = store.add_persona_version(session, persona, name=body.name, content=content,
                                        created_by=principal.user_id)
    audit(session, request, principal, "persona.edited", "persona", str(persona.id), version=version.version)
    return _persona_out(persona, version)


# -- config packs ---------------------------------------------------------------------------------------------
class PackPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any]
    git_commit: str | None = Field(None, pattern=r"^[0-9a-f]{7,64}$")
    author: str | None = Field(None, max_length=200)
    channel: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Point this channel at it")


class PackVersionOut(BaseModel):
    pack: str
    version: int
    id: uuid.UUID
    content_sha256: str
    schema_version: int
    git_commit: str | None
    author: str | None
    content: dict[str, Any]
    created_at: UtcDatetime


class ChannelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1)


class ChannelOut(BaseModel):
    pack: str
    channel: str
    version: int
    version_id: uuid.UUID
    history: list[dict[str, Any]]


def _version_out(pack: ConfigPack, version: ConfigPackVersion) -> PackVersionOut:
    return PackVersionOut(pack=pack.name, version=version.version, id=version.id,
                          content_sha256=version.content_sha256, schema_version=version.schema_version,
                          git_commit=version.git_commit, author=version.author, content=version.content,
                          created_at=version.created_at)


def _load_pack(session, workspace_id, name) -> ConfigPack:
    pack = store.pack_by_name(session, workspace_id, name)
    if pack is None:
        raise not_found("config pack")
    return pack


def _channel_out(session, pack: ConfigPack, channel: str) -> ChannelOut:
    row = store.channel_of(session, pack, channel)
    if row is None:
        raise not_found("channel")
    numbers = {v.id: v.version for v in store.pack_versions(session, pack)}
    history = [{"from_version": numbers.get(h.from_version_id), "to_version": numbers[h.to_version_id],
                "action": h.action, "at": h.created_at.isoformat()}
               for h in store.channel_history(session, pack, channel)]
    return ChannelOut(pack=pack.name, channel=channel, version=numbers[row.version_id], version_id=row.version_id,
                      history=history)


@router.post("/config-packs/{name}/versions", status_code=201, response_model=PackVersionOut,
             responses={200: {"model": PackVersionOut, "description": "The same content was already published"}})
def publish_pack(name: PackName, body: PackPublish, request: Request, response: Response, principal: Viewer,
                 session: DbSession) -> PackVersionOut:
    """Validate (JSON Schema) and store an immutable version (editor+ or a ``packs:write`` service token)."""
    authorize(principal, "editor", "packs:write")
    try:
        content = validate_pack(body.content)
    except PackInvalid as exc:
        raise ApiProblem(422, "pack_invalid", str(exc), json_path=exc.error.json_path) from None
    if content["name"] != name:
        raise ApiProblem(422, "pack_invalid", f"$.name: must be {name!r}, the pack being published",
                         json_path="$.name")
    pack, version, created = store.publish_pack_version(
        session, workspace_id=principal.workspace_id, name=name, content=content, sha256=pack_sha256(content),
        schema_version=int(content["schema_version"]), git_commit=body.git_commit, author=body.author,
        created_by=principal.user_id)
    if created:
        audit(session, request, principal, "pack.published", "config_pack", str(pack.id), version=version.version,
              sha256=version.content_sha256, git_commit=body.git_commit)
    if body.channel:
        previous = store.point_channel(session, pack, body.channel, version, action="publish",
                                       actor_id=principal.user_id)
        audit(session, request, principal, "pack.channel_moved", "config_pack", str(pack.id), channel=body.channel,
              from_version_id=str(previous) if previous else None, to_version=version.version)
    response.status_code = 201 if created else 200
    return _version_out(pack, version)


@router.get("/config-packs/{name}/versions/{version}", response_model=PackVersionOut, responses=problem_responses(404))
def get_pack_version(name: PackName, version: Annotated[int, Path(ge=1, le=2**31 - 1)], principal: Viewer,
                     session: DbSession) -> PackVersionOut:
    pack = _load_pack(session, principal.workspace_id, name)
    found = store.pack_version(session, pack, version)
    if found is None:
        raise not_found("config pack version")
    return _version_out(pack, found)


@router.get("/config-packs/{name}/channels/{channel}", response_model=ChannelOut, responses=problem_responses(404))
def get_channel(name: PackName, channel: ChannelName, principal: Viewer, session: DbSession) -> ChannelOut:
    return _channel_out(session, _load_pack(session, principal.workspace_id, name), channel)


@router.put("/config-packs/{name}/channels/{channel}", response_model=ChannelOut, responses=problem_responses(404))
def move_channel(name: PackName, channel: ChannelName, body: ChannelMove, request: Request, principal: Viewer,
                 session: DbSession) -> ChannelOut:
    pack = _load_pack(session, principal.workspace_id, name)
    authorize(principal, "editor", "packs:write")
    version = store.pack_version(session, pack, body.version)
    if version is None:
        raise not_found("config pack version")
    previous = store.point_channel(session, pack, channel, version, action="move", actor_id=principal.user_id)
    audit(session, request, principal, "pack.channel_moved", "config_pack", str(pack.id), channel=channel,
          from_version_id=str(previous) if previous else None, to_version=version.version)
    return _channel_out(session, pack, channel)


@router.post("/config-packs/{name}/channels/{channel}/rollback", response_model=ChannelOut,
             responses=problem_responses(404, 409))
def rollback_channel(name: PackName, channel: ChannelName, request: Request, principal: Viewer,
                     session: DbSession) -> ChannelOut:
    """Point the channel back at the version it held before its last move."""
    pack = _load_pack(session, principal.workspace_id, name)
    authorize(principal, "editor", "packs:write")
    current = store.channel_of(session, pack, channel)
    if current is None:
        raise not_found("channel")
    history = store.channel_history(session, pack, channel)
    previous_id = history[-1].from_version_id if history else None
    if previous_id is None:
        raise ApiProblem(409, "nothing_to_roll_back", f"Channel {channel!r} has no earlier version.")
    target = store.pack_version_by_id(session, principal.workspace_id, previous_id)
    store.point_channel(session, pack, channel, target, action="rollback", actor_id=principal.user_id)
    audit(session, request, principal, "pack.channel_rolled_back", "config_pack", str(pack.id), channel=channel,
          to_version=target.version)
    return _channel_out(session, pack, channel)

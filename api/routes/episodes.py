"""Series and episodes (Episodes product): an episode pins its cast's current versions and queues a package job.

``POST /v1/series/{id}/episodes`` checks the story's limits, the cast, the number and the quotas, then in one
transaction creates the episode, its pins (``episode_character``) and the ``episode_package`` job: 202
``{id, job_id}``. Later character edits never touch the pins; ``POST /v1/episodes/{id}/repin`` is the explicit
call that takes the current versions and queues a new package job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import (
    DbSession,
    JobsReader,
    JobsWriter,
    SettingsDep,
    audit,
    authorize,
    idempotency_key_header,
    request_id,
)
from api.episodes_views import (
    EpisodeIn,
    EpisodeOut,
    EpisodePage,
    EstimateOut,
    RenderIn,
    SeriesIn,
    SeriesOut,
    SeriesPage,
    definition_of,
    episode_out,
    episode_summary,
    series_out,
)
from api.limits import ensure_job_capacity, seconds_until_next_day
from api.links import LinkMinter, Links
from api.pagination import Cursor, ascending_int_page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from pipelines.episodes.errors import StoryTooLong, TooManyScenes, UnknownCharacter
from pipelines.episodes.models import EpisodeInput, Series as SeriesDefinition, StyleGuide
from pipelines.episodes.package import build_episode
from pipelines.episodes.product import CARD, PACKAGE_KIND, RENDER_KIND
from pipelines.episodes.script import check_story, split_paragraphs
from resources.settings import Settings
from warehouse import episodes as store_rows
from warehouse import jobs as job_machine
from warehouse.episodes import Episode
from warehouse.db import utcnow
from warehouse.models import Artifact
from warehouse.usage import add_usage, usage_value

router = APIRouter(prefix="/v1", tags=["episodes"], responses=problem_responses(401, 403, 422))
IdempotencyKey = idempotency_key_header()
PACKAGES_METRIC = "episode_packages"  # usage_counter: package jobs queued per workspace and UTC day


def _series(session: Session, workspace_id: uuid.UUID, series_id: uuid.UUID):
    row = store_rows.load_series(session, workspace_id, series_id)
    if row is None:
        raise not_found("series")
    return row


def _episode(session: Session, workspace_id: uuid.UUID, episode_id: uuid.UUID) -> Episode:
    row = store_rows.load_episode(session, workspace_id, episode_id)
    if row is None:
        raise not_found("episode")
    return row


def _known_cast(session: Session, workspace_id: uuid.UUID, cast: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(cast)) != len(cast):
        raise ApiProblem(422, "duplicate_cast", "A character appears twice in the cast.")
    known = store_rows.characters_by_id(session, workspace_id, cast)
    missing = [str(c) for c in cast if c not in known]
    if missing:
        raise UnknownCharacter(f"No such character in this workspace: {', '.join(missing)}.", character_ids=missing)
    return cast


def check_story_limits(story: str, settings: Settings) -> None:
    """The domain's checks (empty, 100k, 200 scenes) and the settings' own, possibly lower, limits."""
    text = check_story(story)
    if len(story) > settings.episodes_max_story_chars:
        raise StoryTooLong(f"The story has {len(story):,} characters; the limit is "
                           f"{settings.episodes_max_story_chars:,}.", limit=settings.episodes_max_story_chars)
    if len(split_paragraphs(text)) > settings.episodes_max_scenes:
        raise TooManyScenes(f"The story has more than {settings.episodes_max_scenes} paragraphs (scenes); split "
                            "the episode.", limit=settings.episodes_max_scenes)


def _check_package_quota(session: Session, settings: Settings, workspace_id: uuid.UUID) -> None:
    quota = settings.episodes_quota_packages_per_day
    if quota and (used := usage_value(session, workspace_id, PACKAGES_METRIC)) >= quota:
        raise ApiProblem(429, "quota_exceeded", f"This workspace queued {used} episode packages today (UTC); the "
                         f"quota is {quota}. It resets at midnight UTC.", title="Quota exceeded",
                         headers={"Retry-After": str(seconds_until_next_day())}, metric=PACKAGES_METRIC,
                         used=used, limit=quota)


def _queue_package(session: Session, settings: Settings, request: Request, principal, episode_id: uuid.UUID,
                   idempotency_key: str | None = None, fingerprint: dict | None = None):
    """The package job (or, for a replayed Idempotency-Key, the first request's): ``SubmitResult``."""
    ensure_job_capacity(session, settings, principal.workspace_id, PACKAGE_KIND, idempotency_key)
    result = job_machine.submit_job(
        session, workspace_id=principal.workspace_id, kind=PACKAGE_KIND, payload={"episode_id": str(episode_id)},
        fingerprint_payload=fingerprint, idempotency_key=idempotency_key,
        max_attempts=CARD.kind(PACKAGE_KIND).max_attempts or settings.job_max_attempts, subject_id=episode_id,
        partition_key=str(episode_id), created_by=principal.user_id, request_id=request_id(request))
    if result.created:  # a replay costs nothing: the quota counts new jobs only
        _check_package_quota(session, settings, principal.workspace_id)
        add_usage(session, principal.workspace_id, PACKAGES_METRIC, 1)
    return result


def _answer(session: Session, links: LinkMinter, episode: Episode) -> EpisodeOut:
    pins = store_rows.pinned_versions(session, episode.workspace_id, episode.id)
    package = session.get(Artifact, episode.package_artifact_id) if episode.package_artifact_id else None
    animatic = session.get(Artifact, episode.animatic_artifact_id) if episode.animatic_artifact_id else None
    render_status = (job_machine.status_of(session, episode.render_job_id, episode.workspace_id)
                     if episode.render_job_id else None)
    return episode_out(episode, pins, job_machine.status_of(session, episode.job_id, episode.workspace_id),
                       package, links, animatic=animatic, render_status=render_status)


# --------------------------------------------------------------------------- series

@router.post("/series", status_code=201, response_model=SeriesOut)
def create_series(body: SeriesIn, request: Request, principal: JobsWriter, session: DbSession) -> SeriesOut:
    cast = _known_cast(session, principal.workspace_id, body.cast)
    row = store_rows.add_series(session, workspace_id=principal.workspace_id, title=body.title,
                                style=body.style.model_dump(mode="json"), cast_ids=[str(c) for c in cast],
                                created_by=principal.user_id)
    audit(session, request, principal, "series.create", "series", str(row.id))
    return series_out(row)


@router.get("/series", response_model=SeriesPage)
def list_series(principal: JobsReader, session: DbSession, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                cursor: Cursor = None) -> SeriesPage:
    page, next_cursor = newest_first_page(session, store_rows.series_query(principal.workspace_id),
                                          store_rows.Series, limit=limit, cursor=cursor)
    return SeriesPage(items=[series_out(row) for row in page], next_cursor=next_cursor)


@router.get("/series/{id}/episodes", response_model=EpisodePage, responses=problem_responses(404))
def list_episodes(id: uuid.UUID, principal: JobsReader, session: DbSession,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: Cursor = None) -> EpisodePage:
    """A series' episodes by number (two queries per page: the episodes, their jobs' statuses)."""
    series = _series(session, principal.workspace_id, id)
    page, next_cursor = ascending_int_page(session, store_rows.episodes_query(principal.workspace_id, series.id),
                                           Episode.number, cursor_field="number", limit=limit, cursor=cursor)
    statuses = store_rows.job_statuses(session, principal.workspace_id, [e.job_id for e in page])
    return EpisodePage(items=[episode_summary(e, statuses.get(e.job_id)) for e in page], next_cursor=next_cursor)


@router.get("/series/{id}", response_model=SeriesOut, responses=problem_responses(404))
def get_series(id: uuid.UUID, principal: JobsReader, session: DbSession) -> SeriesOut:
    return series_out(_series(session, principal.workspace_id, id))


# --------------------------------------------------------------------------- episodes

@router.post("/series/{id}/episodes", status_code=202, response_model=EpisodeOut,
             responses={200: {"model": EpisodeOut, "description": "The episode an earlier request with this key made"},
                        **problem_responses(404, 409, 413, 429)})
def create_episode(id: uuid.UUID, body: EpisodeIn, request: Request, principal: JobsReader, session: DbSession,
                   settings: SettingsDep, links: Links, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Pin the cast's current versions and queue the package job (202 ``{id, job_id, ...}``). The same
    Idempotency-Key with the same request answers the first episode (200); with another request, 409."""
    series = _series(session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    check_story_limits(body.story, settings)
    cast = _known_cast(session, principal.workspace_id,
                       body.cast if body.cast is not None else [uuid.UUID(c) for c in series.cast_ids])
    episode_id = uuid.uuid4()
    fingerprint = {"series_id": str(series.id), **body.model_dump(mode="json"), "cast": [str(c) for c in cast]}
    result = _queue_package(session, settings, request, principal, episode_id, idempotency_key, fingerprint)
    if not result.created:
        first = _episode(session, principal.workspace_id, result.job.subject_id)
        return JSONResponse(_answer(session, links, first).model_dump(mode="json"), status_code=200,
                            headers=links.headers)
    job = result.job
    if store_rows.episode_number_taken(session, principal.workspace_id, series.id, body.number):
        raise ApiProblem(409, "episode_number_taken", f"The series already has an episode {body.number}.")
    try:
        with session.begin_nested():  # two requests for one number: the unique (series_id, number) decides
            episode = store_rows.add_episode(
                session, id=episode_id, workspace_id=principal.workspace_id, series_id=series.id,
                number=body.number, title=body.title, story=body.story, cast_ids=[str(c) for c in cast],
                job_id=job.id, created_by=principal.user_id)
    except IntegrityError:
        raise ApiProblem(409, "episode_number_taken", f"The series already has an episode {body.number}.") from None
    versions = store_rows.current_versions(session, principal.workspace_id, cast)
    store_rows.pin(session, episode, [versions[c] for c in cast])
    audit(session, request, principal, "episode.create", "episode", str(episode.id), job_id=str(job.id))
    return JSONResponse(_answer(session, links, episode).model_dump(mode="json"), status_code=202,
                        headers=links.headers)


@router.get("/episodes/{id}", response_model=EpisodeOut, responses=problem_responses(404))
def get_episode(id: uuid.UUID, principal: JobsReader, session: DbSession, links: Links) -> EpisodeOut:
    return _answer(session, links, _episode(session, principal.workspace_id, id))


@router.get("/episodes/{id}/estimate", response_model=EstimateOut, responses=problem_responses(404))
def get_estimate(id: uuid.UUID, principal: JobsReader, session: DbSession) -> EstimateOut:
    """The cost before anything runs: the latest package's, or computed now from the pinned versions (offline
    plan: bounded by the story limits, a fraction of a second)."""
    episode = _episode(session, principal.workspace_id, id)
    if episode.status != "queued" and episode.estimate is not None:
        return EstimateOut(episode_id=episode.id, source="package", estimate=episode.estimate)
    series = _series(session, principal.workspace_id, episode.series_id)
    pins = {str(v.character_id): definition_of(v).pin(str(v.character_id), v.version)
            for v in store_rows.pinned_versions(session, principal.workspace_id, episode.id)}
    build = build_episode(
        episode=EpisodeInput(number=episode.number, title=episode.title, story=episode.story,
                             cast=tuple(episode.cast_ids)),
        series=SeriesDefinition(title=series.title, style=StyleGuide.model_validate(series.style),
                                cast=tuple(series.cast_ids)),
        pinned=pins)
    return EstimateOut(episode_id=episode.id, source="computed",
                       estimate=build.render.estimate.model_dump(mode="json"))


@router.post("/episodes/{id}/repin", status_code=202, response_model=EpisodeOut,
             responses=problem_responses(404, 409, 429))
def repin_episode(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                  settings: SettingsDep, links: Links) -> JSONResponse:
    """Pin the cast's current versions now and queue a new package job (refused while one is active)."""
    episode = _episode(session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    if job_machine.status_of(session, episode.job_id, episode.workspace_id) in job_machine.ACTIVE_STATUSES:
        raise ApiProblem(409, "episode_busy", "The episode's package job is still active; wait for it (or cancel "
                         "it), then re-pin.", job_id=str(episode.job_id))
    cast = _known_cast(session, principal.workspace_id, [uuid.UUID(c) for c in episode.cast_ids])
    versions = store_rows.current_versions(session, principal.workspace_id, cast)
    job = _queue_package(session, settings, request, principal, episode.id).job
    store_rows.pin(session, episode, [versions[c] for c in cast])
    store_rows.queue_episode(session, episode, job.id)
    audit(session, request, principal, "episode.repin", "episode", str(episode.id), job_id=str(job.id))
    return JSONResponse(_answer(session, links, episode).model_dump(mode="json"), status_code=202,
                        headers=links.headers)


# --------------------------------------------------------------------------- the animatic

RENDER_METRIC = "episode_render_seconds"  # usage_counter: animatic seconds queued per workspace and UTC day


def _month_start(now=None) -> tuple[str, int]:
    """The first day of this UTC month (``YYYY-MM-01``) and the seconds until the next one starts."""
    now = now or utcnow()
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    following = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return first.strftime("%Y-%m-%d"), max(1, int((following - now).total_seconds()))


def _check_render(session: Session, settings: Settings, episode: Episode) -> int:
    if episode.status == "blocked":
        raise ApiProblem(409, "continuity_failed", "The episode's continuity check fails; fix the findings, re-pin, "
                         "then render.", findings=len(episode.continuity or []))
    if episode.status != "ready" or not episode.estimate:
        raise ApiProblem(409, "not_packaged", "The episode's package is not built yet; render once it is ready.")
    if episode.render_job_id and job_machine.status_of(
            session, episode.render_job_id, episode.workspace_id) in job_machine.ACTIVE_STATUSES:
        raise ApiProblem(409, "render_busy", "A render of this episode is still active.",
                         job_id=str(episode.render_job_id))
    seconds = int(episode.estimate.get("animatic_render_seconds", 0))
    if seconds > settings.episodes_max_render_seconds:
        raise ApiProblem(422, "episode_too_long_to_render", f"The episode lasts {seconds} s; the animatic renders "
                         f"at most {settings.episodes_max_render_seconds} s.", limit=settings.episodes_max_render_seconds)
    quota = settings.episodes_quota_render_seconds_per_month
    first_day, retry_after = _month_start()
    used = store_rows.usage_since(session, episode.workspace_id, RENDER_METRIC, first_day)
    if quota and used + seconds > quota:
        raise ApiProblem(429, "quota_exceeded", f"This render ({seconds} s) would pass the workspace's monthly "
                         f"render quota ({used} of {quota} s used); it resets on the first of the month (UTC).",
                         title="Quota exceeded", headers={"Retry-After": str(retry_after)}, metric=RENDER_METRIC,
                         used=used, limit=quota)
    return seconds


@router.post("/episodes/{id}/render", status_code=202, response_model=EpisodeOut,
             responses=problem_responses(404, 409, 429))
def render_episode(id: uuid.UUID, request: Request, principal: JobsReader, session: DbSession,
                   settings: SettingsDep, links: Links, body: RenderIn | None = None) -> JSONResponse:
    """Queue the animatic (continuity must pass; the monthly render quota is checked and charged first)."""
    episode = _episode(session, principal.workspace_id, id)
    authorize(principal, "editor", "jobs:write")
    seconds = _check_render(session, settings, episode)
    ensure_job_capacity(session, settings, principal.workspace_id, RENDER_KIND)
    payload = {"episode_id": str(episode.id), "burn_subtitles": bool(body and body.burn_subtitles)}
    job = job_machine.submit_job(
        session, workspace_id=principal.workspace_id, kind=RENDER_KIND, payload=payload,
        max_attempts=CARD.kind(RENDER_KIND).max_attempts or settings.job_max_attempts, subject_id=episode.id,
        partition_key=str(episode.id), created_by=principal.user_id, request_id=request_id(request)).job
    store_rows.queue_render(session, episode, job.id)
    add_usage(session, principal.workspace_id, RENDER_METRIC, seconds)
    audit(session, request, principal, "episode.render", "episode", str(episode.id), job_id=str(job.id),
          seconds=seconds)
    return JSONResponse(_answer(session, links, episode).model_dump(mode="json"), status_code=202,
                        headers=links.headers)

"""LinkedIn drafts: write, edit, submit, approve, reject, schedule, unschedule, generate, attempts.

``draft → in_review → approved | rejected → scheduled → publishing → published | failed`` (and ``canceled``).
Commentary rules (length 3,000, mention and hashtag syntax) are checked at submit and approve, never at post
time. Approval (admin+, or a token with ``drafts:approve``; not the author unless
``KILN_LINKEDIN_ALLOW_SELF_APPROVAL``) records the SHA-256 of the text; an edit voids it. Every change is a
conditional update on the revision the caller read, so an edit racing an approval either lands first (the
approval answers 409 ``draft_changed``) or voids the approval it follows.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from api.deps import DbSession, SettingsDep, Viewer, audit, authorize, request_id
from api.pagination import Cursor, Page, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.security import Principal
from api.schemas import UtcDatetime
from pipelines.linkedin import drafts as rules
from pipelines.linkedin.commentary import validate_commentary
from pipelines.linkedin.product import CARD, GENERATE_KIND
from warehouse import jobs as job_machine
from warehouse import linkedin as store
from warehouse import linkedin_posting as posting
from warehouse.db import utcnow
from warehouse.linkedin_models import DRAFT_STATUSES, Draft

router = APIRouter(prefix="/v1", tags=["linkedin drafts"], responses=problem_responses(401, 403, 422))

MAX_TEXT = 20_000  # stored; the 3,000 LinkedIn limit is checked at submit/approve with a located issue


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    persona_version_id: uuid.UUID | None = None
    pack_version_id: uuid.UUID | None = None


class DraftPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    revision: int | None = Field(None, ge=1, le=2**31 - 1, description="The revision you edited (409 if it moved)")


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the text you read")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["published", "failed"]
    post_urn: str | None = Field(None, pattern=r"^urn:li:(share|ugcPost):[0-9]{1,30}$",
                                 description="Required for published: the post found on LinkedIn")
    note: str | None = Field(None, max_length=2000)


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID
    publish_at: UtcDatetime


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persona_id: uuid.UUID
    topic: str = Field(min_length=1, max_length=500)
    pack: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    channel: str = Field("production", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ScheduleOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    publish_at: UtcDatetime
    status: str
    error_code: str | None
    error_message: str | None


class DraftOut(BaseModel):
    id: uuid.UUID
    status: Literal[DRAFT_STATUSES]  # type: ignore[valid-type]
    text: str
    revision: int
    content_sha256: str
    source: str
    author_id: uuid.UUID | None
    persona_version_id: uuid.UUID | None
    pack_version_id: uuid.UUID | None
    offline: bool
    approved_sha256: str | None
    approved_by: uuid.UUID | None
    approved_at: UtcDatetime | None
    post_urn: str | None
    schedule: ScheduleOut | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class DraftPage(Page[DraftOut]):
    pass


class AttemptOut(BaseModel):
    attempt: int
    schedule_id: uuid.UUID
    status: str
    reconciling: bool
    fingerprint: str
    http_status: int | None
    api_version: str | None
    post_urn: str | None
    error_code: str | None
    message: str | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


def draft_out(session, draft: Draft, schedules: dict | None = None) -> DraftOut:
    if schedules is None:
        schedules = posting.current_schedules(session, draft.workspace_id, [draft.id])
    live = schedules.get(draft.id)
    schedule = ScheduleOut(id=live.id, account_id=live.account_id, publish_at=live.publish_at, status=live.status,
                           error_code=live.error_code, error_message=live.error_message) if live else None
    return DraftOut(id=draft.id, status=draft.status, text=draft.text, revision=draft.revision,
                    content_sha256=rules.content_sha256(draft.text), source=draft.source, author_id=draft.author_id,
                    persona_version_id=draft.persona_version_id, pack_version_id=draft.pack_version_id,
                    offline=draft.offline, approved_sha256=draft.approved_sha256, approved_by=draft.approved_by,
                    approved_at=draft.approved_at, post_urn=draft.post_urn, schedule=schedule,
                    created_at=draft.created_at, updated_at=draft.updated_at)


def _load(session, principal: Principal, draft_id: uuid.UUID) -> Draft:
    draft = posting.draft_of(session, principal.workspace_id, draft_id)
    if draft is None:
        raise not_found("draft")
    return draft


def _changed() -> ApiProblem:
    return ApiProblem(409, "draft_changed", "The draft changed while this request ran; read it again.")


def _illegal(exc: rules.IllegalTransition) -> ApiProblem:
    return ApiProblem(409, exc.code, str(exc), current_status=exc.current)


def _check_commentary(text: str) -> None:
    issues = validate_commentary(text)
    if issues:
        first = issues[0]
        raise ApiProblem(422, first.code, first.message,
                         issues=[{"code": i.code, "message": i.message, "offset": i.offset} for i in issues])


@router.post("/drafts", status_code=201, response_model=DraftOut, responses=problem_responses(404))
def create_draft(body: DraftIn, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    """A draft from a person or from the GenAI team's service (a token with ``drafts:write``)."""
    authorize(principal, "editor", "drafts:write")
    for version_id, lookup, what in ((body.persona_version_id, store.persona_version_by_id, "persona version"),
                                     (body.pack_version_id, store.pack_version_by_id, "config pack version")):
        if version_id is not None and lookup(session, principal.workspace_id, version_id) is None:
            raise not_found(what)
    source = "user" if "*" in principal.scopes else "service"
    draft = posting.create_draft(session, workspace_id=principal.workspace_id, text=body.text, source=source,
                                 author_id=principal.user_id, persona_version_id=body.persona_version_id,
                                 pack_version_id=body.pack_version_id)
    audit(session, request, principal, "draft.created", "draft", str(draft.id), source=source)
    return draft_out(session, draft)


@router.get("/drafts", response_model=DraftPage)
def list_drafts(principal: Viewer, session: DbSession, status: Literal[DRAFT_STATUSES] | None = None,  # type: ignore[valid-type]
                limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: Cursor = None) -> DraftPage:
    rows, next_cursor = newest_first_page(session, posting.drafts_query(principal.workspace_id, status), Draft,
                                          limit=limit, cursor=cursor)
    schedules = posting.current_schedules(session, principal.workspace_id, [d.id for d in rows])
    return DraftPage(items=[draft_out(session, d, schedules) for d in rows], next_cursor=next_cursor)


@router.get("/drafts/{id}", response_model=DraftOut, responses=problem_responses(404))
def get_draft(id: uuid.UUID, principal: Viewer, session: DbSession) -> DraftOut:
    return draft_out(session, _load(session, principal, id))


@router.patch("/drafts/{id}", response_model=DraftOut, responses=problem_responses(404, 409))
def edit_draft(id: uuid.UUID, body: DraftPatch, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    """Replace the text; a change voids the approval (and cancels a schedule no run has claimed)."""
    draft = _load(session, principal, id)
    authorize(principal, "editor", "drafts:write")
    if draft.status not in rules.EDITABLE:
        raise ApiProblem(409, "draft_not_editable", f"A {draft.status} draft cannot be edited.",
                         current_status=draft.status)
    if body.text == draft.text:
        return draft_out(session, draft)
    was_approved = draft.approved_sha256 is not None
    if not posting.edit_draft(session, draft, body.text, seen_revision=body.revision or draft.revision):
        raise _changed()
    audit(session, request, principal, "draft.edited", "draft", str(draft.id), revision=draft.revision,
          approval_voided=was_approved)
    return draft_out(session, draft)


@router.post("/drafts/{id}/submit", response_model=DraftOut, responses=problem_responses(404, 409))
def submit_draft(id: uuid.UUID, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    draft = _load(session, principal, id)
    authorize(principal, "editor", "drafts:write")
    _check_commentary(draft.text)
    try:
        if not posting.transition_draft(session, draft, "in_review"):
            raise _changed()
    except rules.IllegalTransition as exc:
        raise _illegal(exc) from None
    audit(session, request, principal, "draft.submitted", "draft", str(draft.id))
    return draft_out(session, draft)


def _authorize_approver(principal: Principal) -> None:
    if principal.has_role("admin") and principal.has_scope("drafts:approve"):
        return
    if principal.has_role("editor") and "drafts:approve" in principal.scopes:  # an explicit approver token
        return
    raise ApiProblem(403, "forbidden", "Approving needs the admin role or a token with the drafts:approve scope.")


@router.post("/drafts/{id}/approve", response_model=DraftOut, responses=problem_responses(404, 409))
def approve_draft(id: uuid.UUID, request: Request, principal: Viewer, session: DbSession, settings: SettingsDep,
                  body: Approve | None = None) -> DraftOut:
    draft = _load(session, principal, id)
    _authorize_approver(principal)
    _check_commentary(draft.text)
    state = rules.DraftState(rules.DraftStatus(draft.status), draft.text, str(draft.author_id))
    try:
        rules.approve(state, approver_id=str(principal.user_id), at=utcnow(),
                      expected_sha256=body.content_sha256 if body else None,
                      allow_self_approval=settings.linkedin_allow_self_approval)
    except rules.IllegalTransition as exc:
        raise _illegal(exc) from None
    except rules.ApprovalRefused as exc:
        raise ApiProblem(409 if exc.code == "approval_stale" else 403, exc.code, str(exc)) from None
    if not posting.approve_draft(session, draft, approver_id=principal.user_id, seen_revision=draft.revision,
                                 at=utcnow()):
        raise _changed()
    audit(session, request, principal, "draft.approved", "draft", str(draft.id), content_sha256=draft.approved_sha256)
    return draft_out(session, draft)


@router.post("/drafts/{id}/reject", response_model=DraftOut, responses=problem_responses(404, 409))
def reject_draft(id: uuid.UUID, request: Request, principal: Viewer, session: DbSession,
                 body: Reject | None = None) -> DraftOut:
    draft = _load(session, principal, id)
    _authorize_approver(principal)
    try:
        if not posting.transition_draft(session, draft, "rejected"):
            raise _changed()
    except rules.IllegalTransition as exc:
        raise _illegal(exc) from None
    audit(session, request, principal, "draft.rejected", "draft", str(draft.id), reason=body.reason if body else None)
    return draft_out(session, draft)


@router.post("/drafts/{id}/cancel", response_model=DraftOut, responses=problem_responses(404, 409))
def cancel_draft(id: uuid.UUID, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    """Cancel before publishing (a schedule no run has claimed is canceled with it)."""
    draft = _load(session, principal, id)
    authorize(principal, "editor", "drafts:write")
    try:
        if not posting.cancel_draft(session, draft):
            raise ApiProblem(409, "schedule_claimed", "The post is being published.", current_status=draft.status)
    except rules.IllegalTransition as exc:
        raise _illegal(exc) from None
    audit(session, request, principal, "draft.canceled", "draft", str(draft.id))
    return draft_out(session, draft)


@router.post("/drafts/{id}/resolve", response_model=DraftOut, responses=problem_responses(404, 409))
def resolve_draft(id: uuid.UUID, body: Resolve, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    """Decide a post Kiln could not (schedule ``needs_review``) after checking LinkedIn: admin+."""
    draft = _load(session, principal, id)
    authorize(principal, "admin")
    if body.outcome == "published" and not body.post_urn:
        raise ApiProblem(422, "post_urn_required", "Name the post found on LinkedIn (post_urn) to mark it published.")
    if not posting.resolve_needs_review(session, draft, body.outcome, post_urn=body.post_urn, note=body.note):
        raise ApiProblem(409, "not_needs_review", "This draft has no post waiting for review.",
                         current_status=draft.status)
    audit(session, request, principal, "draft.resolved", "draft", str(draft.id), outcome=body.outcome,
          post_urn=body.post_urn)
    return draft_out(session, draft)


@router.post("/drafts/{draft_id}/schedule", status_code=201, response_model=DraftOut,
             responses=problem_responses(404, 409))
def schedule_draft(draft_id: uuid.UUID, body: ScheduleIn, request: Request, principal: Viewer,
                   session: DbSession) -> DraftOut:
    """Post the approved text from a connected account at ``publish_at`` (UTC, in the future)."""
    draft = _load(session, principal, draft_id)
    authorize(principal, "editor", "drafts:write")
    account = store.account_of(session, principal.workspace_id, body.account_id)
    if account is None or account.status == "disconnected":
        raise not_found("LinkedIn account")
    if account.status != "connected":
        raise ApiProblem(409, "account_needs_reauth", "Reconnect this LinkedIn account before scheduling posts.")
    if body.publish_at <= utcnow():
        raise ApiProblem(422, "publish_at_past", "publish_at must be in the future (UTC).")
    if draft.status != "approved" or draft.approved_sha256 != rules.content_sha256(draft.text):
        raise ApiProblem(409, "draft_not_approved", "Only an approved draft can be scheduled.",
                         current_status=draft.status)
    try:
        with session.begin_nested():
            schedule = posting.create_schedule(session, draft, account_id=account.id, publish_at=body.publish_at,
                                               created_by=principal.user_id)
    except IntegrityError:
        raise ApiProblem(409, "already_scheduled", "This draft already has a live schedule.") from None
    if schedule is None:
        raise _changed()
    audit(session, request, principal, "draft.scheduled", "draft", str(draft.id), schedule_id=str(schedule.id),
          account_id=str(account.id), publish_at=body.publish_at.isoformat())
    return draft_out(session, draft)


@router.delete("/drafts/{draft_id}/schedule", response_model=DraftOut, responses=problem_responses(404, 409))
def unschedule_draft(draft_id: uuid.UUID, request: Request, principal: Viewer, session: DbSession) -> DraftOut:
    """Cancel the schedule before the scheduler claims it (409 ``schedule_claimed`` after)."""
    draft = _load(session, principal, draft_id)
    authorize(principal, "editor", "drafts:write")
    if draft.status != "scheduled" or not posting.unschedule(session, draft):
        raise ApiProblem(409, "schedule_claimed" if draft.status == "publishing" else "not_scheduled",
                         "The post is being published." if draft.status == "publishing"
                         else "This draft has no schedule to cancel.", current_status=draft.status)
    audit(session, request, principal, "draft.unscheduled", "draft", str(draft.id))
    return draft_out(session, draft)


@router.get("/drafts/{id}/attempts", response_model=list[AttemptOut], responses=problem_responses(404))
def draft_attempts(id: uuid.UUID, principal: Viewer, session: DbSession) -> list[AttemptOut]:
    draft = _load(session, principal, id)
    return [AttemptOut(attempt=a.attempt, schedule_id=a.schedule_id, status=a.status, reconciling=a.reconciling,
                       fingerprint=a.fingerprint, http_status=a.http_status, api_version=a.api_version,
                       post_urn=a.post_urn, error_code=a.error_code, message=a.message, created_at=a.created_at,
                       finished_at=a.finished_at)
            for a in posting.attempts_of_draft(session, principal.workspace_id, draft.id)]


@router.post("/drafts/generate", status_code=202, responses=problem_responses(404))
def generate_draft(body: GenerateIn, request: Request, principal: Viewer, session: DbSession,
                   settings: SettingsDep) -> JSONResponse:
    """Queue a ``linkedin_generate_draft`` job; its draft appears in ``GET /v1/drafts`` when it succeeds."""
    authorize(principal, "editor", "drafts:write")
    if store.persona_of(session, principal.workspace_id, body.persona_id) is None:
        raise not_found("persona")
    if store.channel_pack_version(session, principal.workspace_id, body.pack, body.channel) is None:
        raise not_found("config pack channel")
    payload: dict[str, Any] = body.model_dump(mode="json")
    job = job_machine.submit_job(session, workspace_id=principal.workspace_id, kind=GENERATE_KIND, payload=payload,
                                 max_attempts=CARD.kind(GENERATE_KIND).max_attempts or settings.job_max_attempts,
                                 created_by=principal.user_id, request_id=request_id(request)).job
    audit(session, request, principal, "draft.generation_requested", "job", str(job.id), persona_id=str(body.persona_id),
          pack=body.pack, channel=body.channel)
    return JSONResponse({"job_id": str(job.id), "status": job.status}, status_code=202)


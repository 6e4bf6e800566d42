"""The caller's workspace and its members. Member changes are admin+ and audited.

Adding a member invites the address (``api.routes.invitations``): the answer and the listing show only
what the inviter typed until the invitee accepts. Rules that keep a workspace governable: only an owner may grant, change or remove the owner
role, and the last owner can be neither demoted nor removed.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import DbSession, SettingsDep, WorkspaceReader, audit, authorize
from api.pagination import Cursor, decode_time_id_cursor, time_id_cursor
from api.problems import ApiProblem, not_found, problem_responses
from api.routes import invitations
from api.schemas import InvitationCreated, MemberCreate, MemberOut, MemberPage, MemberUpdate, WorkspaceOut
from warehouse import invitations as invitation_store
from warehouse import memberships
from warehouse.db import as_aware, utcnow
from warehouse.models import AppUser, Invitation, Membership, Workspace

router = APIRouter(prefix="/v1/workspace", tags=["workspace"], responses=problem_responses(401, 403, 422))


def _member_out(membership: Membership, user: AppUser) -> MemberOut:
    return MemberOut(user_id=user.id, email=user.email, display_name=user.display_name, role=membership.role,
                     created_at=membership.created_at, updated_at=membership.updated_at)


def _invited_out(invitation: Invitation) -> MemberOut:
    """Only what the inviter typed: no user id or name until the invitee accepts."""
    return MemberOut(email=invitation.email, role=invitation.role, status="invited", invitation_id=invitation.id,
                     expires_at=invitation.expires_at, created_at=invitation.created_at,
                     updated_at=invitation.updated_at)


def _load_member(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> tuple[Membership, AppUser]:
    found = memberships.member_with_user(session, workspace_id, user_id)
    if found is None:
        raise not_found("member")
    return found


@router.get("", response_model=WorkspaceOut)
def get_workspace(principal: WorkspaceReader, session: DbSession) -> WorkspaceOut:
    ws = session.get(Workspace, principal.workspace_id)
    if ws is None:
        raise not_found("workspace")
    return WorkspaceOut(id=ws.id, name=ws.name, slug=ws.slug, created_at=ws.created_at, updated_at=ws.updated_at,
                        role=principal.role)


@router.get("/members", response_model=MemberPage)
def list_members(
    principal: WorkspaceReader,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: Cursor = None,
) -> MemberPage:
    """Members and pending invitations, oldest first in one keyset over (created_at, id)."""
    ws = principal.workspace_id
    members = memberships.members_query(ws)
    pending = invitation_store.pending_query(ws, utcnow())
    if cursor:
        at, last_id = decode_time_id_cursor(cursor)
        members = members.where((Membership.created_at > at) | ((Membership.created_at == at) & (Membership.id > last_id)))
        pending = pending.where((Invitation.created_at > at) | ((Invitation.created_at == at) & (Invitation.id > last_id)))
    rows = [(m.created_at, m.id, _member_out(m, u)) for m, u in session.execute(
        members.order_by(Membership.created_at, Membership.id).limit(limit + 1)).all()]
    rows += [(i.created_at, i.id, _invited_out(i)) for i in session.scalars(
        pending.order_by(Invitation.created_at, Invitation.id).limit(limit + 1))]
    rows.sort(key=lambda row: (as_aware(row[0]), row[1]))
    page = rows[:limit]
    next_cursor = time_id_cursor(page[-1][0], page[-1][1]) if len(rows) > limit else None
    return MemberPage(items=[out for _, _, out in page], next_cursor=next_cursor)


@router.post("/members", response_model=InvitationCreated, status_code=201, responses=problem_responses(409))
def add_member(body: MemberCreate, request: Request, principal: WorkspaceReader, session: DbSession,
               settings: SettingsDep) -> InvitationCreated:
    """Invite ``email`` (admin+; owner to invite an owner): the member exists once the invitation is accepted
    (POST /v1/invitations/accept with the token this answer carries, once)."""
    return invitations.invite(session, request, principal, settings, body)


@router.patch("/members/{user_id}", response_model=MemberOut, responses=problem_responses(404, 409))
def update_member(user_id: uuid.UUID, body: MemberUpdate, request: Request, principal: WorkspaceReader,
                  session: DbSession) -> MemberOut:
    membership, user = _load_member(session, principal.workspace_id, user_id)
    authorize(principal, "admin", "workspace:admin")
    if "owner" in (membership.role, body.role):
        authorize(principal, "owner")
    if (membership.role == "owner" and body.role != "owner"
            and memberships.other_owners_locked(session, principal.workspace_id, user_id) == 0):
        raise ApiProblem(409, "last_owner", "A workspace keeps at least one owner; promote another member first.")
    previous = membership.role
    membership.role = body.role
    session.flush()
    audit(session, request, principal, "member.role_change", "user", str(user_id), previous=previous, role=body.role)
    return _member_out(membership, user)


@router.delete("/members/{user_id}", status_code=204, responses=problem_responses(404, 409))
def remove_member(user_id: uuid.UUID, request: Request, principal: WorkspaceReader, session: DbSession) -> Response:
    membership, _user = _load_member(session, principal.workspace_id, user_id)
    authorize(principal, "admin", "workspace:admin")
    if membership.role == "owner":
        authorize(principal, "owner")
        if memberships.other_owners_locked(session, principal.workspace_id, user_id) == 0:
            raise ApiProblem(409, "last_owner", "The last owner cannot be removed.")
    # The member's API tokens go with the membership (ON DELETE CASCADE).
    session.delete(membership)
    session.flush()
    audit(session, request, principal, "member.remove", "user", str(user_id), role=membership.role)
    return Response(status_code=204)

"""Membership invitations: adding a member by email invites the address; accepting makes the member.

``POST /v1/workspace/members`` (admin+, ``workspace:admin``) records an ``invitation`` and answers 201
with it and its acceptance token, shown once. The answer holds only what the inviter typed: whether
anyone has an account with that address, in this workspace's view of the world, stays unknown until
the invitation is accepted (no user id, no display name, no "existing user" flag).

``POST /v1/invitations/accept {"token"}`` takes no bearer token: the acceptance token is the
credential, as a signed link is. The inviter hands it to the invitee (by email or chat, like the
tokens ``kiln admin create-token`` prints). Accepting is single-use (a conditional UPDATE claims the
invitation), creates the membership for the user with that email (the existing one, or a new user),
and answers with a new API token of that member in that workspace, shown once. An unknown, used,
revoked or expired token answers one code, 403 ``invitation_invalid``.

Only the HMAC of the acceptance token is stored (its own key domain). The lookup runs before the
workspace is known, so on PostgreSQL it goes through ``kiln_lookup_invitation`` (migration 0005).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from api.deps import DbSession, RawSession, SettingsDep, WorkspaceReader, audit, authorize, request_id
from api.observability import bind_context
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import InvitationAccept, InvitationAccepted, InvitationCreated, InvitationOut, MemberCreate
from api.security import AuthenticationFailed, Principal, authenticate, bearer_credentials, create_api_token
from resources.settings import Settings
from warehouse import invitations
from warehouse.db import set_tenant, utcnow
from warehouse.models import AuditLog, Invitation, Workspace

router = APIRouter(tags=["workspace"], responses=problem_responses(422))

def hash_invitation_token(token: str, secret_key: str) -> str:
    key = hmac.new(secret_key.encode(), b"kiln/invitation/v1", hashlib.sha256).digest()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def invitation_out(invitation: Invitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id, email=invitation.email, display_name=invitation.display_name, role=invitation.role,
        status=invitations.invitation_status(invitation), expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at, revoked_at=invitation.revoked_at, created_at=invitation.created_at,
        updated_at=invitation.updated_at)


def _already_member() -> ApiProblem:
    return ApiProblem(409, "already_member", "This user is already a member; change the role with PATCH.")


def invite(session: Session, request: Request, principal: Principal, settings: Settings,
           body: MemberCreate) -> InvitationCreated:
    authorize(principal, "admin", "workspace:admin")
    if body.role == "owner":
        authorize(principal, "owner")
    ws = principal.workspace_id
    if invitations.is_member_email(session, ws, body.email):
        raise _already_member()
    pending = invitations.live_pending(session, ws, body.email)
    if pending is not None:
        raise ApiProblem(409, "invitation_pending", "This address already has a pending invitation; revoke it "
                         f"(DELETE /v1/workspace/invitations/{pending.id}) to send a new one.",
                         invitation_id=str(pending.id))
    count = invitations.count_pending(session, ws)
    if count >= settings.max_pending_invitations:
        raise ApiProblem(409, "too_many_invitations", f"This workspace has {count} pending invitations, the most "
                         "allowed (KILN_MAX_PENDING_INVITATIONS); revoke some first.")
    token = "kiln_inv_" + secrets.token_urlsafe(32)
    invitation = Invitation(
        workspace_id=ws, email=body.email, display_name=body.display_name, role=body.role,
        token_hash=hash_invitation_token(token, settings.secret_key.get_secret_value()),
        expires_at=utcnow() + timedelta(seconds=settings.invitation_ttl_seconds), invited_by=principal.user_id)
    if not invitations.add_invitation(session, invitation):  # the same address invited twice at once
        raise ApiProblem(409, "invitation_pending", "This address already has a pending invitation.")
    audit(session, request, principal, "member.invite", "invitation", str(invitation.id), role=body.role)
    return InvitationCreated(**invitation_out(invitation).model_dump(), token=token)


def _load(session: Session, workspace_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation:
    found = invitations.invitation_by_id(session, workspace_id, invitation_id)
    if found is None:
        raise not_found("invitation")
    return found


@router.get("/v1/workspace/invitations/{id}", response_model=InvitationOut,
            responses=problem_responses(401, 403, 404))
def get_invitation(id: uuid.UUID, principal: WorkspaceReader, session: DbSession) -> InvitationOut:
    return invitation_out(_load(session, principal.workspace_id, id))


@router.delete("/v1/workspace/invitations/{id}", status_code=204, responses=problem_responses(401, 403, 404, 409))
def revoke_invitation(id: uuid.UUID, request: Request, principal: WorkspaceReader, session: DbSession) -> Response:
    invitation = _load(session, principal.workspace_id, id)
    authorize(principal, "admin", "workspace:admin")  # after the lookup: foreign ids stay 404 for everyone
    if invitation.role == "owner":
        authorize(principal, "owner")
    if invitation.accepted_at is not None:
        raise ApiProblem(409, "invitation_accepted", "This invitation was accepted; remove the member instead.")
    if invitations.revoke(session, invitation):
        audit(session, request, principal, "invitation.revoke", "invitation", str(invitation.id))
    return Response(status_code=204)


# -- acceptance ------------------------------------------------------------------------------------------------
def _invalid() -> ApiProblem:
    return ApiProblem(403, "invitation_invalid", "This invitation token is unknown, already used, revoked or "
                      "expired; ask the workspace's admin for a new invitation.")


def _prove_existing_account(session: Session, request: Request, ws: uuid.UUID, email: str, secret_key: str) -> None:
    """An invitation to an address that already has an account is accepted by that account only.

    The acceptance token is shown to whoever invited, so the token alone must not make its holder act as an
    existing person (their user id, their name, an API token in their name). That person proves who they are
    with one of their own API tokens (from any workspace) in ``Authorization``; a wrong or missing one gets the
    same answer as an unknown invitation, so the endpoint says nothing about which addresses have accounts.
    For an address with no account, the token alone creates the user: nobody else is impersonated.
    """
    existing = invitations.find_user_id(session, email)
    if existing is None:
        return
    credentials = bearer_credentials({k.lower(): v for k, v in request.headers.items()})
    try:
        principal = authenticate(session, credentials or "", secret_key=secret_key)  # scopes to its workspace
    except AuthenticationFailed:
        raise _invalid() from None
    if principal.user_id != existing:
        raise _invalid()
    set_tenant(session, ws)  # back to the inviting workspace


@router.post("/v1/invitations/accept", status_code=201, response_model=InvitationAccepted,
             responses=problem_responses(403, 409))
def accept_invitation(body: InvitationAccept, request: Request, session: RawSession,
                      settings: SettingsDep) -> InvitationAccepted:
    secret_key = settings.secret_key.get_secret_value()
    found = invitations.find_by_token_hash(session, hash_invitation_token(body.token, secret_key))
    if found is None:
        raise _invalid()
    invitation_id, ws = found
    set_tenant(session, ws)
    _prove_existing_account(session, request, ws, _load(session, ws, invitation_id).email, secret_key)
    now = utcnow()
    if not invitations.claim(session, ws, invitation_id, now):  # single use, also under concurrent acceptances
        raise _invalid()
    invitation = _load(session, ws, invitation_id)
    user_id = invitations.user_for(session, invitation.email, invitation.display_name)
    bind_context(workspace_id=ws, user_id=user_id)
    if not invitations.add_membership(session, ws, user_id, invitation.role):  # added meanwhile (kiln admin)
        raise _already_member()
    invitation.accepted_by = user_id
    row, plaintext = create_api_token(session, ws, user_id, "invitation", None, None, secret_key=secret_key)
    session.add(AuditLog(workspace_id=ws, actor_user_id=user_id, action="member.add", target_type="user",
                         target_id=str(user_id), request_id=request_id(request),
                         detail={"role": invitation.role, "via": "invitation", "invitation_id": str(invitation.id)}))
    workspace = session.get(Workspace, ws)
    session.flush()
    return InvitationAccepted(workspace_id=ws, workspace_name=workspace.name, workspace_slug=workspace.slug,
                              user_id=user_id, role=invitation.role, token=plaintext, token_id=row.id)

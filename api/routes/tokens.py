"""API tokens of the caller's workspace. Anyone may create tokens for themselves (never with
more scopes than the token they use, never outliving it); admins see and revoke every token of
the workspace except owners' tokens, which only owners (or the token's own user) revoke.

Managing tokens takes the ``workspace:admin`` scope and listing them ``workspace:read``: a
narrow CI token (``jobs:read``) can neither mint, list nor revoke tokens.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import (
    CurrentPrincipal,
    DbSession,
    SettingsDep,
    WorkspaceReader,
    audit,
    authorize,
)
from api.pagination import Cursor, newest_first_page
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import TokenCreate, TokenCreated, TokenOut, TokenPage
from api.security import create_api_token, normalize_scopes
from warehouse import api_reads
from warehouse.db import utcnow
from warehouse.models import ApiToken

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=problem_responses(401, 403, 422))


@router.post("", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, request: Request, principal: CurrentPrincipal, session: DbSession,
                 settings: SettingsDep) -> TokenCreated:
    authorize(principal, "viewer", "workspace:admin")
    try:
        scopes = normalize_scopes(body.scopes)
    except ValueError as exc:
        raise ApiProblem(422, "invalid_scope", str(exc)) from None
    if not all(principal.has_scope(s) for s in scopes) or ("*" in scopes and "*" not in principal.scopes):
        raise ApiProblem(403, "insufficient_scope", "A new token cannot have scopes the current token lacks.")
    expires_at = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    # A short-lived token must not mint a longer-lived one: the new token expires no later.
    if principal.expires_at is not None and (expires_at is None or expires_at > principal.expires_at):
        expires_at = principal.expires_at
    token, plaintext = create_api_token(session, principal.workspace_id, principal.user_id, body.name, scopes,
                                        expires_at, secret_key=settings.secret_key.get_secret_value())
    audit(session, request, principal, "token.create", "api_token", str(token.id), name=body.name, scopes=scopes)
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=plaintext)


@router.get("", response_model=TokenPage)
def list_tokens(
    principal: WorkspaceReader,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: Cursor = None,
) -> TokenPage:
    query = api_reads.tokens_query(principal.workspace_id,
                                   user_id=None if principal.has_role("admin") else principal.user_id)
    page, next_cursor = newest_first_page(session, query, ApiToken, limit=limit, cursor=cursor)
    return TokenPage(items=[TokenOut.model_validate(t) for t in page], next_cursor=next_cursor)


@router.delete("/{id}", status_code=204, responses=problem_responses(404))
def revoke_token(id: uuid.UUID, request: Request, principal: CurrentPrincipal, session: DbSession) -> Response:
    token = api_reads.token_by_id(session, principal.workspace_id, id)
    if token is None or (token.user_id != principal.user_id and not principal.has_role("admin")):
        raise not_found("token")  # someone else's token is invisible to non-admins
    authorize(principal, "viewer", "workspace:admin")
    if token.user_id != principal.user_id:
        authorize(principal, "admin")
        holder_role = api_reads.member_role(session, principal.workspace_id, token.user_id)
        if holder_role == "owner":
            authorize(principal, "owner")  # an admin cannot cut an owner off
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        audit(session, request, principal, "token.revoke", "api_token", str(token.id), name=token.name)
    return Response(status_code=204)

"""LinkedIn accounts: connect (OAuth 2.0 authorization code), the callback, list and disconnect.

The state is random, stored only as its SHA-256, single use, valid ``KILN_LINKEDIN_OAUTH_STATE_TTL_SECONDS``
(10 minutes) and bound to the workspace, the user who asked and the redirect URI. The callback carries no
bearer token (the browser comes back from LinkedIn): the state authenticates it. An unknown, expired or
reused state answers 400 ``oauth_state_invalid`` and stores nothing. Once the state is consumed, LinkedIn's
refusals (consent denied, a scope not granted, a refused code) redirect to the result page with a code.

Tokens are envelope-encrypted with associated data (workspace, account, purpose) before they touch a row;
they never appear in an answer, a log line or an audit entry. A reconnect never replaces a stored refresh
token with an empty one.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from datetime import timedelta
from typing import Literal
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from api.connection_gate import reclaim_connection_in_thread, release_connection
from api.deps import DbSession, RawSession, SettingsDep, Viewer, audit, authorize, request_id
from api.problems import ApiProblem, not_found, problem_responses
from api.schemas import UtcDatetime
from pipelines.linkedin.product import ROUTE_PREFIX
from resources.linkedin_client import LinkedInError, MemberInfo, TokenSet, new_state
from resources.linkedin_tokens import ACCESS, REFRESH, associated, build_cipher, build_client, seal
from resources.settings import Settings
from warehouse import linkedin as store
from warehouse.db import set_tenant, utcnow
from warehouse.linkedin_models import LinkedInAccount
from warehouse.models import AuditLog

router = APIRouter(prefix=ROUTE_PREFIX, tags=["linkedin"], responses=problem_responses(401, 403))
log = structlog.get_logger("kiln.linkedin")


class ConnectOut(BaseModel):
    authorization_url: str
    expires_at: UtcDatetime


class AccountOut(BaseModel):
    id: uuid.UUID
    member_urn: str
    name: str | None
    picture: str | None  # LinkedIn's picture address for the member (not a Kiln download link)
    status: Literal["connected", "needs_reauth", "disconnected"]
    scopes: list[str]
    access_token_expires_at: UtcDatetime | None
    has_refresh_token: bool
    refresh_token_expires_at: UtcDatetime | None
    reconnect_route: str  # POST here to connect again (needed when status is needs_reauth)
    created_at: UtcDatetime


class AccountList(BaseModel):
    items: list[AccountOut]


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def account_out(account: LinkedInAccount) -> AccountOut:
    return AccountOut(id=account.id, member_urn=account.member_urn, name=account.name, picture=account.picture_url,
                      status=account.status, scopes=list(account.scopes or []),
                      access_token_expires_at=account.access_token_expires_at,
                      has_refresh_token=account.refresh_token_ciphertext is not None,
                      refresh_token_expires_at=account.refresh_token_expires_at,
                      reconnect_route=f"POST {ROUTE_PREFIX}/connect", created_at=account.created_at)


@router.post("/connect", response_model=ConnectOut)
def connect(request: Request, principal: Viewer, session: DbSession, settings: SettingsDep) -> ConnectOut:
    """The LinkedIn authorization URL to send the member's browser to (editor+)."""
    authorize(principal, "editor")
    state = new_state()
    expires_at = utcnow() + timedelta(seconds=settings.linkedin_oauth_state_ttl_seconds)
    store.create_oauth_state(session, workspace_id=principal.workspace_id, user_id=principal.user_id,
                             state_hash=hash_state(state), redirect_uri=settings.linkedin_redirect_uri,
                             expires_at=expires_at)
    with build_client(settings) as client:
        url = client.authorization_url(state)
    audit(session, request, principal, "linkedin.connect_started", "linkedin_account", None)
    return ConnectOut(authorization_url=url, expires_at=expires_at)


def _result_redirect(settings: Settings, outcome: str, **params: str) -> RedirectResponse:
    base = settings.linkedin_after_connect_url or f"{ROUTE_PREFIX}/connect/result"
    separator = "&" if "?" in base else "?"
    return RedirectResponse(f"{base}{separator}{urlencode({'outcome': outcome, **params})}", status_code=303)


def _invalid_state() -> ApiProblem:
    return ApiProblem(400, "oauth_state_invalid",
                      "This LinkedIn sign-in link is unknown, expired or already used; start again from Connect.")


@router.get("/callback", responses={303: {"description": "To the page that says what happened"},
                                    **problem_responses(400)}, openapi_extra={"security": []})
def callback(request: Request, session: RawSession, settings: SettingsDep,
             state: str = Query(min_length=1, max_length=512), code: str | None = Query(None, max_length=2048),
             error: str | None = Query(None, max_length=200)) -> RedirectResponse:
    """LinkedIn sends the browser back here; the state (not a bearer token) authenticates the request."""
    found = store.find_oauth_state(session, hash_state(state))
    if found is None:
        raise _invalid_state()
    state_id, workspace_id = found
    set_tenant(session, workspace_id)
    row = store.consume_oauth_state(session, workspace_id, state_id, now=utcnow())
    if row is None or row.redirect_uri != settings.linkedin_redirect_uri:
        raise _invalid_state()  # reused or expired (rolled back: nothing stored)

    def refuse(code_: str, message: str) -> RedirectResponse:
        reclaim_connection_in_thread(session)
        session.add(AuditLog(workspace_id=workspace_id, actor_user_id=row.user_id, action="linkedin.connect_failed",
                             target_type="linkedin_account", request_id=request_id(request),
                             detail={"code": code_}))
        log.info("linkedin_connect_failed", code=code_, workspace_id=str(workspace_id))
        return _result_redirect(settings, "error", code=code_, message=message)

    if error or not code:
        return refuse("linkedin_consent_denied" if error else "linkedin_code_missing",
                      "LinkedIn did not grant access." if error else "LinkedIn sent no authorization code.")
    # The state is spent (committed now); LinkedIn's two answers can take seconds, and no connection (or pool
    # slot) is held while they do (api/connection_gate.py).
    release_connection(session)
    try:
        with build_client(settings) as client:
            tokens: TokenSet = client.exchange_code(code)
            missing = sorted(set(settings.linkedin_scopes) - tokens.scopes) if tokens.scopes else []
            if missing:
                return refuse("linkedin_scope_missing", f"LinkedIn did not grant: {', '.join(missing)}.")
            member: MemberInfo = client.userinfo(tokens.access_token)
    except LinkedInError as exc:
        return refuse(exc.code, str(exc))
    reclaim_connection_in_thread(session)
    account, created = store.upsert_account(session, workspace_id=workspace_id, member_urn=member.author_urn,
                                            name=member.name, picture_url=member.picture, connected_by=row.user_id)
    cipher = build_cipher(settings)
    access = seal(cipher, tokens.access_token, associated(workspace_id, account.id, ACCESS))
    refresh = (seal(cipher, tokens.refresh_token, associated(workspace_id, account.id, REFRESH))
               if tokens.refresh_token is not None else None)
    store.store_tokens(session, account, access=access, access_expires_at=tokens.expires_at, refresh=refresh,
                       refresh_expires_at=tokens.refresh_token_expires_at, scopes=sorted(tokens.scopes),
                       now=utcnow())
    resumed = store.resume_after_reconnect(session, account, now=utcnow(),
                                           grace_seconds=settings.linkedin_reauth_grace_seconds)
    session.add(AuditLog(workspace_id=workspace_id, actor_user_id=row.user_id,
                         action="linkedin.connected" if created else "linkedin.reconnected",
                         target_type="linkedin_account", target_id=str(account.id), request_id=request_id(request),
                         detail={"member_urn": member.author_urn, "scopes": sorted(tokens.scopes),
                                 "refresh_token": "received" if refresh else "kept" if not created else "none",
                                 "schedules_resumed": resumed}))
    return _result_redirect(settings, "connected", account_id=str(account.id))


@router.get("/connect/result", response_class=HTMLResponse, openapi_extra={"security": []})
async def connect_result(outcome: Literal["connected", "error"] = "error", code: str = Query("", max_length=100),
                         message: str = Query("", max_length=500), account_id: str = Query("", max_length=64)) -> str:
    """A small page for the browser after the callback (set KILN_LINKEDIN_AFTER_CONNECT_URL to use your own)."""
    if outcome == "connected":
        body = f"<h1>LinkedIn account connected</h1><p>Account {html.escape(account_id)}. You can close this page.</p>"
    else:
        body = f"<h1>LinkedIn was not connected</h1><p>{html.escape(message)} ({html.escape(code)})</p>"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Kiln</title></head><body>{body}</body></html>"


@router.get("/accounts", response_model=AccountList)
def list_accounts(principal: Viewer, session: DbSession) -> AccountList:
    return AccountList(items=[account_out(a) for a in store.list_accounts(session, principal.workspace_id)])


@router.get("/accounts/{id}", response_model=AccountOut, responses=problem_responses(404))
def get_account(id: uuid.UUID, principal: Viewer, session: DbSession) -> AccountOut:
    account = store.account_of(session, principal.workspace_id, id)
    if account is None or account.status == "disconnected":
        raise not_found("LinkedIn account")
    return account_out(account)


@router.delete("/accounts/{id}", status_code=204, responses=problem_responses(404))
def delete_account(id: uuid.UUID, request: Request, principal: Viewer, session: DbSession) -> None:
    """Disconnect: the tokens are destroyed and the account's waiting schedules paused (editor+)."""
    account = store.account_of(session, principal.workspace_id, id)
    if account is None or account.status == "disconnected":
        raise not_found("LinkedIn account")
    authorize(principal, "editor")
    paused = store.disconnect_account(session, account)
    audit(session, request, principal, "linkedin.disconnected", "linkedin_account", str(account.id),
          schedules_paused=paused)


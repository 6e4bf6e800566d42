"""FastAPI dependencies (Annotated aliases), in the style of full-stack-fastapi-template.

Every authenticated request gets ONE session: the bearer token is looked up and checked in it,
then it is scoped to the caller's workspace (``SET LOCAL kiln.workspace_id`` on PostgreSQL) and
handed to the route as ``DbSession``. It commits when the route returns (before the response
is sent, ``scope="function"``) and rolls back on any error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import structlog
from fastapi import BackgroundTasks, Depends, Header, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.connection_gate import (
    ConnectionSlot,
    bind_slot,
    connection_slot,
    run_short_transaction,
)
from api.observability import bind_context
from api.problems import ApiProblem
from api.ratelimit import enforce_rate_limit
from api.security import (
    INVALID_TOKEN_DETAIL,
    MISSING_TOKEN_DETAIL,
    UNAUTHORIZED_HEADERS,
    AuthenticationFailed,
    Principal,
    authenticate,
    bearer_credentials,
    record_token_use,
)
from resources.objectstore import ObjectStore
from resources.settings import Settings
from warehouse.db import session_factory
from warehouse.models import AuditLog


# The small dependencies are async on purpose: they run on the event loop, so a request that holds a
# pooled connection needs no worker thread to get from its token check to its route (api.connection_gate).
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


async def _slot(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> AsyncIterator[ConnectionSlot]:
    async for slot in connection_slot(request.app, engine):
        yield slot


# Entered before the session and left after it closes: the session never waits on the pool in a thread.
ConnectionSlotDep = Annotated[ConnectionSlot, Depends(_slot, scope="function")]


def _request_session(engine: Annotated[Engine, Depends(get_engine)], slot: ConnectionSlotDep) -> Iterator[Session]:
    session = session_factory(engine)()
    bind_slot(session, slot)
    try:
        session.begin()
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


RawSession = Annotated[Session, Depends(_request_session, scope="function")]



async def _stamp_token_use(app: Any, engine: Engine, principal: Principal) -> None:
    try:
        await run_short_transaction(app, record_token_use, engine, principal)
    except Exception as exc:  # noqa: BLE001 - bookkeeping: never fail or retry a request over it
        structlog.get_logger("kiln.auth").warning("token_use_not_recorded", error=type(exc).__name__)


def _principal(request: Request, session: RawSession, settings: SettingsDep,
               engine: Annotated[Engine, Depends(get_engine)], background: BackgroundTasks) -> Principal:
    # Requests with a body were already checked by api.transport.RequestBodyGuard, before the body was
    # read; this check (in the request's own session, which it scopes) covers every request.
    credentials = bearer_credentials(dict(request.headers))
    if credentials is None:
        raise ApiProblem(401, "unauthorized", MISSING_TOKEN_DETAIL, headers=UNAUTHORIZED_HEADERS)
    try:
        principal = authenticate(session, credentials, secret_key=settings.secret_key.get_secret_value())
    except AuthenticationFailed:
        raise ApiProblem(401, "unauthorized", INVALID_TOKEN_DETAIL, headers=UNAUTHORIZED_HEADERS) from None
    request.state.workspace_id = str(principal.workspace_id)
    request.state.user_id = str(principal.user_id)
    enforce_rate_limit(request, settings, principal)  # per token, once it is known (api/ratelimit.py)
    # After the response, when this request's connection is back in the pool (see record_token_use).
    background.add_task(_stamp_token_use, request.app, engine, principal)
    return principal


async def _bound_principal(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    # Async on purpose: it runs on the request's task, so the bound context reaches the
    # endpoint (sync endpoints copy the context into their worker thread) and its log lines.
    bind_context(workspace_id=principal.workspace_id, user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_bound_principal)]


async def _tenant_session(session: RawSession, _principal: CurrentPrincipal) -> Session:
    return session  # already scoped to the principal's workspace by authenticate()


DbSession = Annotated[Session, Depends(_tenant_session)]


def authorize(principal: Principal, role: str = "viewer", scope: str | None = None) -> Principal:
    """Answer 403 when the caller's role or token scope is too small.

    Routes that take an id call this only after loading the object, so a foreign or unknown
    id is 404 whatever the caller's role: a 403 would confirm the id exists.
    """
    if not principal.has_role(role):
        raise ApiProblem(403, "forbidden", f"This action needs the {role} role or higher.")
    if scope is not None and not principal.has_scope(scope):
        raise ApiProblem(403, "insufficient_scope", f"This token lacks the {scope!r} scope.")
    return principal


def require(role: str = "viewer", scope: str | None = None) -> Callable[..., Principal]:
    """The same check as a dependency, for routes without ids."""

    async def _check(principal: CurrentPrincipal) -> Principal:
        return authorize(principal, role, scope)

    return _check


Viewer = Annotated[Principal, Depends(require("viewer"))]
JobsReader = Annotated[Principal, Depends(require("viewer", "jobs:read"))]
JobsWriter = Annotated[Principal, Depends(require("editor", "jobs:write"))]
ArtifactsReader = Annotated[Principal, Depends(require("viewer", "artifacts:read"))]
WorkspaceReader = Annotated[Principal, Depends(require("viewer", "workspace:read"))]
WorkspaceAdmin = Annotated[Principal, Depends(require("admin", "workspace:admin"))]


def idempotency_key_header(description: str | None = None) -> Any:
    """The optional ``Idempotency-Key`` header of a submit route (printable ASCII, 1-255 characters)."""
    return Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                        pattern=r"^[\x21-\x7e]+$", description=description)]


def request_id(request: Request) -> str | None:
    """The id the observability middleware gave this request (None outside it)."""
    return getattr(request.state, "request_id", None)


def audit(session: Session, request: Request, principal: Principal, action: str, target_type: str,
          target_id: str | None, **detail: Any) -> None:
    """Record who did what to which object, with the request id (flushed with the session)."""
    session.add(AuditLog(
        workspace_id=principal.workspace_id, actor_user_id=principal.user_id, action=action,
        target_type=target_type, target_id=target_id, request_id=request_id(request), detail=detail,
    ))

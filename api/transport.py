"""How the API takes request bodies from slow or hostile clients: one pure ASGI middleware.

``RequestBodyGuard`` sits between the access-log middleware and the application and wraps
``receive`` for every request that carries a body (a ``Content-Length`` above zero or any
``Transfer-Encoding``). Before the application sees the request it:

1. **Authenticates before any body byte is read.** FastAPI reads and parses a JSON (or form) body
   *before* it runs dependencies, so the bearer check in ``api.deps`` comes too late to protect
   memory. The guard finds the route the request will reach and, when that route depends on the
   bearer principal (``api.deps._principal``, found by walking its dependency tree, so a new route
   is covered without a list to maintain), checks the ``Authorization`` header: a missing or
   malformed header answers 401 with no database access; a well-formed token is looked up in one
   short transaction on the short-transaction threads (``api.connection_gate``). Only then is the application called. Public routes
   (health, the signed download link) carry no body and are left alone. The dependency checks the
   token again in the request's own session (which it scopes to the workspace): a second indexed
   lookup, only for requests with a body.
2. **Caps every body** at ``KILN_MAX_JSON_BODY_BYTES``: from ``Content-Length`` up front, and by
   counting while the body streams (chunked bodies) -> 413 ``payload_too_large``, whatever the
   content type claims (FastAPI reads a JSON route's whole body even when it is sent as multipart).
   Only routes that stream their own upload are exempt; they say so with the ``streams_own_body``
   dependency (every upload route has it through ``api.limits.upload_limits``), and their limits are
   per route (``api.uploads``).
3. **Times out idle bodies**: no byte for ``KILN_UPLOAD_IDLE_TIMEOUT_SECONDS`` -> 408
   ``upload_timeout``. Reading happens on the event loop, so a stalled client costs a coroutine,
   never a worker thread; the timeout frees the connection and whatever the route was writing
   (uploads abort their partial object).
4. **Notices clients that go away mid-body** (``http.disconnect``): the request is marked
   ``client_aborted`` so the access log and metrics count it apart (status 499), not as a 500.

The errors raised from ``receive`` are Starlette ``HTTPException`` s on purpose: FastAPI re-raises
those from its body parsing (anything else becomes a generic 400), and the problem handlers render
them as problem+json with the stable codes in ``api.problems``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
from fastapi.dependencies.models import Dependant
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.connection_gate import run_short_transaction
from api.problems import CLIENT_ABORTED_KEY, problem_response
from api.security import (
    INVALID_TOKEN_DETAIL,
    MISSING_TOKEN_DETAIL,
    UNAUTHORIZED_HEADERS,
    AuthenticationFailed,
    authenticate,
    bearer_credentials,
)
from warehouse.db import session_factory

_ROUTE_KEY = "kiln_body_guard_route"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"No request body bytes arrived for {seconds:g} seconds; the upload was abandoned.")



def streams_own_body() -> None:
    """Marker dependency of the routes that read their body themselves, streaming it (uploads).

    The body guard exempts them from the JSON body cap: their size limits are per route
    (``api.uploads``). Every other route's body is capped, whatever its content type says.
    """


def _depends_on(dependant: Dependant, target: Any) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call is target:
            return True
        pending.extend(current.dependencies)
    return False


def iter_routes(routes) -> Iterator[BaseRoute]:
    """Every leaf route, through included routers (FastAPI >= 0.16x keeps them as ``_IncludedRouter``
    branches holding ``original_router``; Kiln includes its routers without an extra prefix, so the
    leaf routes' own paths are the paths requests use)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from iter_routes(inner.routes)
        else:
            yield route


def _check_token(engine, token: str, secret_key: str) -> bool:
    with session_factory(engine)() as session, session.begin():
        try:
            authenticate(session, token, secret_key=secret_key)
        except AuthenticationFailed:
            return False
    return True


class RequestBodyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[int, tuple[bool, bool]] = {}

    def _classify(self, scope: Scope) -> tuple[bool, bool]:
        """(needs a bearer token, streams its own body) for the route this request reaches."""
        from api.deps import _principal  # the one bearer dependency every authenticated route reaches

        for route in iter_routes(scope["app"].router.routes):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                key = id(route)
                if key not in self._routes:
                    dependant = getattr(route, "dependant", None)
                    self._routes[key] = (dependant is not None and _depends_on(dependant, _principal),
                                         dependant is not None and _depends_on(dependant, streams_own_body))
                scope.setdefault("state", {})[_ROUTE_KEY] = route  # labels an early answer's log line
                return self._routes[key]
        return False, False  # 404/405: nothing will read the body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length", "")
        has_body = "transfer-encoding" in headers or (length.isdigit() and int(length) > 0)
        if not has_body:
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.settings  # read per request, so tests (and reloads) can change limits
        max_json_bytes, idle_timeout = settings.max_json_body_bytes, settings.upload_idle_timeout_seconds

        needs_auth, streams_upload = self._classify(scope)
        if needs_auth:
            token = bearer_credentials(headers)
            if token is None:
                await self._reject(scope, receive, send, 401, "unauthorized", MISSING_TOKEN_DETAIL,
                                   UNAUTHORIZED_HEADERS)
                return
            state = scope["app"].state
            try:
                ok = await run_short_transaction(scope["app"], _check_token, state.engine, token,
                                                 state.settings.secret_key.get_secret_value())
            except (OperationalError, SATimeoutError):
                # Outside the app's exception handlers: a locked SQLite file, a PostgreSQL restart or an
                # exhausted pool answers like the routes do (503, retry), never a 500.
                await self._reject(scope, receive, send, 503, "database_busy",
                                   "The database is busy or unreachable; retry in a moment.", {"Retry-After": "1"})
                return
            if not ok:
                await self._reject(scope, receive, send, 401, "unauthorized", INVALID_TOKEN_DETAIL,
                                   UNAUTHORIZED_HEADERS)
                return

        capped = not streams_upload
        if capped and length.isdigit() and int(length) > max_json_bytes:
            await self._reject(scope, receive, send, 413, "payload_too_large", BodyTooLarge(max_json_bytes).detail)
            return
        guarded = _guarded_receive(scope, receive, max_json_bytes if capped else None, idle_timeout)
        if not capped:  # an upload: its route streams the body itself
            await self.app(scope, guarded, send)
            return
        # A capped body is read whole here, before the app runs: FastAPI may resolve a route's dependencies (a
        # database session among them) before it reads the body, and a client that stalls mid-body must not hold
        # a pooled connection while it does (stalled JSON bodies emptied the pool and every thread waited on it).
        try:
            first = await _read_whole(guarded)
        except (BodyTooLarge, BodyTimeout) as exc:
            code = "payload_too_large" if isinstance(exc, BodyTooLarge) else "upload_timeout"
            await self._reject(scope, receive, send, exc.status_code, code, exc.detail)
            return
        pending = [first]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str,
                      headers: dict[str, str] | None = None) -> None:
        # Answered without reading the body; the server closes the connection rather than drain it.
        if _ROUTE_KEY in scope.get("state", {}):
            scope["route"] = scope["state"][_ROUTE_KEY]  # the access log and metrics label by route template
        response = problem_response(status, code, detail, request=Request(scope), headers=headers)
        await response(scope, receive, send)


async def _read_whole(receive: Receive) -> Message:
    """The whole body as one ``http.request`` message, or the ``http.disconnect`` that cut it off."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


def _guarded_receive(scope: Scope, receive: Receive, limit: int | None, idle_timeout: float) -> Receive:
    received = 0
    body_done = False

    async def guarded() -> Message:
        nonlocal received, body_done
        if body_done:  # after the body only a disconnect can come: wait for it, untimed
            return await receive()
        message: Message | None = None
        with anyio.move_on_after(idle_timeout):
            message = await receive()
        if message is None:
            raise BodyTimeout(idle_timeout)
        if message["type"] == "http.disconnect":
            scope.setdefault("state", {})[CLIENT_ABORTED_KEY] = True
            return message  # the reader raises ClientDisconnect (Starlette) as it always has
        received += len(message.get("body", b""))
        if limit is not None and received > limit:
            raise BodyTooLarge(limit)
        body_done = not message.get("more_body", False)
        return message

    return guarded


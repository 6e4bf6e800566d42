"""The emulator's HTTP surface (Starlette): LinkedIn's OAuth, userinfo and Posts endpoints, plus /_emulator admin.

Answers use LinkedIn's shapes: OAuth errors ``{"error", "error_description"}``; REST errors
``{"status", "serviceErrorCode", "code", "message"}``; a created post is ``201`` with ``x-restli-id``.
"""

from __future__ import annotations

import asyncio
import html
import json
from datetime import UTC
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from resources.linkedin_emulator.littletext import parse, utf16_length
from resources.linkedin_emulator.state import FAULT_KINDS, EmulatorConfig, EmulatorState

VISIBILITIES = {"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"}


class EmulatedConnectionReset(Exception):
    """Raised after the response started: uvicorn then closes the connection mid-answer."""


class _ResetResponse(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"512")]})
        raise EmulatedConnectionReset("emulated connection reset after commit")


def _rest_error(status: int, code: str, message: str, service_code: int = 0) -> JSONResponse:
    body = {"status": status, "code": code, "message": message}
    if service_code:
        body["serviceErrorCode"] = service_code
    return JSONResponse(body, status_code=status)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def create_app(config: EmulatorConfig | None = None, state: EmulatorState | None = None) -> Starlette:
    state = state or EmulatorState(config or EmulatorConfig())
    cfg = state.config

    def redirect_ok(uri: str) -> bool:
        if cfg.redirect_uris:
            return uri in cfg.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in {"http", "https"} and bool(parts.netloc)

    def with_query(uri: str, **params: str) -> str:
        return uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)

    # -- OAuth ---------------------------------------------------------------------------------
    async def authorize(request: Request) -> Response:
        q = request.query_params if request.method == "GET" else await request.form()
        client_id, redirect_uri = str(q.get("client_id", "")), str(q.get("redirect_uri", ""))
        state_value, scope = str(q.get("state", "")), str(q.get("scope", ""))
        if client_id != cfg.client_id or not redirect_ok(redirect_uri):
            return HTMLResponse("<h1>Invalid client or redirect URI</h1>", status_code=400)
        if request.method == "GET" and q.get("response_type") != "code":
            return HTMLResponse("<h1>response_type must be code</h1>", status_code=400)
        requested = frozenset(s for s in scope.replace(",", " ").split() if s)
        if not requested or not requested <= set(cfg.app_scopes):
            return RedirectResponse(with_query(redirect_uri, error="unauthorized_scope_error",
                                               error_description="Scope is not authorized for this application",
                                               state=state_value), status_code=302)
        if request.method == "GET":
            e = html.escape
            hidden = "".join(f'<input type="hidden" name="{k}" value="{e(v)}">' for k, v in
                             {"client_id": client_id, "redirect_uri": redirect_uri, "state": state_value,
                              "scope": scope}.items())
            page = (
                "<!doctype html><title>LinkedIn emulator: consent</title>"
                "<h1>LinkedIn emulator</h1><p>This is Kiln's local LinkedIn emulator, not LinkedIn.</p>"
                f"<p>The application asks for: {e(' '.join(sorted(requested)))}</p>"
                '<form method="post" action="/oauth/v2/authorization">' + hidden +
                '<label>Member id <input name="member" value="EmuMember1"></label> '
                '<label>Name <input name="name" value="Emu Member"></label> '
                '<button name="decision" value="allow">Allow</button> '
                '<button name="decision" value="deny">Cancel</button></form>'
            )
            return HTMLResponse(page)
        if q.get("decision") != "allow":
            return RedirectResponse(with_query(redirect_uri, error="user_cancelled_authorize",
                                               error_description="The user cancelled the authorization",
                                               state=state_value), status_code=302)
        sub = "".join(ch for ch in str(q.get("member", "")) if ch.isalnum() or ch in "-_")[:64] or "EmuMember1"
        granted = requested if cfg.granted_scopes is None else requested & set(cfg.granted_scopes)
        with state.lock:
            state.member(sub, str(q.get("name") or "") or None)
            code = state.issue_code(sub, frozenset(granted), redirect_uri, client_id)
        return RedirectResponse(with_query(redirect_uri, code=code, state=state_value), status_code=302)

    async def access_token(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = await request.form()
        if form.get("client_id") != cfg.client_id or form.get("client_secret") != cfg.client_secret:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        grant_type = form.get("grant_type")
        with state.lock:
            now = state.now()
            if grant_type == "authorization_code":
                entry = state.codes.pop(str(form.get("code", "")), None)  # single use, even when refused
                if entry is None or entry["expires_at"] < now:
                    return _oauth_error(400, "invalid_request",
                                        "Unable to retrieve access token: authorization code not found")
                if entry["redirect_uri"] != form.get("redirect_uri"):
                    return _oauth_error(400, "invalid_request",
                                        "Unable to retrieve access token: appid/redirect uri/code verifier "
                                        "does not match authorization code")
                return JSONResponse(state.issue_tokens(entry["sub"], entry["scopes"], cfg.client_id))
            if grant_type == "refresh_token":
                grant = state.refresh_tokens.get(str(form.get("refresh_token", "")))
                if grant is None or grant.expires_at < now:
                    return _oauth_error(400, "invalid_request", "The provided refresh token is invalid or expired")
                answer = state.issue_tokens(grant.sub, grant.scopes, cfg.client_id)
                # LinkedIn keeps the refresh token and its original expiry (365 days from first consent).
                state.refresh_tokens.pop(answer.pop("refresh_token", ""), None)
                answer["refresh_token"] = str(form.get("refresh_token"))
                answer["refresh_token_expires_in"] = int((grant.expires_at - now).total_seconds())
                return JSONResponse(answer)
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")

    def bearer(request: Request) -> tuple[Any, Response | None]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        grant = state.grant_for(token)
        if grant is None:
            return None, _rest_error(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        if grant.expires_at < state.now():
            return None, _rest_error(401, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired", 65601)
        return grant, None

    async def userinfo(request: Request) -> Response:
        await asyncio.sleep(cfg.latency_s)
        with state.lock:
            grant, problem = bearer(request)
            if problem:
                return problem
            if not {"openid", "profile"} <= grant.scopes:
                return _rest_error(403, "ACCESS_DENIED", "Not enough permissions to access: userinfo.GET.NO_VERSION", 100)
            member = state.member(grant.sub)
        given, _, family = member.name.partition(" ")
        return JSONResponse({"sub": member.sub, "name": member.name, "given_name": given, "family_name": family,
                             "picture": f"https://media.emulator.invalid/{member.sub}.jpg",
                             "locale": {"country": "US", "language": "en"}})

    def rest_headers_problem(request: Request) -> Response | None:
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return _rest_error(400, "INVALID_PROTOCOL_VERSION", "X-Restli-Protocol-Version must be 2.0.0")
        version = state.version_problem(request.headers.get("linkedin-version"))
        if version:
            return _rest_error(version[0], version[1], version[2])
        return None

    # -- Posts ---------------------------------------------------------------------------------
    async def posts(request: Request) -> Response:
        await asyncio.sleep(cfg.latency_s)
        if request.method == "GET":
            return list_posts(request)
        with state.lock:
            grant, problem = bearer(request)
            problem = problem or rest_headers_problem(request)
            if problem:
                return problem
            if "w_member_social" not in grant.scopes:
                return _rest_error(403, "ACCESS_DENIED", "Not enough permissions to access: partnerApiPostsExternal.CREATE", 100)
            fault = state.pick_fault(request.headers.get("x-emulator-fault"))
        if fault == "slow":
            await asyncio.sleep(cfg.slow_s)
        if fault == "server_error":
            return _rest_error(500, "INTERNAL_SERVER_ERROR", "Internal Server Error")
        if fault == "unauthorized":
            return _rest_error(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _rest_error(400, "BAD_REQUEST", "Request body is not valid JSON")
        problem = validate_body(body)
        if problem:
            return _rest_error(422, "UNPROCESSABLE_ENTITY", problem)
        if body["author"] != f"urn:li:person:{grant.sub}":
            return _rest_error(403, "ACCESS_DENIED", "Member is not allowed to post as this author", 100)
        with state.lock:
            exhausted = state.count_call(grant.sub)
            if exhausted:
                return _rest_error(429, "TOO_MANY_REQUESTS",
                                   f"Resource level throttle {exhausted.upper()} DAY limit "
                                   "for calls to this resource is reached.")
            parsed = parse(body["commentary"])
            if utf16_length(parsed.text) > cfg.max_commentary_chars:
                return _rest_error(422, "UNPROCESSABLE_ENTITY",
                                   f"/commentary :: length exceeds {cfg.max_commentary_chars} characters")
            existing = state.duplicate_of(body["author"], parsed.text)
            if existing:
                return _rest_error(422, "DUPLICATE_POST", f"Content is a duplicate of {existing.urn}")
            post = state.store(body["author"], parsed.stored, parsed.text, parsed.truncated, body)
        if fault == "reset_after_commit":
            return _ResetResponse()
        if fault == "timeout_after_commit":
            await asyncio.sleep(cfg.hang_s)
        return Response(status_code=201, headers={"x-restli-id": post.urn,
                                                  "location": f"/rest/posts/{post.urn.replace(':', '%3A')}"})

    def list_posts(request: Request) -> Response:
        with state.lock:
            grant, problem = bearer(request)
            problem = problem or rest_headers_problem(request)
            if problem:
                return problem
            if "r_member_social" not in grant.scopes:
                return _rest_error(403, "ACCESS_DENIED",
                                   "Not enough permissions to access: partnerApiPostsExternal.FINDER-author", 100)
            q = request.query_params
            author = q.get("author", "")
            if q.get("q") != "author" or author != f"urn:li:person:{grant.sub}":
                return _rest_error(400, "BAD_REQUEST", "q=author with the member's own author URN is required")
            try:
                start, count = max(0, int(q.get("start", "0"))), min(100, max(1, int(q.get("count", "10"))))
            except ValueError:
                return _rest_error(400, "BAD_REQUEST", "start and count must be integers")
            mine = [p for p in reversed(state.posts) if p.author == author]
            elements = [
                {"id": p.urn, "author": p.author, "commentary": p.commentary, "visibility": p.visibility,
                 "lifecycleState": "PUBLISHED", "createdAt": int(p.created_at.astimezone(UTC).timestamp() * 1000),
                 "lastModifiedAt": int(p.created_at.astimezone(UTC).timestamp() * 1000),
                 "distribution": p.body.get("distribution")}
                for p in mine[start : start + count]
            ]
        return JSONResponse({"elements": elements, "paging": {"start": start, "count": count, "total": len(mine)}})

    # -- admin ---------------------------------------------------------------------------------
    async def admin_posts(request: Request) -> Response:
        with state.lock:
            return JSONResponse(state.summary())

    async def admin_reset(request: Request) -> Response:
        with state.lock:
            state.reset()
        return Response(status_code=204)

    async def admin_faults(request: Request) -> Response:
        data = await request.json()
        queue = data.get("queue", []) if isinstance(data, dict) else None
        if not isinstance(queue, list) or not all(isinstance(k, str) for k in queue):
            return JSONResponse({"error": "queue must be a list of fault kinds"}, status_code=400)
        with state.lock:
            if any(k not in FAULT_KINDS for k in queue):
                return JSONResponse({"error": f"fault kinds: {', '.join(FAULT_KINDS)}"}, status_code=400)
            state.fault_queue.extend(queue)
        return JSONResponse({"queued": len(state.fault_queue)})

    async def admin_config(request: Request) -> Response:
        data = await request.json()
        with state.lock:
            try:
                cfg.update(data if isinstance(data, dict) else {})
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if "fault_seed" in data:
                state.rng.seed(cfg.fault_seed)
        return Response(status_code=204)

    app = Starlette(routes=[
        Route("/oauth/v2/authorization", authorize, methods=["GET", "POST"]),
        Route("/oauth/v2/accessToken", access_token, methods=["POST"]),
        Route("/v2/userinfo", userinfo, methods=["GET"]),
        Route("/rest/posts", posts, methods=["GET", "POST"]),
        Route("/_emulator/posts", admin_posts, methods=["GET"]),
        Route("/_emulator/reset", admin_reset, methods=["POST"]),
        Route("/_emulator/faults", admin_faults, methods=["POST"]),
        Route("/_emulator/config", admin_config, methods=["POST"]),
    ])
    app.state.emulator = state
    return app


def validate_body(body: Any) -> str | None:
    """LinkedIn-style field errors for a post body (None when acceptable)."""
    if not isinstance(body, dict):
        return "/ :: body must be an object"
    if not isinstance(body.get("author"), str) or not body["author"].startswith("urn:li:"):
        return "/author :: a person or organization URN is required"
    if not isinstance(body.get("commentary"), str):
        return "/commentary :: a string is required"
    if body.get("visibility") not in VISIBILITIES:
        return "/visibility :: must be one of " + ", ".join(sorted(VISIBILITIES))
    distribution = body.get("distribution")
    if not isinstance(distribution, dict) or distribution.get("feedDistribution") not in {"MAIN_FEED", "NONE"}:
        return "/distribution/feedDistribution :: MAIN_FEED or NONE is required"
    if body.get("lifecycleState") not in {"PUBLISHED", "DRAFT"}:
        return "/lifecycleState :: PUBLISHED or DRAFT is required"
    return None

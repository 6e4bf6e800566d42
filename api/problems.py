"""Every error the API returns is ``application/problem+json`` (RFC 9457) with a stable ``code``.

Clients switch on ``code``; ``type`` is a URI naming the same thing for humans. KilnError
(the domain's typed errors), FastAPI's validation errors and Starlette's HTTPException all map
here, so no handler ever answers with a bare ``{"detail": ...}``.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.requests import ClientDisconnect
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.errors import KilnError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://kiln.dev/problems/"

_log = structlog.get_logger("kiln.api")

# Stable codes for plain HTTP statuses raised by the framework (routing, methods, ...).
_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    408: ("upload_timeout", "Request body timed out"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    416: ("range_not_satisfiable", "Range not satisfiable"),
    422: ("validation_error", "Validation error"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


# Set on a request whose client hung up mid-body: the access log and metrics count it apart (status 499).
CLIENT_ABORTED_KEY = "client_aborted"


class Problem(BaseModel):
    """The problem document (documented in OpenAPI for every error response).

    RFC 9457 extension members beyond these fields may appear (e.g. ``job_id`` of an idempotency
    conflict); clients ignore the ones they do not know.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None
    request_id: str | None = None
    missing: list[str] | None = Field(
        default=None, description="The missing columns or fields (missing_columns, missing_fields, ...)")


class ApiProblem(Exception):
    """Raise from routes and dependencies to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _STATUS_CODES.get(status, (code, code.replace("_", " ").capitalize()))[1]
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str = "resource") -> ApiProblem:
    return ApiProblem(404, "not_found", f"No such {what} in this workspace.")


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or _STATUS_CODES.get(status, (code, "Error"))[1],
        "status": status,
        "detail": detail,
        "code": code,
    }
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


# The members every problem carries; a KilnError's extras never replace them.
_RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "request_id", "errors"})
_MAX_EXTRA_MEMBERS = 16
_MAX_LIST_ITEMS = 100
_MAX_STRING_CHARS = 1000


def _safe_simple(value: Any) -> tuple[bool, Any]:
    """(is it a JSON-safe simple value?, the value with long strings cut)."""
    if isinstance(value, str):
        return True, value[:_MAX_STRING_CHARS]
    if value is None or isinstance(value, bool | int):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value  # JSON has no NaN or infinity
    return False, None


def kiln_error_extensions(extra: dict[str, Any]) -> dict[str, Any]:
    """The extension members a KilnError's ``extra`` contributes to its problem document.

    Only simple JSON values (str, int, float, bool, None) and lists of them pass, capped in count
    and size; exceptions, objects, dicts and nested lists are dropped, so nothing internal leaks.
    """
    members: dict[str, Any] = {}
    for name, value in extra.items():
        if len(members) >= _MAX_EXTRA_MEMBERS:
            break
        if not isinstance(name, str) or name in _RESERVED_MEMBERS or not name.isidentifier():
            continue
        if isinstance(value, list | tuple):
            items = [_safe_simple(item) for item in value[:_MAX_LIST_ITEMS]]
            if all(ok for ok, _ in items):
                members[name] = [item for _, item in items]
            continue
        ok, safe = _safe_simple(value)
        if ok:
            members[name] = safe
    return members


def _json_safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    safe = []
    for err in errors:
        safe.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return safe


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.status, exc.code, exc.detail, title=exc.title, request=request, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(KilnError)
    async def _kiln_error(request: Request, exc: KilnError) -> JSONResponse:
        if exc.http_status >= 500:
            _log.error("kiln_error", code=exc.code, error=exc.message)
        # Simple extras become extension members (the job_id of an idempotency conflict, the
        # `missing` columns of missing_columns, ...).
        return problem_response(
            exc.http_status, exc.code, exc.message, title=exc.title, request=request,
            **kiln_error_extensions(exc.extra),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _json_safe_errors(list(exc.errors()))
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else first["msg"]
        return problem_response(422, "validation_error", detail, request=request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(exc.status_code, code, detail, title=title, request=request, headers=exc.headers)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL in text, a number out of range) that input validation
        # let through: the client's input, not a server fault. Logged, so the gap gets a validator.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else type(exc).__name__
        _log.warning("database_rejected_value", error_type=type(exc.orig).__name__, error=reason)
        return problem_response(422, "invalid_value", "A value in the request cannot be stored or compared "
                                "(for example a NUL character or a number out of range).", request=request)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite (and Python's own C conversions) refuse integers beyond 64 bits; input validation
        # bounds every int we know of, this catches the ones added later.
        _log.warning("integer_out_of_range", error=str(exc)[:200])
        return problem_response(422, "invalid_value", "A number in the request is out of range.", request=request)

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        if is_database_busy(exc):
            _log.warning("database_busy")
            return problem_response(503, "database_busy", "The database is busy with other writes; retry shortly.",
                                    title="Database busy", request=request,
                                    headers={"Retry-After": DATABASE_BUSY_RETRY_AFTER})
        return await _unhandled(request, exc)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Not a server fault: the access log records it as client_aborted (status 499), no traceback.
        request.scope.setdefault("state", {})[CLIENT_ABORTED_KEY] = True
        return problem_response(499, "client_aborted", "The client closed the connection before the request "
                                "was complete.", title="Client closed request", request=request)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled_error", error_type=type(exc).__name__)
        return problem_response(500, "internal_error", "An unexpected error occurred.", request=request)


DATABASE_BUSY_RETRY_AFTER = "1"
_BUSY_MESSAGES = ("database is locked", "database table is locked")


def is_database_busy(exc: BaseException) -> bool:
    """SQLite's lock timeout ("database is locked"), as raised through SQLAlchemy or sqlite3."""
    orig = getattr(exc, "orig", exc)
    return any(message in str(orig).lower() for message in _BUSY_MESSAGES)


# OpenAPI: every route documents its problem responses with this schema.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": _STATUS_CODES.get(status, ("", "Error"))[1],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }

"""Every error the API returns is ``application/problem+json`` (RFC 9457) with a stable ``code``.

Clients switch on ``code``; ``type`` is a URI naming the same thing for humans. KilnError
(the domain's typed errors), FastAPI's validation errors and Starlette's HTTPException all map
here, so no handler ever answers with a bare ``{"detail": ...}``.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
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
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    416: ("range_not_satisfiable", "Range not satisfiable"),
    422: ("validation_error", "Validation error"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(BaseModel):
    """The problem document (documented in OpenAPI for every error response)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None
    request_id: str | None = None


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
        # Only JSON-safe scalar extras are echoed (e.g. the job_id of an idempotency conflict).
        extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool)}
        return problem_response(
            exc.http_status, exc.code, exc.message, title=exc.title, request=request, **extra
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

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled_error", error_type=type(exc).__name__)
        return problem_response(500, "internal_error", "An unexpected error occurred.", request=request)


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

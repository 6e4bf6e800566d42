"""The FastAPI application factory: ``uvicorn api.main:create_app --factory``.

Nothing connects at import time; ``create_app`` builds the engine from
``settings.resolved_database_url`` (lazily connecting) and the object store from settings.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.observability import ApiMetrics, RequestContextMiddleware, configure_logging
from api.problems import Problem, install_problem_handlers, problem_response, problem_responses
from api.routes import artifacts, audit, bulk_runs, health, jobs, templates, tokens, workspaces
from api.routes import characters, drafts, episodes, invitations, linkedin, linkedin_content, usage, videos
from api.transport import RequestBodyGuard
from pipelines import products as product_list
from resources.objectstore import ObjectStore
from resources.settings import Settings, get_settings
from warehouse.db import is_postgres, make_engine


# The API's half of each product card: its routers, served only while the card is in the list.
PRODUCT_ROUTERS = {"selftest": (), "video_notes": (videos,), "documents": (templates, bulk_runs),
                   "episodes": (characters, episodes),
                   "linkedin": (linkedin, linkedin_content, drafts)}
PLATFORM_ROUTERS = (health, workspaces, invitations, tokens, jobs, artifacts, usage, audit)


def _default_store(settings: Settings) -> ObjectStore:
    from resources.objectstore_factory import build_object_store  # written alongside the implementations

    return build_object_store(settings)


class RejectNulInUrl:
    """Answers 400 when the decoded path or query string holds a NUL (``%00``).

    No parameter accepts one, and PostgreSQL text cannot hold it: caught once here for every route
    (query filters, path segments), before it reaches a query and fails as a database error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope.get("path", "")
                                        or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))):
            response = problem_response(400, "invalid_characters", "The URL holds a NUL character (%00).",
                                        request=Request(scope))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, store: ObjectStore | None = None,
               configure_logs: bool = True) -> FastAPI:
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings)
    app = FastAPI(
        title="Kiln API",
        version="1.0.0",
        description="Submit work, follow jobs and download artifacts. Authenticate with "
        "`Authorization: Bearer kiln_<prefix>_<secret>`; errors are application/problem+json.",
        # Any route may answer a malformed body (400) or invalid parameters (422); any authenticated one too
        # many requests for its token (429, api/ratelimit.py); on SQLite, a database busy with other writes
        # (503 database_busy, Retry-After).
        responses=problem_responses(400, 422, 429, 503),
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.resolved_database_url,
                                   sqlite_busy_timeout=settings.sqlite_busy_timeout_seconds)
    app.state.store = store or _default_store(settings)
    metrics = ApiMetrics()
    metrics_url = getattr(settings, "metrics_database_url", None)
    if metrics_url:
        metrics.add_job_collector(make_engine(metrics_url))
    elif not is_postgres(app.state.engine):
        metrics.add_job_collector(app.state.engine)  # SQLite: no row-level security, the API sees every job
    else:
        # The API's role sees one workspace per transaction (RLS): counting through it would report zeros.
        structlog.get_logger("kiln.metrics").warning(
            "job_metrics_disabled", reason="set KILN_METRICS_DATABASE_URL to a role in kiln_system")
    app.state.metrics = metrics

    install_problem_handlers(app)
    # Innermost: authenticates, caps and times the body before any route or FastAPI reads it.
    app.add_middleware(RequestBodyGuard)
    app.add_middleware(RejectNulInUrl)  # inside the context middleware: the answer is logged and has a request id
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    # The platform's routers always; a product's only while its card is listed (pipelines/products.py).
    for module in PLATFORM_ROUTERS + tuple(m for card in product_list.PRODUCTS for m in PRODUCT_ROUTERS[card.name]):
        app.include_router(module.router)

    # The Problem schema is referenced by every error response in the OpenAPI document.
    original_openapi = app.openapi

    def openapi_with_problem():
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
        schema["components"].setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
        schema["security"] = [{"bearer": []}]
        # Every operation that takes a body may answer the transport guard's 408 and 413 (api/transport.py).
        body_problems = problem_responses(408, 413)
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    for status, response in body_problems.items():
                        operation.setdefault("responses", {}).setdefault(
                            str(status), {"description": response["description"], "content": response["content"]})
        return schema

    app.openapi = openapi_with_problem  # type: ignore[method-assign]
    return app

"""JSON logs, request correlation and Prometheus metrics, shared by the API and Dagster code.

* ``configure_logging(settings)``: structlog emitting one JSON object per line, with the
  context variables (``request_id``, ``workspace_id``, ``job_id``, ``run_id``) merged in and
  secrets redacted as the last step before rendering.
* ``bind_context(**kv)``: add correlation fields to every later log line of this task/thread.
* ``RequestContextMiddleware``: takes ``X-Request-ID`` (validated) or generates one, echoes it,
  logs one access line per request and records request metrics by route template.
* ``JobMetricsCollector``: job transitions and queue depth, computed from the DB at scrape time.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOKEN_IN_TEXT = re.compile(r"kiln_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
# A signed download link is a credential too (api/signing.py): keep its signature out of logs.
_SIGNED_LINK_IN_TEXT = re.compile(r"([0-9a-f]{32}\.[0-9a-f]{32}\.[0-9]{1,12}\.)[A-Za-z0-9_-]{43}")
_BEARER_IN_TEXT = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_KEYS = re.compile(r"(?i)(token|secret|password|passwd|authorization|api[_-]?key|cookie|credential)")
REDACTED = "[REDACTED]"


# ---------------------------------------------------------------- logging

def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        value = _SIGNED_LINK_IN_TEXT.sub(r"\1" + REDACTED, _TOKEN_IN_TEXT.sub(REDACTED, value))
        return _BEARER_IN_TEXT.sub(r"\1 " + REDACTED, value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _redact_value(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


def _is_secret_key(key: Any) -> bool:
    # "token_id" / "token_prefix" identify a token without revealing it; keep them.
    return isinstance(key, str) and bool(_SECRET_KEYS.search(key)) and not key.endswith(("_id", "_prefix", "_count"))


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop token-looking strings and values of secret-named keys."""
    return {k: (REDACTED if _is_secret_key(k) else _redact_value(v)) for k, v in event_dict.items()}


def configure_logging(settings: Any = None, *, stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging through it) for this process."""
    level_name = str(getattr(settings, "log_level", "INFO")).upper()
    level = logging.getLevelName(level_name) if isinstance(logging.getLevelName(level_name), int) else logging.INFO
    as_json = bool(getattr(settings, "log_json", True))
    stream = stream or sys.stderr
    shared: list[Callable] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Library logs (uvicorn, sqlalchemy, alembic) go through the same redaction and rendering.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_secrets, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_kiln", False)]
    handler._kiln = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access",):  # our middleware writes the access line
        logging.getLogger(noisy).propagate = False


def bind_context(**kv: Any) -> None:
    structlog.contextvars.bind_contextvars(**{k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in kv.items()})


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()


def valid_request_id(value: str | None) -> str:
    return value if value and _VALID_REQUEST_ID.match(value) else uuid.uuid4().hex


# ---------------------------------------------------------------- metrics

class ApiMetrics:
    """One registry per app instance, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kiln_http_requests", "HTTP requests by method, route template and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "kiln_http_request_duration_seconds", "HTTP request latency by method and route template",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def add_job_collector(self, engine: Engine) -> None:
        self.registry.register(JobMetricsCollector(engine))


class JobMetricsCollector(Collector):
    """Reads job counts at scrape time; the DB is the source of truth, so restarts lose nothing.

    On PostgreSQL the engine must belong to a role that sees every tenant (``kiln_system``,
    ``KILN_METRICS_DATABASE_URL``); with the API's own role RLS shows no rows.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self):  # no DB access at registration time
        return []

    def collect(self):
        from warehouse.models import Job, JobEvent

        transitions = CounterMetricFamily(
            "kiln_job_transitions", "Job state transitions by kind and new status", labels=["kind", "status"]
        )
        depth = GaugeMetricFamily("kiln_jobs", "Jobs by kind and current status", labels=["kind", "status"])
        try:
            with self.engine.connect() as conn:
                for kind, status, count in conn.execute(
                    select(Job.kind, JobEvent.to_status, func.count())
                    .join(Job, Job.id == JobEvent.job_id)
                    .where(JobEvent.to_status.is_not(None))
                    .group_by(Job.kind, JobEvent.to_status)
                ):
                    transitions.add_metric([kind, status], count)
                for kind, status, count in conn.execute(
                    select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
                ):
                    depth.add_metric([kind, status], count)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB blinked
            structlog.get_logger("kiln.metrics").warning("job_metrics_unavailable")
            return
        yield transitions
        yield depth


# ---------------------------------------------------------------- middleware

class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so context variables reach the endpoint."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("kiln.api.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = valid_request_id(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        clear_context()
        bind_context(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            status = status_holder["status"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            state = scope.get("state", {})
            self.log.info(
                "request",
                method=method,
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                workspace_id=state.get("workspace_id"),
                client=(scope.get("client") or ("", 0))[0],
            )
            clear_context()

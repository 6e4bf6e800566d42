"""The API's request correlation and Prometheus metrics (JSON logging itself: resources/logs.py).

* ``RequestContextMiddleware``: takes ``X-Request-ID`` (validated) or generates one, echoes it,
  logs one access line per request and records request metrics by route template.
* ``JobMetricsCollector``: job transitions and queue depth, computed from the DB at scrape time.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import CLIENT_ABORTED_KEY

# The logging half lives in resources.logs, so Dagster code configures the same JSON lines without
# importing the API; re-exported here for the API's modules.
from resources.logs import (  # noqa: F401
    REDACTED,
    bind_context,
    clear_context,
    configure_dagster_logging,
    configure_logging,
    redact_secrets,
)

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up; never sent, only logged and counted
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
        self.client_aborts = Counter(
            "kiln_http_client_aborts", "Requests whose client closed the connection before sending the whole "
            "request (counted with status 499 in kiln_http_requests, never as a server error)",
            ["method", "route"], registry=self.registry,
        )
        self.latency = Histogram(
            "kiln_http_request_duration_seconds", "HTTP request latency by method and route template",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        self.job_metrics_enabled = Gauge(
            "kiln_job_metrics_enabled",
            "1 when kiln_jobs / kiln_job_transitions are served; 0 when no database role that sees every "
            "workspace is configured (KILN_METRICS_DATABASE_URL), so job series are absent rather than zero",
            registry=self.registry,
        )

    def add_job_collector(self, engine: Engine) -> None:
        self.registry.register(JobMetricsCollector(engine))
        self.job_metrics_enabled.set(1)


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
            state = scope.get("state", {})
            aborted = bool(state.get(CLIENT_ABORTED_KEY))  # set by api.transport / the ClientDisconnect handler
            status = CLIENT_CLOSED_REQUEST if aborted else status_holder["status"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if aborted:
                self.metrics.client_aborts.labels(method, template).inc()
            # Routes run in a copy of this context (sync ones in a worker thread), so what they bind
            # never reaches this line; they leave the ids on request.state instead.
            job_id = {"job_id": state["job_id"]} if state.get("job_id") else {}
            self.log.info(
                "client_aborted" if aborted else "request",
                method=method,
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                workspace_id=state.get("workspace_id"),
                client=(scope.get("client") or ("", 0))[0],
                **job_id,
            )
            clear_context()

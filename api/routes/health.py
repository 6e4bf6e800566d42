"""Liveness, readiness and Prometheus metrics. None of these need a token or touch tenant data."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])

READINESS_PROBE_KEY = "health/readyz-probe"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive and serving (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is not ready"}})
def readyz(request: Request) -> JSONResponse:
    """The database answers and the object store accepts a write."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        store = request.app.state.store
        store.put_bytes(READINESS_PROBE_KEY, str(time.time()).encode(), content_type="text/plain")
        checks["object_store"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["object_store"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: request counts and latency, job transitions, queue depth."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

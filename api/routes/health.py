"""Liveness, readiness and Prometheus metrics. None of these need a token or touch tenant data."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from warehouse.api_reads import database_answers

router = APIRouter(tags=["health"])

READINESS_PROBE_KEY = "health/readyz-probe"
READINESS_WRITE_INTERVAL_S = 60.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is not ready"}})
def readyz(request: Request) -> JSONResponse:
    """The database answers and the object store is reachable (and accepted a write recently)."""
    checks: dict[str, str] = {}
    try:
        database_answers(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        _check_object_store(request.app.state)
        checks["object_store"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["object_store"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


def _check_object_store(state) -> None:
    """A write at most every ``READINESS_WRITE_INTERVAL_S``, a cheap existence check otherwise.

    The probe is unauthenticated and polled often: a write per call would let anyone turn it into
    object-store write traffic (and cost). Concurrent probes may both write; that is harmless.
    """
    store = state.store
    last_write = getattr(state, "readyz_last_write", None)
    now = time.monotonic()
    recent = last_write is not None and now - last_write < READINESS_WRITE_INTERVAL_S
    if recent and store.exists(READINESS_PROBE_KEY):
        return
    store.put_bytes(READINESS_PROBE_KEY, str(time.time()).encode(), content_type="text/plain")
    state.readyz_last_write = now


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: request counts and latency, job transitions, queue depth."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

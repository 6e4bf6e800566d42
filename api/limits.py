"""Quotas, rate limits and concurrency caps of the API (docs/architecture.md, "Quotas and rate limits").

Every refusal is 429 problem+json with a stable ``code`` and a ``Retry-After`` header (seconds):

- ``rate_limited``: requests per API token, a moving window per minute plus a one-second burst window
  (``limits``, in-memory storage). Checked in the auth dependency once the token is known, so
  unauthenticated requests and signed download links are never counted against a token. Kept in the
  memory of each API process: N replicas behind a load balancer allow N times the rate.
- ``too_many_uploads``: uploads in flight at once, per token and per workspace, counted per process;
  a slot is taken before the body is read and given back in a ``finally`` (errors, client disconnects).
- ``quota_exceeded``: upload bytes per workspace per UTC day, read from ``usage_counter`` before the
  body (with Content-Length when sent), enforced on the bytes as they arrive (the upload stops as soon
  as it would cross the quota, and nothing of it is kept) and added to ``usage_counter`` afterwards.
- ``too_many_jobs``: queued + running + retrying jobs of one kind per workspace, checked at every submit.

A setting of 0 turns its limit off.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
import anyio.to_thread
import structlog
from fastapi import Depends, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.types import Message, Receive

from api.connection_gate import reclaim_connection
from api.deps import CurrentPrincipal, DbSession, SettingsDep
from api.problems import ApiProblem
from api.security import Principal
from api.transport import streams_own_body
from resources.settings import Settings
from warehouse.db import utcnow
from warehouse.usage import UPLOAD_BYTES, active_jobs, add_usage, job_with_key_exists, next_day_start, usage_value

_log = structlog.get_logger("kiln.api")

# Nothing tells when another upload or job will finish: a short, fixed hint.
UPLOAD_RETRY_AFTER_SECONDS = 5
JOB_RETRY_AFTER_SECONDS = 30


def seconds_until_next_day(now: datetime | None = None) -> int:
    """Retry-After of a daily quota: whole seconds until the next UTC midnight (at least 1)."""
    now = now or utcnow()
    return max(1, math.ceil((next_day_start(now) - now).total_seconds()))


def _quota_problem(used: int, quota: int, detail: str) -> ApiProblem:
    return ApiProblem(429, "quota_exceeded", detail, title="Quota exceeded",
                      headers={"Retry-After": str(seconds_until_next_day())},
                      metric=UPLOAD_BYTES, used=used, limit=quota)


# ------------------------------------------------------------------------------- per-process state

class UploadSlots:
    """In-flight upload counters of one API process, per token and per workspace.

    A lock rather than asyncio primitives: acquiring is check-and-increment of several counters at
    once, and it must hold even when two event loops (tests, threads) share a process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[tuple[str, str]] = Counter()

    def try_acquire(self, wanted: list[tuple[tuple[str, str], int]]) -> tuple[str, str] | None:
        """Take one slot of every key, or none: answers the first key at its limit (None: acquired)."""
        with self._lock:
            for key, limit in wanted:
                if self._in_flight[key] >= limit:
                    return key
            for key, _ in wanted:
                self._in_flight[key] += 1
        return None

    def release(self, keys: list[tuple[str, str]]) -> None:
        with self._lock:
            for key in keys:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    def in_flight(self, key: tuple[str, str]) -> int:
        with self._lock:
            return self._in_flight[key]


_STATE_LOCK = threading.Lock()


def upload_slots(app: FastAPI) -> UploadSlots:
    """This app's (this process's) upload counters, made on first use."""
    with _STATE_LOCK:
        slots = getattr(app.state, "kiln_upload_slots", None)
        if slots is None:
            slots = app.state.kiln_upload_slots = UploadSlots()
        return slots


# ------------------------------------------------------------------------------- concurrent jobs

def ensure_job_capacity(session: Session, settings: Settings, workspace_id: uuid.UUID, kind: str,
                        idempotency_key: str | None = None) -> None:
    """429 ``too_many_jobs`` when the workspace already has the maximum of active jobs of ``kind``.

    A retry with an Idempotency-Key that already names a job passes: it answers that job, creating none.
    The count and the insert are not one atomic step, so concurrent submits may pass the cap by a few:
    it bounds abuse, it is not an exact reservation.
    """
    cap = settings.quota_concurrent_jobs_per_kind
    if not cap:
        return
    if idempotency_key is not None and job_with_key_exists(session, workspace_id, kind, idempotency_key):
        return
    active = active_jobs(session, workspace_id, kind)
    if active >= cap:
        raise ApiProblem(429, "too_many_jobs", f"This workspace already has {active} active {kind!r} jobs (the "
                         f"limit is {cap}); wait for some to finish, or cancel some, then retry.",
                         title="Too many active jobs", headers={"Retry-After": str(JOB_RETRY_AFTER_SECONDS)},
                         kind=kind, active=active, limit=cap)


# ------------------------------------------------------------------------------- uploads

class UploadMeter:
    """Counts the request body's bytes as the route reads them, and stops the body at the quota.

    It wraps the request's ``receive`` (Starlette keeps it as ``Request._receive``; every body reader,
    ``request.stream()`` and ``request.form()``, goes through it), so routes need no change of their
    own: the refusal surfaces where they read the body, like a too-large upload, and the object
    store's ``put_stream`` drops what it wrote.
    """

    def __init__(self, used: int = 0, quota: int = 0) -> None:
        self.received = 0
        self.used = used  # this workspace's bytes today, when the upload started
        self.quota = quota  # 0: no daily quota

    def install(self, request: Request) -> None:
        inner: Receive = request._receive  # noqa: SLF001 - see the class docstring

        async def receive() -> Message:
            message = await inner()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.quota and self.used + self.received > self.quota:
                    raise _quota_problem(self.used + self.received, self.quota,
                                         "This upload would pass the workspace's daily upload quota "
                                         f"({self.quota} bytes per UTC day); nothing of it was kept.")
            return message

        request._receive = receive  # noqa: SLF001


def _account(session: Session, workspace_id: uuid.UUID, amount: int, failed: bool) -> None:
    try:
        if failed:
            # The request's own work is rolled back anyway; the bytes it received still count.
            session.rollback()
            add_usage(session, workspace_id, UPLOAD_BYTES, amount)
            session.commit()
        else:
            with session.begin_nested():  # committed with the route's work; a failure here undoes only itself
                add_usage(session, workspace_id, UPLOAD_BYTES, amount)
    except Exception:  # noqa: BLE001 - bookkeeping never turns a finished upload into an error
        _log.warning("upload_usage_not_recorded", workspace_id=str(workspace_id), bytes=amount, exc_info=True)


def upload_limits(job_kind: str | None = None) -> Any:
    """The dependency every upload route takes (``Annotated[UploadMeter, ...]``).

    Before the body: a concurrent-upload slot (per token, per workspace), the daily upload quota
    (with Content-Length when sent) and, for a route that queues a job of ``job_kind``, the
    active-job cap (so a 2 GB upload is not streamed only to be refused). After the route: the bytes
    received are added to ``usage_counter`` (refused and duplicate uploads included: they crossed the
    network and were scanned), and the slot is given back.

    It uses the request's own session (one connection per request: a second one per upload could
    exhaust the pool under a burst) and exits before that session's own dependency does.
    """

    async def _guard(request: Request, principal: CurrentPrincipal, session: DbSession,
                     settings: SettingsDep,
                     _streams: Annotated[None, Depends(streams_own_body)]) -> AsyncIterator[UploadMeter]:
        slots = upload_slots(request.app)
        wanted = [(key, limit) for key, limit in (
            (("token", str(principal.token_id)), settings.max_concurrent_uploads_per_token),
            (("workspace", str(principal.workspace_id)), settings.max_concurrent_uploads_per_workspace),
        ) if limit > 0]
        full = slots.try_acquire(wanted)
        if full is not None:
            raise ApiProblem(429, "too_many_uploads", f"Too many uploads in progress for this {full[0]} (the limit is "
                             f"{dict(wanted)[full]} at once); wait for one to finish, then retry.",
                             title="Too many uploads", headers={"Retry-After": str(UPLOAD_RETRY_AFTER_SECONDS)})
        try:
            meter = await anyio.to_thread.run_sync(_precheck, request, session, settings, principal, job_kind)
            meter.install(request)
            failed = True
            try:
                yield meter
                failed = False
            finally:
                if meter.received:
                    with anyio.CancelScope(shield=True):  # a client that went away still used the bytes
                        await reclaim_connection(session)  # the route gave it back while the body streamed
                        await anyio.to_thread.run_sync(_account, session, principal.workspace_id,
                                                       meter.received, failed)
        finally:
            slots.release([key for key, _ in wanted])

    return Annotated[UploadMeter, Depends(_guard, scope="function")]


def _precheck(request: Request, session: Session, settings: Settings, principal: Principal,
              job_kind: str | None) -> UploadMeter:
    ws = principal.workspace_id
    if job_kind is not None:
        ensure_job_capacity(session, settings, ws, job_kind, request.headers.get("idempotency-key"))
    quota = settings.quota_upload_bytes_per_day
    if not quota:
        return UploadMeter()
    used = usage_value(session, ws, UPLOAD_BYTES)
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isdigit() else 0
    if declared > quota:  # waiting for tomorrow would not help: say so
        raise ApiProblem(413, "payload_too_large", f"This upload ({declared} bytes) is larger than the workspace's "
                         f"whole daily upload quota ({quota} bytes).")
    if used >= quota or used + declared > quota:
        raise _quota_problem(used, quota, f"This workspace has used {used} of its {quota} upload bytes today "
                             f"(UTC){f' and this upload declares {declared}' if declared else ''}; the quota "
                             "resets at midnight UTC.")
    return UploadMeter(used=used, quota=quota)


UploadLimits = upload_limits()

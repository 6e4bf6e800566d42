"""The queue in front of the API's PDF converter (POST /v1/templates/{id}/render with format=pdf).

One API process has one converter, which converts one document at a time (resources/converter.py).
Before this gate, each request waiting for it held a threadpool thread and its database connection:
45 concurrent PDF renders exhausted the pool (24 answered 500) and unrelated requests waited ~30 s.

Now a render is first *admitted*: at most one conversion plus ``KILN_RENDER_QUEUE_MAX`` waiting
renders per process; any more answers 503 ``converter_busy`` at once, with ``Retry-After``. An
admitted render waits for its turn on the event loop (an ``asyncio`` lock: no thread, no
connection; the route has given its connection back before it gets here) for at most
``KILN_RENDER_QUEUE_WAIT_SECONDS``, then 503 ``converter_busy`` too. Only the conversion itself
runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI

from api.problems import ApiProblem
from resources.settings import Settings

T = TypeVar("T")


class RenderGate:
    def __init__(self, queue_max: int, wait_seconds: float, retry_after_seconds: int) -> None:
        self.queue_max = queue_max
        self.wait_seconds = wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.admitted = 0  # converting + waiting; only touched on the event loop, so no lock is needed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    def _busy(self, detail: str) -> ApiProblem:
        return ApiProblem(503, "converter_busy", detail, headers={"Retry-After": str(self.retry_after_seconds)},
                          retry_after_seconds=self.retry_after_seconds)

    def _converter_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a new event loop (tests start several)
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """A place in the queue, or 503 ``converter_busy`` now when the queue is full."""
        if self.admitted >= self.queue_max + 1:
            raise self._busy(f"The PDF converter is busy ({self.queue_max} renders already waiting); "
                             f"retry in {self.retry_after_seconds} s, or ask for format=docx.")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The converter to oneself, waited for on the event loop for at most ``wait_seconds``."""
        lock = self._converter_lock()
        try:
            async with asyncio.timeout(self.wait_seconds):
                await lock.acquire()  # cancel-safe: a cancelled waiter never holds the lock
        except TimeoutError:
            raise self._busy(f"The PDF converter stayed busy for {self.wait_seconds:g} s; retry in "
                             f"{self.retry_after_seconds} s.") from None
        try:
            yield
        finally:
            lock.release()


def render_gate(app: FastAPI) -> RenderGate:
    """The app's gate, made from its settings on first use."""
    gate = getattr(app.state, "render_gate", None)
    if gate is None:
        settings: Settings = app.state.settings
        gate = app.state.render_gate = RenderGate(
            settings.render_queue_max, settings.render_queue_wait_seconds, settings.render_retry_after_seconds)
    return gate


async def run_fill(app: FastAPI, fill: Callable[[], T]) -> T:
    """Run one single-fill (Jinja render of a template) in a worker thread, at most
    ``KILN_RENDER_FILL_CONCURRENCY`` at once per process: a burst of long fills waits here on the event
    loop instead of taking every thread of the pool the rest of the API needs. Beyond
    ``KILN_RENDER_QUEUE_MAX`` waiting fills: 503 ``renderer_busy`` with ``Retry-After``."""
    settings: Settings = app.state.settings
    loop = asyncio.get_running_loop()
    current = getattr(app.state, "fill_limiter", None)
    if current is None or current[0] is not loop:  # a limiter belongs to one event loop (tests start several)
        current = app.state.fill_limiter = (loop, anyio.CapacityLimiter(settings.render_fill_concurrency))
    limiter: anyio.CapacityLimiter = current[1]
    if limiter.available_tokens == 0 and limiter.statistics().tasks_waiting >= settings.render_queue_max:
        retry = settings.render_retry_after_seconds
        raise ApiProblem(503, "renderer_busy", f"Too many documents are being filled right now; retry in {retry} s, "
                         "or use a bulk run for many documents.", headers={"Retry-After": str(retry)},
                         retry_after_seconds=retry)
    return await anyio.to_thread.run_sync(fill, limiter=limiter)

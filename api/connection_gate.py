"""Admission to the database pool, decided on the event loop, so threads never wait on the pool.

Why: the API's sync work runs on one shared pool of worker threads (anyio's, 40 by default), and
every request holds a pooled connection from its token check until its session closes, across
thread hops (a sync dependency, then the route, or an upload's bookkeeping). If every worker thread
waits for a connection while every connection belongs to a request that needs a thread for its
next step, nothing moves until the pool's timeout answers 500s: 60 stalled uploads did exactly
that on SQLite's 15-connection pool.

The cure is to wait for a connection *before* taking a thread, as a coroutine:

- ``ConnectionSlot``: a request acquires one slot of a semaphore sized to the engine's pool
  (``pool_size + max_overflow``) before its session first touches the database, and gives it back
  when the session closes. Requests beyond the pool queue on the event loop (a coroutine each),
  for at most the pool's own timeout, then answer 503 ``database_busy``.
- ``release_connection`` / ``reclaim_connection``: an upload gives its connection *and* its slot
  back while it streams, and waits for a slot again before the session is used again. A session
  that is used without its slot raises at once (``SlotNotHeld``): a route that forgot to reclaim
  fails in every test, not under load.
- ``run_short_transaction``: one-shot transactions outside a request's session (the body guard's
  token check, the ``last_used_at`` stamp) run on their own small thread limiter. They hold a
  connection only while they run and wait for nothing else, so they can delay a slot holder's
  checkout briefly but never join a cycle, and a burst of them cannot occupy the shared threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from api.problems import ApiProblem

T = TypeVar("T")

SHORT_TRANSACTION_THREADS = 4
_SLOT_KEY = "kiln.connection_slot"


class SlotNotHeld(RuntimeError):
    """A request's session was used after ``release_connection`` without ``reclaim_connection``."""


def pool_capacity(engine: Engine) -> int | None:
    """How many connections the engine's pool can hand out at once, or None when it never blocks."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    if not callable(size) or overflow is None or overflow < 0:
        return None  # NullPool, StaticPool, SingletonThreadPool, unlimited overflow: checkouts never wait
    return size() + overflow


def _pool_timeout(engine: Engine) -> float:
    timeout = getattr(engine.pool, "_timeout", None)
    return float(timeout) if timeout else 30.0


class _Gate:
    def __init__(self, engine: Engine) -> None:
        capacity = pool_capacity(engine)
        self.semaphore = anyio.Semaphore(capacity) if capacity else None
        self.timeout = _pool_timeout(engine)


def _gate(app: Any, engine: Engine) -> _Gate:
    # One gate per engine (tests swap app.state.engine for a smaller pool).
    gates: dict[int, tuple[Engine, _Gate]] | None = getattr(app.state, "connection_gates", None)
    if gates is None:
        gates = app.state.connection_gates = {}
    entry = gates.get(id(engine))
    if entry is None or entry[0] is not engine:
        entry = gates[id(engine)] = (engine, _Gate(engine))
    return entry[1]


def _short_limiter(app: Any) -> anyio.CapacityLimiter:
    limiter = getattr(app.state, "short_transaction_limiter", None)
    if limiter is None:  # made lazily: a limiter belongs to a running event loop
        limiter = app.state.short_transaction_limiter = anyio.CapacityLimiter(SHORT_TRANSACTION_THREADS)
    return limiter


async def run_short_transaction(app: Any, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` (one short transaction of its own) on the short-transaction threads."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_short_limiter(app))


class ConnectionSlot:
    """One request's admission to the pool (see the module docstring)."""

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate
        self.held = False

    async def acquire(self) -> None:
        if self.held or self._gate.semaphore is None:
            self.held = True
            return
        with anyio.move_on_after(self._gate.timeout) as waited:
            await self._gate.semaphore.acquire()
        if waited.cancelled_caught:
            raise ApiProblem(503, "database_busy", "Every database connection is in use; retry in a moment.",
                             headers={"Retry-After": "1"})
        self.held = True

    def release(self) -> None:
        """Give the slot back; callable from the event loop or from a worker thread."""
        if not self.held:
            return
        self.held = False
        if self._gate.semaphore is None:
            return
        try:
            anyio.from_thread.run_sync(self._gate.semaphore.release)  # from a worker thread
        except RuntimeError:
            self._gate.semaphore.release()  # already on the event loop


async def connection_slot(app: Any, engine: Engine) -> AsyncIterator[ConnectionSlot]:
    """Hold a slot for the duration of the ``async with``-style generator (used as a dependency)."""
    slot = ConnectionSlot(_gate(app, engine))
    await slot.acquire()
    try:
        yield slot
    finally:
        with anyio.CancelScope(shield=True):
            slot.release()


def bind_slot(session: Session, slot: ConnectionSlot) -> None:
    """Make ``session`` refuse to start a transaction while ``slot`` is not held."""
    session.info[_SLOT_KEY] = slot


@event.listens_for(Session, "after_begin")
def _refuse_without_slot(session: Session, _transaction, _connection) -> None:
    slot = session.info.get(_SLOT_KEY)
    if slot is not None and not slot.held:
        raise SlotNotHeld("the request's session was used after release_connection(); "
                          "await reclaim_connection(session) first")


def release_connection(session: Session) -> None:
    """End the request's transaction early and give its connection (and its slot) back.

    Upload routes call this before streaming the body: a multi-gigabyte upload must not hold a
    database connection (and, on PostgreSQL, an open transaction) for minutes. Before the session
    is used again, ``await reclaim_connection(session)``; it stays scoped to the caller's workspace.
    """
    session.commit()
    slot = session.info.get(_SLOT_KEY)
    if slot is not None:
        slot.release()


async def reclaim_connection(session: Session) -> None:
    """Wait (as a coroutine) for a slot again after ``release_connection``."""
    slot = session.info.get(_SLOT_KEY)
    if slot is not None:
        await slot.acquire()


def reclaim_connection_in_thread(session: Session) -> None:
    """``reclaim_connection`` for a sync route (it runs in a worker thread): waits on the event loop's gate."""
    slot = session.info.get(_SLOT_KEY)
    if slot is not None and not slot.held:
        anyio.from_thread.run(slot.acquire)

"""Requests wait for a database connection on the event loop, never in a worker thread (api/connection_gate.py).

With fewer worker threads than concurrent requests and a pool smaller than both, waiting for a connection in a
thread deadlocks: every thread waits on the pool while every connection belongs to a request that needs a thread
for its next step. These tests run a real server with 4 worker threads and a 2-connection pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select

from api.connection_gate import SlotNotHeld, connection_slot, release_connection, reclaim_connection
from tests.support.api import api  # noqa: F401 - fixture
from tests.support.server import serve
from warehouse.db import make_engine, session_factory
from warehouse.models import Job

WORKER_THREADS = 4


@pytest.fixture
def small_server(api) -> Iterator[tuple[object, str]]:
    api.app.state.engine = make_engine(api.settings.resolved_database_url, pool_size=2, max_overflow=0,
                                       pool_timeout=20)

    async def few_threads(scope, receive, send):
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        await api.app(scope, receive, send)

    try:
        with serve(few_threads) as base_url:
            yield api, base_url
    finally:
        api.app.state.engine.dispose()


def test_a_burst_larger_than_threads_and_pool_is_served_not_deadlocked(small_server):
    api, base_url = small_server
    tenants = [api.tenant() for _ in range(6)]  # distinct tokens: each request also stamps last_used_at

    def call(i: int) -> int:
        t = tenants[i % len(tenants)]
        with httpx.Client(base_url=base_url, timeout=15) as client:
            if i % 3 == 0:  # a body: the guard's own token check, then the route's
                return client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": str(i)}},
                                   headers=t.headers).status_code
            return client.get("/v1/jobs", headers=t.headers).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(call, range(60)))
    elapsed = time.monotonic() - started
    assert sorted(set(statuses)) == [200, 202], statuses
    assert statuses.count(202) == 20
    assert elapsed < 10, elapsed  # a deadlock would sit until the 20 s pool timeout, then fail


def test_a_session_used_after_release_without_reclaim_refuses(api):
    engine = api.app.state.engine
    t = api.tenant()

    async def scenario() -> None:
        async for slot in connection_slot(api.app, engine):
            session = session_factory(engine)()
            from api.connection_gate import bind_slot

            bind_slot(session, slot)
            session.scalar(select(Job.id).where(Job.workspace_id == t.workspace_id))
            release_connection(session)
            assert not slot.held
            with pytest.raises(SlotNotHeld):
                session.scalar(select(Job.id).where(Job.workspace_id == t.workspace_id))
            session.rollback()
            await reclaim_connection(session)
            assert slot.held
            assert session.scalar(select(Job.id).where(Job.workspace_id == t.workspace_id)) is None
            session.close()

    anyio.run(scenario)

"""SQLite under concurrent writes: a busy timeout, and 503 database_busy (Retry-After) when it runs out."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.problems import is_database_busy
from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import make_engine


# SQLite's database-level write lock is the subject; PostgreSQL locks rows and never says "database is locked".
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def sqlite_api(api):
    return api


def _db_path(api) -> str:
    return api.settings.resolved_database_url.removeprefix("sqlite:///")


def test_engine_waits_for_the_configured_busy_timeout(sqlite_api):
    engine = make_engine(sqlite_api.settings.resolved_database_url, sqlite_busy_timeout=2.5)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
    engine.dispose()
    assert sqlite_api.settings.sqlite_busy_timeout_seconds == 5.0  # the documented default
    with sqlite_api.app.state.engine.connect() as conn:  # the API's engine follows the setting
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_a_write_blocked_past_the_busy_timeout_is_503_database_busy(sqlite_api):
    api = sqlite_api
    t = api.tenant()
    api.app.state.engine.dispose()
    api.app.state.engine = make_engine(api.settings.resolved_database_url, sqlite_busy_timeout=0.3)
    holder = sqlite3.connect(_db_path(api), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        r = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "hi"}}, headers=t.headers)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_busy" and r.headers["retry-after"] == "1"
        assert r.headers["content-type"].startswith("application/problem+json")
    finally:
        holder.rollback()
        holder.close()
    r = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "hi"}}, headers=t.headers)
    assert r.status_code == 202, r.text


def test_concurrent_writes_never_answer_500(sqlite_api):
    api = sqlite_api
    tenants = [api.tenant() for _ in range(4)]

    def submit(i: int) -> tuple[int, str]:
        t = tenants[i % len(tenants)]
        r = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": f"m{i}"}},
                            headers={**t.headers, "Idempotency-Key": f"k{i}"})
        return r.status_code, r.headers.get("retry-after", "")

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(submit, range(48)))
    assert all(status == 202 or (status == 503 and retry == "1") for status, retry in results), results
    assert sum(status == 202 for status, _ in results) >= 40  # the busy timeout absorbs ordinary contention


def test_is_database_busy_recognises_only_lock_errors(db_url):
    assert is_database_busy(sqlite3.OperationalError("database is locked"))
    assert not is_database_busy(sqlite3.OperationalError("no such table: job"))

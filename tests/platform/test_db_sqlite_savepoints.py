"""A rollback undoes what a released savepoint wrote, on SQLite as on PostgreSQL.

pysqlite's legacy transaction control used to let SQLite's SAVEPOINT start (and RELEASE commit) a
transaction of its own, so `submit_job`'s idempotency savepoint survived the request's rollback.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from warehouse.db import session_factory
from warehouse.models import Workspace


def _count(engine, ws_id: uuid.UUID) -> int:
    with session_factory(engine)() as s:
        return s.scalar(select(func.count()).select_from(Workspace).where(Workspace.id == ws_id))


def test_rollback_undoes_a_released_savepoint_that_opened_the_transaction(engine):
    ws_id = uuid.uuid4()
    with session_factory(engine)() as s:
        s.begin()
        with s.begin_nested():  # the transaction's first statement is the SAVEPOINT
            s.add(Workspace(id=ws_id, name="sp", slug=f"sp-{ws_id.hex[:12]}"))
        s.rollback()
    assert _count(engine, ws_id) == 0


def test_commit_keeps_a_released_savepoint_and_work_after_it(engine):
    ws_id, other_id = uuid.uuid4(), uuid.uuid4()
    with session_factory(engine)() as s:
        s.begin()
        with s.begin_nested():
            s.add(Workspace(id=ws_id, name="sp", slug=f"sp-{ws_id.hex[:12]}"))
        s.add(Workspace(id=other_id, name="after", slug=f"af-{other_id.hex[:12]}"))
        s.commit()
    assert _count(engine, ws_id) == 1 and _count(engine, other_id) == 1


def test_a_rolled_back_savepoint_leaves_the_enclosing_work(engine):
    ws_id, inner_id = uuid.uuid4(), uuid.uuid4()
    with session_factory(engine)() as s:
        s.begin()
        s.add(Workspace(id=ws_id, name="outer", slug=f"ou-{ws_id.hex[:12]}"))
        s.flush()
        nested = s.begin_nested()
        s.add(Workspace(id=inner_id, name="inner", slug=f"in-{inner_id.hex[:12]}"))
        s.flush()
        nested.rollback()
        s.commit()
    assert _count(engine, ws_id) == 1 and _count(engine, inner_id) == 0

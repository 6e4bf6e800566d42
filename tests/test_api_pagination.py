"""The shared keyset pagination helpers (api/pagination.py) on real databases.

Every list route pages through them; these tests pin the edge cases a route test rarely reaches:
rows that share a ``created_at`` (the id breaks the tie), a page boundary inside such a tie, and
cursors that decode but carry the wrong kind of value.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from api.pagination import (
    Page,
    ascending_int_page,
    decode_time_id_cursor,
    encode_cursor,
    newest_first_page,
)
from api.problems import ApiProblem
from warehouse import jobs as job_machine
from warehouse.db import system_session
from warehouse.models import Job, JobEvent


def _jobs_with_tied_times(engine, workspace_id, count: int) -> list[Job]:
    same_time = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with system_session(engine) as s:
        for i in range(count):
            job = job_machine.submit_job(s, workspace_id=workspace_id, kind="selftest", payload={"i": i}).job
            job.created_at = same_time if i < count - 1 else datetime(2024, 5, 2, tzinfo=UTC)
        s.flush()
        return list(s.scalars(select(Job).where(Job.workspace_id == workspace_id)))


def test_newest_first_pages_cover_every_row_once_in_order_across_ties(engine, make_tenant):
    tenant = make_tenant()
    rows = _jobs_with_tied_times(engine, tenant.workspace_id, 7)
    expected = [j.id for j in sorted(rows, key=lambda j: (j.created_at.replace(tzinfo=UTC), j.id), reverse=True)]
    seen, cursor, pages = [], None, 0
    with system_session(engine) as s:
        query = select(Job).where(Job.workspace_id == tenant.workspace_id)
        while True:
            page, cursor = newest_first_page(s, query, Job, limit=3, cursor=cursor)
            seen += [j.id for j in page]
            pages += 1
            if cursor is None:
                break
            assert decode_time_id_cursor(cursor)[1] == page[-1].id
    assert seen == expected and pages == 3


def test_newest_first_last_full_page_has_no_cursor(engine, make_tenant):
    tenant = make_tenant()
    _jobs_with_tied_times(engine, tenant.workspace_id, 4)
    with system_session(engine) as s:
        page, cursor = newest_first_page(s, select(Job).where(Job.workspace_id == tenant.workspace_id), Job,
                                         limit=4, cursor=None)
    assert len(page) == 4 and cursor is None


def test_ascending_int_page_walks_the_column_and_names_the_cursor_field(engine, make_tenant):
    tenant = make_tenant()
    with system_session(engine) as s:
        job = job_machine.submit_job(s, workspace_id=tenant.workspace_id, kind="selftest", payload={}).job
        job_machine.claim_job(s, job.id, run_id="run-1")
        job_machine.set_progress(s, job.id, 50)
        query = select(JobEvent).where(JobEvent.job_id == job.id)
        all_seqs = [e.seq for e in s.scalars(query.order_by(JobEvent.seq))]
        first, cursor = ascending_int_page(s, query, JobEvent.seq, cursor_field="n", limit=1, cursor=None)
        rest, end = ascending_int_page(s, query, JobEvent.seq, cursor_field="n", limit=100, cursor=cursor)
    assert len(all_seqs) >= 2
    assert cursor == encode_cursor(n=all_seqs[0]) and end is None
    assert [e.seq for e in first + rest] == all_seqs


@pytest.mark.parametrize("cursor", ["not-a-cursor", encode_cursor(n="3"), encode_cursor(other=3)])
def test_ascending_int_page_refuses_foreign_cursors(engine, cursor):
    with system_session(engine) as s, pytest.raises(ApiProblem) as refused:
        ascending_int_page(s, select(JobEvent), JobEvent.seq, cursor_field="n", limit=10, cursor=cursor)
    assert (refused.value.status, refused.value.code) == (422, "invalid_cursor")


def test_page_subclasses_keep_their_own_schema_name():
    class ThingPage(Page[int]):
        pass

    schema = ThingPage.model_json_schema()
    assert schema["title"] == "ThingPage"
    assert set(schema["properties"]) == {"items", "next_cursor"}
    assert ThingPage(items=[1, 2]).model_dump() == {"items": [1, 2], "next_cursor": None}

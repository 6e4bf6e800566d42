"""The shared keyset pagination helpers (api/pagination.py) on real databases.

Every list route pages through them; these tests pin the edge cases a route test rarely reaches:
rows that share a ``created_at`` (the id breaks the tie), a page boundary inside such a tie, and
cursors that decode but carry the wrong kind of value or a value no database column can hold.
"""

from __future__ import annotations

import base64
import json
import uuid
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
from tests.support.api import api  # noqa: F401 - fixture
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


@pytest.mark.parametrize("cursor", [
    "not-a-cursor", encode_cursor(n="3"), encode_cursor(other=3), encode_cursor(n=True), encode_cursor(n=1.5),
    encode_cursor(n=-1), encode_cursor(n=2**31), encode_cursor(n=2**63), encode_cursor(n=10**30),
    encode_cursor(n=-(10**30)),
])
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


def test_ascending_int_page_takes_the_largest_key_its_column_holds(engine, make_tenant):
    """The bound is the column's range (``seq`` is a 32-bit INTEGER), not something smaller."""
    tenant = make_tenant()
    with system_session(engine) as s:
        job = job_machine.submit_job(s, workspace_id=tenant.workspace_id, kind="selftest", payload={}).job
        query = select(JobEvent).where(JobEvent.job_id == job.id)
        page, cursor = ascending_int_page(s, query, JobEvent.seq, cursor_field="n", limit=10,
                                          cursor=encode_cursor(n=2**31 - 1))
    assert page == [] and cursor is None


def _raw_cursor(value) -> str:
    """A cursor built by hand, as a client tampering with one would."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# Each decodes to the right fields, but no database can compare with the value: a year-1 or
# year-9999 time whose offset pushes it out of range in UTC, ints beyond 64 bits, wrong types.
CRAFTED_CURSORS = {
    "year 1 with an offset": _raw_cursor({"t": "0001-01-01T00:00:00+01:00", "i": str(uuid.uuid4())}),
    "year 9999 with an offset": _raw_cursor({"t": "9999-12-31T23:59:59-01:00", "i": str(uuid.uuid4())}),
    "numbers for time and id": _raw_cursor({"t": 5, "i": 3}),
    "seq beyond 64 bits": _raw_cursor({"seq": 10**30}),
    "negative seq beyond 64 bits": _raw_cursor({"seq": -(10**30)}),
    "fractional seq": _raw_cursor({"seq": 1.5}),
    "a list": _raw_cursor([1]),
}


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS.values(), ids=CRAFTED_CURSORS.keys())
def test_every_list_route_answers_a_crafted_cursor_with_invalid_cursor(api, cursor):
    owner = api.tenant()
    job_id = api.job(owner)
    for path in ("/v1/jobs", "/v1/tokens", "/v1/workspace/members", f"/v1/jobs/{job_id}/events",
                 f"/v1/jobs/{job_id}/artifacts"):
        r = api.client.get(path, params={"cursor": cursor}, headers=owner.headers)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "invalid_cursor", path

"""Races against the job state machine on real databases, with real threads and connections.

A barrier releases every thread at once so the statements really overlap; the assertions are
about outcomes (one job, one `running` transition), never about timing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select

from warehouse import jobs
from warehouse.db import make_engine, system_session, tenant_session
from warehouse.models import AppUser, Job, JobEvent, Membership, Workspace

T = TypeVar("T")

SUBMITTERS = 50
# A kind of our own: the PostgreSQL database is shared by the session, and other tests list
# due jobs of the real kinds.
RACE_KIND = "race-probe"


def _race(callers: int, action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` in ``callers`` threads released together; return results in order."""
    barrier = threading.Barrier(callers)

    def run(i: int) -> T:
        barrier.wait()
        return action(i)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(run, range(callers)))


def _new_workspace(engine: Engine) -> uuid.UUID:
    ws_id, user_id = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=ws_id, name="race", slug=f"race-{ws_id.hex[:12]}"))
        s.add(AppUser(id=user_id, email=f"{user_id.hex[:12]}@example.test"))
        s.flush()
        s.add(Membership(workspace_id=ws_id, user_id=user_id, role="owner"))
    return ws_id


@pytest.fixture
def pg_engines(postgres_database) -> Iterator[tuple[Engine, Engine]]:
    # One connection per submitter, so all 50 transactions are in flight together.
    app = make_engine(postgres_database.app_url, pool_size=SUBMITTERS, max_overflow=0)
    worker = make_engine(postgres_database.worker_url, pool_size=4, max_overflow=0)
    yield app, worker
    app.dispose()
    worker.dispose()


@pytest.mark.postgres
def test_concurrent_submits_with_one_idempotency_key_create_one_job(pg_engines):
    app, worker = pg_engines
    ws_id = _new_workspace(worker)

    def submit(_: int) -> tuple[uuid.UUID, bool]:
        with tenant_session(app, ws_id) as s:
            result = jobs.submit_job(
                s, workspace_id=ws_id, kind=RACE_KIND, payload={"video": "v1"}, idempotency_key="same-key"
            )
            return result.job.id, result.created

    results = _race(SUBMITTERS, submit)

    job_ids = {job_id for job_id, _ in results}
    assert len(job_ids) == 1, "every caller gets the one job"
    assert sum(created for _, created in results) == 1, "exactly one caller created it"
    with system_session(worker) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.workspace_id == ws_id)) == 1
        submitted = s.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_ids.pop()))
        assert submitted == 1, "only the winner appended its 'submitted' event"


def _claim_race(engine: Engine, ws_id: uuid.UUID, workers: int = 2) -> tuple[list[bool], list[tuple[str, str | None]]]:
    with system_session(engine) as s:
        job_id = jobs.submit_job(s, workspace_id=ws_id, kind=RACE_KIND).job.id

    def claim(i: int) -> bool:
        with system_session(engine) as s:
            return jobs.claim_job(s, job_id, run_id=f"run-{i}")

    outcomes = _race(workers, claim)
    with system_session(engine) as s:
        events = s.execute(
            select(JobEvent.event, JobEvent.to_status).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
        ).all()
        winner = s.scalar(select(Job.dagster_run_id).where(Job.id == job_id))
    assert winner == f"run-{outcomes.index(True)}", "the job belongs to the run told it won"
    return outcomes, [tuple(e) for e in events]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def worker_engine(request, tmp_path) -> Iterator[Engine]:
    url = request.getfixturevalue("sqlite_url") if request.param == "sqlite" else request.getfixturevalue("postgres_database").worker_url
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("round_", range(5))
def test_two_workers_racing_to_claim_one_job_produce_one_running_transition(worker_engine, round_):
    ws_id = _new_workspace(worker_engine)
    outcomes, events = _claim_race(worker_engine, ws_id)
    assert sorted(outcomes) == [False, True], "exactly one worker wins the claim"
    assert events == [("submitted", "queued"), ("started", "running")]


def test_claim_racing_cancel_leaves_a_consistent_history(worker_engine):
    """Whichever of claim and cancel goes first, the history is a legal path and the job ends
    canceled: a queued job and a running one are both cancelable, so the cancel always succeeds."""
    ws_id = _new_workspace(worker_engine)
    with system_session(worker_engine) as s:
        job_id = jobs.submit_job(s, workspace_id=ws_id, kind=RACE_KIND).job.id

    def act(i: int) -> bool:
        with system_session(worker_engine) as s:
            return jobs.claim_job(s, job_id, run_id="run") if i == 0 else jobs.cancel_job(s, job_id)

    claimed, canceled = _race(2, act)
    with system_session(worker_engine) as s:
        events = s.execute(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)).scalars().all()
        status = s.scalar(select(Job.status).where(Job.id == job_id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all((e.from_status, e.to_status) in jobs.ALLOWED_TRANSITIONS for e in events[1:])
    assert canceled is True and status == "canceled" and events[-1].to_status == "canceled"
    # The claim either came first (then the cancel stopped a running job) or found it canceled.
    expected = ["queued", "running", "canceled"] if claimed else ["queued", "canceled"]
    assert [e.to_status for e in events] == expected


def test_a_claim_between_cancels_read_and_its_update_still_ends_canceled(worker_engine, monkeypatch):
    """The worst interleaving, replayed exactly: cancel reads ``queued``, a worker claims the job and
    commits, then cancel's UPDATE (expecting ``queued``) matches nothing. Cancel must read again and
    stop the now running job, not report that the job cannot be canceled."""
    ws_id = _new_workspace(worker_engine)
    with system_session(worker_engine) as s:
        job_id = jobs.submit_job(s, workspace_id=ws_id, kind=RACE_KIND).job.id
    real_transition, claimed = jobs._transition, []

    def claim_first(session, jid, **kw):
        if kw["to_status"] == "canceled" and not claimed:
            with system_session(worker_engine) as other:
                claimed.append(jobs.claim_job(other, jid, run_id="run-racer"))
        return real_transition(session, jid, **kw)

    monkeypatch.setattr(jobs, "_transition", claim_first)
    with system_session(worker_engine) as s:
        assert jobs.cancel_job(s, job_id, reason="stop") is True
    assert claimed == [True]
    with system_session(worker_engine) as s:
        history = s.execute(select(JobEvent.from_status, JobEvent.to_status).where(JobEvent.job_id == job_id)
                            .order_by(JobEvent.seq)).all()
        assert s.scalar(select(Job.status).where(Job.id == job_id)) == "canceled"
    assert [tuple(h) for h in history] == [(None, "queued"), ("queued", "running"), ("running", "canceled")]


def test_cancel_of_a_finished_job_is_refused(worker_engine):
    ws_id = _new_workspace(worker_engine)
    with system_session(worker_engine) as s:
        job_id = jobs.submit_job(s, workspace_id=ws_id, kind=RACE_KIND).job.id
        assert jobs.cancel_job(s, job_id) is True
        assert jobs.cancel_job(s, job_id) is False
        assert jobs.cancel_job(s, uuid.uuid4()) is False

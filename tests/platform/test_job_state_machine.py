from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from pipelines.errors import IdempotencyConflict
from warehouse import jobs
from warehouse.db import system_session, utcnow
from warehouse.models import Job, JobEvent


def _events(engine, job_id):
    with system_session(engine) as s:
        return s.execute(select(JobEvent.seq, JobEvent.event, JobEvent.to_status).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)).all()


def test_happy_path_appends_one_event_per_transition(engine, make_tenant):
    t = make_tenant()
    with system_session(engine) as s:
        job = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", payload={"x": 1}).job
    with system_session(engine) as s:
        assert jobs.claim_job(s, job.id, run_id="run-1")
        assert jobs.set_progress(s, job.id, 40)
        assert not jobs.set_progress(s, job.id, 30), "progress never moves backwards"
        assert jobs.succeed_job(s, job.id, run_id="run-1")
    with system_session(engine) as s:
        row = s.get(Job, job.id)
        assert (row.status, row.attempt, row.progress, row.dagster_run_id) == ("succeeded", 1, 100, "run-1")
    assert [e.to_status for e in _events(engine, job.id)] == ["queued", "running", "succeeded"]
    assert [e.seq for e in _events(engine, job.id)] == [1, 2, 3]


def test_lost_race_changes_nothing(engine, make_tenant):
    t = make_tenant()
    with system_session(engine) as s:
        job = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest").job
    with system_session(engine) as s:
        assert jobs.claim_job(s, job.id, run_id="a")
        assert jobs.claim_job(s, job.id, run_id="a"), "the same run re-claiming is idempotent"
        assert not jobs.claim_job(s, job.id, run_id="b"), "another run loses the race"
        assert not jobs.succeed_job(s, job.id, run_id="b")
    assert len(_events(engine, job.id)) == 2


def test_retryable_failure_backs_off_then_fails_when_attempts_run_out(engine, make_tenant):
    t = make_tenant()
    policy = jobs.RetryPolicy(base_seconds=10, max_seconds=15)
    with system_session(engine) as s:
        job = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", max_attempts=2).job
    with system_session(engine) as s:
        jobs.claim_job(s, job.id, run_id="r1")
        before = utcnow()
        assert jobs.fail_job(s, job.id, error_code="timeout", message="slow", retryable=True, policy=policy) == "retrying"
        row = s.get(Job, job.id)
        s.refresh(row)
        assert before + timedelta(seconds=5) <= row.next_attempt_at.replace(tzinfo=before.tzinfo) <= before + timedelta(seconds=11)
        assert jobs.due_jobs(s, kind="selftest") == [], "backoff not due yet"
        assert jobs.requeue_due(s, now=utcnow() + timedelta(seconds=20)) == 1
        assert [j.id for j in jobs.due_jobs(s, kind="selftest", now=utcnow() + timedelta(seconds=20))] == [job.id]
        assert jobs.claim_job(s, job.id, run_id="r2")
        assert jobs.fail_job(s, job.id, error_code="timeout", message="slow again", retryable=True) == "failed"
        s.refresh(row)
        assert (row.status, row.attempt, row.error_code) == ("failed", 2, "timeout")


def test_permanent_failure_fails_at_once(engine, make_tenant):
    t = make_tenant()
    with system_session(engine) as s:
        job = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", max_attempts=5).job
        jobs.claim_job(s, job.id, run_id="r1")
        assert jobs.fail_job(s, job.id, error_code="invalid_media", message="not a video", retryable=False) == "failed"


def test_cancel_from_active_states_only(engine, make_tenant):
    t = make_tenant()
    with system_session(engine) as s:
        queued = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest").job
        done = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest").job
        jobs.claim_job(s, done.id, run_id="r")
        jobs.succeed_job(s, done.id)
        assert jobs.cancel_job(s, queued.id)
        assert not jobs.cancel_job(s, done.id)
        assert not jobs.claim_job(s, queued.id, run_id="late"), "a canceled job never starts"


def test_idempotency_key_same_request_returns_first_job_and_different_request_conflicts(engine, make_tenant):
    t = make_tenant()
    with system_session(engine) as s:
        first = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", payload={"a": 1}, idempotency_key="k1")
        again = jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", payload={"a": 1}, idempotency_key="k1")
        assert first.created and not again.created and again.job.id == first.job.id
        with pytest.raises(IdempotencyConflict):
            jobs.submit_job(s, workspace_id=t.workspace_id, kind="selftest", payload={"a": 2}, idempotency_key="k1")
        other_kind = jobs.submit_job(s, workspace_id=t.workspace_id, kind="other", payload={"a": 2}, idempotency_key="k1")
        assert other_kind.created


def test_backoff_grows_exponentially_with_jitter_and_cap():
    policy = jobs.RetryPolicy(base_seconds=2, max_seconds=30)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]:
        values = [policy.backoff_seconds(attempt, rng) for _ in range(50)]
        assert all(ceiling * 0.5 <= v <= ceiling for v in values)
        assert len(set(values)) > 1, "jitter spreads retries"

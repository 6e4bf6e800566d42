"""Property-based test of the job state machine: random operation sequences against a model.

Hypothesis drives claim / succeed / fail / requeue / cancel / progress in any order (with stale
run ids and stale attempts, as at-least-once sensors produce) against one job, and checks after
every step that the database agrees with a small reference model and that the invariants hold:
every event is a legal edge, event seqs are 1..n without gaps, terminal states never change,
attempt never exceeds max_attempts, progress never goes backwards while running.

One migrated SQLite database serves every example; each example works on a new job of its own
kind, so examples cannot see each other.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from warehouse import jobs
from warehouse.db import make_engine, system_session, utcnow
from warehouse.migrate import upgrade
from warehouse.models import AppUser, Job, JobEvent, Membership, Workspace

RUN_IDS = st.sampled_from(["run-a", "run-b", "run-c"])
FAST_RETRY = jobs.RetryPolicy(base_seconds=1, max_seconds=2)


@dataclass
class Model:
    """What the job should look like after the operations so far."""

    status: str = "queued"
    attempt: int = 0
    max_attempts: int = 3
    run_id: str | None = None
    progress: int = 0
    events: int = 1  # 'submitted'


class JobMachine(RuleBasedStateMachine):
    engine = None  # set by the test
    workspace_id: uuid.UUID

    @initialize(max_attempts=st.sampled_from([3, 2, 4, 1]))
    def submit(self, max_attempts: int) -> None:
        self.kind = f"prop-{uuid.uuid4().hex[:12]}"
        with system_session(self.engine) as s:
            self.job_id = jobs.submit_job(
                s, workspace_id=self.workspace_id, kind=self.kind, max_attempts=max_attempts
            ).job.id
        self.model = Model(max_attempts=max_attempts)
        self.seen_terminal: str | None = None
        self.last_running_progress: int | None = None

    # --- operations -------------------------------------------------------------------------

    # Cancel and succeed end an example; weighting the draw keeps most sequences long enough to
    # go through retries. Each name appears as often as it should be drawn.
    OPERATIONS = ("claim",) * 4 + ("fail",) * 3 + ("requeue",) * 2 + ("progress",) * 3 + ("succeed", "cancel")

    @rule(operation=st.sampled_from(OPERATIONS), data=st.data())
    def step(self, operation: str, data) -> None:
        draw = data.draw
        if operation == "claim":
            self.claim(draw(RUN_IDS), draw(st.sampled_from(["none", "none", "next", "stale"])))
        elif operation == "succeed":
            self.succeed(self._reporting_run(draw))
        elif operation == "fail":
            self.fail(draw(st.sampled_from([True, True, False])), self._reporting_run(draw), draw(st.integers(0, 2**16)))
        elif operation == "requeue":
            self.requeue()
        elif operation == "cancel":
            self.cancel()
        else:
            self.progress(draw(st.integers(min_value=-5, max_value=110)))

    def _reporting_run(self, draw) -> str | None:
        """Which run reports: mostly the current one, sometimes none given or a stale/foreign run."""
        choice = draw(st.sampled_from(["current", "current", "unknown", "other"]))
        if choice == "current":
            return self.model.run_id
        return None if choice == "unknown" else draw(RUN_IDS)

    def claim(self, run_id: str, attempt_tag: str) -> None:
        m = self.model
        # The run's kiln/attempt tag: absent, the attempt it was dispatched for, or a stale one.
        attempt = {"none": None, "next": m.attempt + 1, "stale": m.attempt}[attempt_tag]
        with system_session(self.engine) as s:
            ok = jobs.claim_job(s, self.job_id, run_id=run_id, attempt=attempt)
        can_start = m.status == "queued" and m.attempt < m.max_attempts and (attempt in (None, m.attempt + 1))
        if can_start:
            m.status, m.attempt, m.run_id, m.events = "running", m.attempt + 1, run_id, m.events + 1
            assert ok
        else:
            assert ok == (m.status == "running" and m.run_id == run_id), "re-claim by the same run is a no-op success"

    def succeed(self, run_id: str | None) -> None:
        m = self.model
        with system_session(self.engine) as s:
            ok = jobs.succeed_job(s, self.job_id, run_id=run_id)
        expected = m.status == "running" and run_id in (None, m.run_id)
        assert ok == expected
        if expected:
            m.status, m.progress, m.events = "succeeded", 100, m.events + 1

    def fail(self, retryable: bool, run_id: str | None, seed: int) -> None:
        m = self.model
        with system_session(self.engine) as s:
            new_status = jobs.fail_job(
                s, self.job_id, error_code="boom", message="it broke", retryable=retryable,
                run_id=run_id, policy=FAST_RETRY, rng=random.Random(seed),
            )
        if m.status != "running" or run_id not in (None, m.run_id):
            assert new_status is None
            return
        expected = "retrying" if retryable and m.attempt < m.max_attempts else "failed"
        assert new_status == expected
        m.status, m.events = expected, m.events + 1

    def requeue(self) -> None:
        m = self.model
        with system_session(self.engine) as s:
            moved = jobs.requeue_due(s, kind=self.kind, now=utcnow() + timedelta(hours=1))
        assert moved == (1 if m.status == "retrying" else 0)
        if moved:
            m.status, m.events = "queued", m.events + 1

    def cancel(self) -> None:
        m = self.model
        with system_session(self.engine) as s:
            ok = jobs.cancel_job(s, self.job_id, reason="property test")
        assert ok == (m.status in jobs.CANCELABLE_STATUSES)
        if ok:
            m.status, m.events = "canceled", m.events + 1

    def progress(self, progress: int) -> None:
        m = self.model
        with system_session(self.engine) as s:
            ok = jobs.set_progress(s, self.job_id, progress)
        clamped = max(0, min(100, progress))
        expected = m.status == "running" and clamped > m.progress
        assert ok == expected
        if expected:
            m.progress = clamped

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def database_matches_model_and_invariants_hold(self) -> None:
        with system_session(self.engine) as s:
            job = s.get(Job, self.job_id)
            events = s.scalars(select(JobEvent).where(JobEvent.job_id == self.job_id).order_by(JobEvent.seq)).all()
        m = self.model
        assert (job.status, job.attempt, job.progress) == (m.status, m.attempt, m.progress)
        assert len(events) == m.events == job.event_seq
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seqs are 1..n without gaps"
        assert (events[0].event, events[0].from_status, events[0].to_status) == ("submitted", None, "queued")
        path = [events[0].to_status]
        for e in events[1:]:
            assert (e.from_status, e.to_status) in jobs.ALLOWED_TRANSITIONS, (e.from_status, e.to_status)
            assert e.from_status == path[-1], "each event starts where the previous one ended"
            path.append(e.to_status)
        assert path[-1] == job.status
        assert 0 <= job.attempt <= job.max_attempts
        if self.seen_terminal is not None:
            assert job.status == self.seen_terminal, "terminal states never change"
        if job.status in jobs.TERMINAL_STATUSES:
            self.seen_terminal = job.status
        if job.status == "running":
            if self.last_running_progress is not None:
                assert job.progress >= self.last_running_progress, "progress never decreases while running"
            self.last_running_progress = job.progress


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('props') / 'kiln.db'}"
    upgrade(url)
    engine = make_engine(url)
    ws_id, user_id = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=ws_id, name="props", slug=f"props-{ws_id.hex[:12]}"))
        s.add(AppUser(id=user_id, email=f"{user_id.hex[:12]}@example.test"))
        s.flush()
        s.add(Membership(workspace_id=ws_id, user_id=user_id, role="owner"))
    yield engine, ws_id
    engine.dispose()


def test_random_operation_sequences_keep_the_state_machine_consistent(shared_engine):
    engine, ws_id = shared_engine
    JobMachine.engine = engine
    JobMachine.workspace_id = ws_id
    run_state_machine_as_test(
        JobMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

"""Run outcome -> job transition mapping (the logic inside the run-status sensors), on both backends."""

import pytest

from pipelines.run_tags import tags_for_job
from sensors.run_status import RunError, apply_run_outcome, classify_step_failures
from warehouse import jobs
from warehouse.db import system_session
from warehouse.models import Job, JobEvent

NO_BACKOFF = jobs.RetryPolicy(base_seconds=0, max_seconds=0)
TRANSIENT = RunError(code="upstream_timeout", message="the model server timed out", retryable=True)
PERMANENT = RunError(code="invalid_media", message="the file is not a video", retryable=False)


@pytest.fixture
def job(engine, make_tenant):
    tenant = make_tenant()
    with system_session(engine) as s:
        return jobs.submit_job(s, workspace_id=tenant.workspace_id, kind="selftest", max_attempts=2).job


def _tags(job, attempt=1):
    return tags_for_job(job_id=job.id, workspace_id=job.workspace_id, kind=job.kind, attempt=attempt)


def _apply(engine, job, outcome, run_id="run-1", attempt=1, error=None):
    with system_session(engine) as s:
        return apply_run_outcome(
            s, tags=_tags(job, attempt), run_id=run_id, outcome=outcome, error=error, policy=NO_BACKOFF
        )


def _job(engine, job_id):
    with system_session(engine) as s:
        return s.get(Job, job_id)


def test_started_then_success_succeeds_and_repeats_change_nothing(engine, job):
    assert _apply(engine, job, "started") == "running"
    assert _apply(engine, job, "started") == "running"
    assert _apply(engine, job, "success") == "succeeded"
    assert _apply(engine, job, "success") == "succeeded"
    done = _job(engine, job.id)
    assert (done.attempt, done.dagster_run_id, done.progress) == (1, "run-1", 100)
    with system_session(engine) as s:
        events = s.query(JobEvent.event).filter(JobEvent.job_id == job.id).order_by(JobEvent.seq).all()
    assert [e.event for e in events] == ["submitted", "started", "succeeded"]


def test_success_reported_before_start_still_claims_then_succeeds(engine, job):
    assert _apply(engine, job, "success") == "succeeded"
    assert _job(engine, job.id).attempt == 1


def test_retryable_failure_goes_to_retrying_then_fails_when_attempts_run_out(engine, job):
    _apply(engine, job, "started")
    assert _apply(engine, job, "failure", error=TRANSIENT) == "retrying"
    assert _job(engine, job.id).error_code == "upstream_timeout"
    with system_session(engine) as s:
        assert jobs.requeue_due(s, kind="selftest") == 1
    assert _apply(engine, job, "failure", run_id="run-2", attempt=2, error=TRANSIENT) == "failed"
    failed = _job(engine, job.id)
    assert (failed.attempt, failed.error_code) == (2, "upstream_timeout")


def test_permanent_failure_fails_at_once(engine, job):
    _apply(engine, job, "started")
    assert _apply(engine, job, "failure", error=PERMANENT) == "failed"
    failed = _job(engine, job.id)
    assert (failed.error_code, failed.error_message) == ("invalid_media", "the file is not a video")


def test_failure_without_error_is_a_lost_worker_and_retryable(engine, job):
    assert _apply(engine, job, "failure") == "retrying", "a run that died before any step still uses an attempt"
    assert _job(engine, job.id).error_code == "worker_lost"


def test_canceled_run_cancels_its_job(engine, job):
    _apply(engine, job, "started")
    assert _apply(engine, job, "canceled") == "canceled"


def test_late_events_of_an_earlier_attempt_change_nothing(engine, job):
    _apply(engine, job, "started")
    _apply(engine, job, "failure", error=TRANSIENT)
    with system_session(engine) as s:
        jobs.requeue_due(s, kind="selftest")
    assert _apply(engine, job, "started") == "queued", "attempt 1's late start must not claim attempt 2"
    assert _apply(engine, job, "canceled") == "queued"
    assert _apply(engine, job, "started", run_id="run-2", attempt=2) == "running"
    assert _apply(engine, job, "failure", error=PERMANENT) == "running", "a stale run's failure is ignored"
    assert _apply(engine, job, "success", run_id="run-2", attempt=2) == "succeeded"


def test_runs_without_kiln_tags_are_ignored(engine, job):
    with system_session(engine) as s:
        assert apply_run_outcome(s, tags={}, run_id="r", outcome="success") is None
        assert apply_run_outcome(s, tags={"kiln/job_id": "not-a-uuid"}, run_id="r", outcome="success") is None
    assert _job(engine, job.id).status == "queued"


def _step_failure(user_metadata=None, error_cls="ValueError"):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.execution.plan.objects import StepFailureData, UserFailureData
    from dagster._utils.error import SerializableErrorInfo

    user = UserFailureData(label="intentional-failure", description="bad template", metadata=user_metadata) if user_metadata else None
    data = StepFailureData(error=SerializableErrorInfo(message="x", stack=[], cls_name=error_cls), user_failure_data=user)
    return DagsterEvent(
        event_type_value=DagsterEventType.STEP_FAILURE.value, job_name="j", step_key="s", event_specific_data=data
    )


def test_classification_reads_kiln_failure_metadata_or_falls_back_to_retryable():
    permanent = classify_step_failures([_step_failure({"kiln_error_code": "template_invalid", "kiln_retryable": False})])
    assert permanent == RunError("template_invalid", "bad template", False)
    unexpected = classify_step_failures([_step_failure()])
    assert (unexpected.code, unexpected.retryable) == ("internal_error", True)
    assert "ValueError" in unexpected.message
    assert classify_step_failures([]).code == "worker_lost"


@pytest.mark.parametrize("kiln_job_run", [True, False])
def test_dagster_retries_crashed_runs_only_when_they_are_not_kiln_jobs(tmp_path, kiln_job_run):
    """With run_retries on (deploy/dagster.yaml), Dagster's own decision: Kiln job runs are Kiln's to retry."""
    import dagster as dg
    from dagster._core.events import RunFailureReason
    from dagster._core.execution.retries import auto_reexecution_should_retry_run
    from dagster._core.storage.dagster_run import DagsterRunStatus

    @dg.op
    def noop():
        return None

    @dg.job
    def some_job():
        noop()

    tags = (
        tags_for_job(job_id="00000000-0000-0000-0000-000000000001", workspace_id="w", kind="selftest", attempt=1)
        if kiln_job_run
        else {}
    )
    with dg.instance_for_test(
        temp_dir=str(tmp_path), overrides={"run_retries": {"enabled": True, "max_retries": 2}}
    ) as instance:
        run = instance.create_run_for_job(some_job, tags=tags, status=DagsterRunStatus.FAILURE)
        retried = auto_reexecution_should_retry_run(instance, run, RunFailureReason.UNEXPECTED_TERMINATION)

    assert retried is (not kiln_job_run)

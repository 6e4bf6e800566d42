"""Run-status sensors: Dagster run start / success / failure / cancel -> job transitions.

The sensors are thin: they read the run's tags (and, for a failure, its step-failure events) and
call ``apply_run_outcome``, a plain function tests call directly. The daemon delivers each run
event at least once; every transition is conditional, so a repeat changes nothing. Runs without a
``kiln/job_id`` tag are not Kiln work and are ignored.

Failure classification: a step that raised ``dg.Failure`` through the asset helper carries
``kiln_error_code`` / ``kiln_retryable`` metadata (from the ``KilnError`` the domain raised) and is
used as is. Anything else (an unexpected exception, a crashed or lost run worker, a run failed
before any step) is an internal problem a retry may cure: ``internal_error`` / ``worker_lost``.
"""


import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus
from sqlalchemy.orm import Session

from pipelines.run_tags import ERROR_CODE_KEY, JOB_ID_TAG, RETRYABLE_KEY, attempt_from_tags
from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from warehouse import jobs

Outcome = Literal["started", "success", "failure", "canceled"]


@dataclass(frozen=True)
class RunError:
    code: str
    message: str
    retryable: bool


WORKER_LOST = RunError(
    code="worker_lost",
    message="The run stopped before its work finished (worker lost or crashed); Kiln retries it while attempts remain.",
    retryable=True,
)


def retry_policy() -> jobs.RetryPolicy:
    settings = get_settings()
    return jobs.RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)


def _metadata_value(value: object) -> object:
    return getattr(value, "value", value)  # MetadataValue wrappers hold the raw value in .value


def classify_step_failures(step_failure_events: list[dg.DagsterEvent]) -> RunError:
    """The job error for a failed run, from its STEP_FAILURE events (possibly none)."""
    unexpected: str | None = None
    for event in step_failure_events:
        data = event.step_failure_data
        user_data = data.user_failure_data if data else None
        metadata = dict(user_data.metadata) if user_data and user_data.metadata else {}
        if ERROR_CODE_KEY in metadata:
            return RunError(
                code=str(_metadata_value(metadata[ERROR_CODE_KEY])),
                message=(user_data.description or "The job failed.") if user_data else "The job failed.",
                retryable=bool(_metadata_value(metadata.get(RETRYABLE_KEY, True))),
            )
        if unexpected is None and data and data.error:
            unexpected = data.error.cls_name or "Exception"
    if unexpected is not None:
        # The exception text may hold internals; users see a stable message, operators the Dagster logs.
        return RunError(
            code="internal_error",
            message=f"An internal error ({unexpected}) interrupted the job; Kiln retries it while attempts remain.",
            retryable=True,
        )
    return WORKER_LOST


def run_failure_error(instance: dg.DagsterInstance, run_id: str) -> RunError:
    records = instance.get_records_for_run(run_id=run_id, of_type=DagsterEventType.STEP_FAILURE).records
    events = [record.event_log_entry.dagster_event for record in records if record.event_log_entry.dagster_event]
    return classify_step_failures(events)


def _current_for_run(session: Session, job_id: uuid.UUID, run_id: str, attempt: int | None) -> tuple[str, bool] | None:
    """(status, is this run the job's current run or its next dispatched attempt)."""
    row = jobs.run_state(session, job_id)
    if row is None:
        return None
    if row.status == "running":
        return row.status, row.dagster_run_id == run_id
    if row.status == "queued":
        return row.status, attempt is None or row.attempt + 1 == attempt
    return row.status, False


def apply_run_outcome(
    session: Session,
    *,
    tags: Mapping[str, str],
    run_id: str,
    outcome: Outcome,
    error: RunError | None = None,
    policy: jobs.RetryPolicy | None = None,
) -> str | None:
    """Apply one run event to its job; returns the job's status afterwards (None: not a Kiln run)."""
    raw_job_id = tags.get(JOB_ID_TAG)
    if not raw_job_id:
        return None
    try:
        job_id = uuid.UUID(raw_job_id)
    except ValueError:
        return None
    attempt = attempt_from_tags(tags)
    current = _current_for_run(session, job_id, run_id, attempt)
    if current is None:
        return None
    status, is_current_run = current

    if outcome in ("started", "success", "failure") and status == "queued" and is_current_run:
        # The run got further than the asset's own claim (or failed before any step ran):
        # claiming here keeps a dispatched attempt from being stranded in `queued`.
        jobs.claim_job(session, job_id, run_id=run_id, attempt=attempt)
    if outcome == "success":
        jobs.succeed_job(session, job_id, run_id=run_id)
    elif outcome == "failure":
        error = error or WORKER_LOST
        jobs.fail_job(
            session,
            job_id,
            error_code=error.code,
            message=error.message,
            retryable=error.retryable,
            run_id=run_id,
            policy=policy or retry_policy(),
        )
    elif outcome == "canceled" and is_current_run:
        # A run canceled in Dagster cancels its job; a stale run of an earlier attempt does not.
        jobs.cancel_job(session, job_id, reason="the Dagster run was canceled", actor=f"dagster-run:{run_id}")
    return jobs.status_of(session, job_id)


def _handle(context: dg.RunStatusSensorContext, database: DatabaseResource, outcome: Outcome) -> None:
    run = context.dagster_run
    if JOB_ID_TAG not in run.tags:
        return
    error = run_failure_error(context.instance, run.run_id) if outcome == "failure" else None
    with database.system_session() as session:
        status = apply_run_outcome(session, tags=run.tags, run_id=run.run_id, outcome=outcome, error=error)
    context.log.info("run %s %s -> job %s is %s", run.run_id, outcome, run.tags[JOB_ID_TAG], status)


_SENSOR_OPTIONS = {"minimum_interval_seconds": 5, "default_status": dg.DefaultSensorStatus.RUNNING}


@dg.run_status_sensor(run_status=DagsterRunStatus.STARTED, name="kiln_run_started", **_SENSOR_OPTIONS)
def kiln_run_started(context: dg.RunStatusSensorContext, database: DatabaseResource) -> None:
    _handle(context, database, "started")


@dg.run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name="kiln_run_succeeded", **_SENSOR_OPTIONS)
def kiln_run_succeeded(context: dg.RunStatusSensorContext, database: DatabaseResource) -> None:
    _handle(context, database, "success")


@dg.run_status_sensor(run_status=DagsterRunStatus.FAILURE, name="kiln_run_failed", **_SENSOR_OPTIONS)
def kiln_run_failed(context: dg.RunStatusSensorContext, database: DatabaseResource) -> None:
    _handle(context, database, "failure")


@dg.run_status_sensor(run_status=DagsterRunStatus.CANCELED, name="kiln_run_canceled", **_SENSOR_OPTIONS)
def kiln_run_canceled(context: dg.RunStatusSensorContext, database: DatabaseResource) -> None:
    _handle(context, database, "canceled")


RUN_STATUS_SENSORS = [kiln_run_started, kiln_run_succeeded, kiln_run_failed, kiln_run_canceled]
defs = dg.Definitions(sensors=RUN_STATUS_SENSORS)

"""Kiln's log lines inside a Dagster step carry the job's ids: a real materialization, structlog set up by kiln_job.

Nothing configures structlog beforehand (as in a fresh run worker), so these tests also prove that
``kiln_job`` sets up JSON logging itself.
"""

import io
import json
import uuid

import dagster as dg
import pytest
import structlog

from resources.logs import configure_dagster_logging
from assets.selftest.assets import selftest_report
from pipelines.run_tags import tags_for_job
from resources.dagster_resources import DatabaseResource
from resources.objectstore_local import LocalObjectStore
from warehouse import jobs
from warehouse.db import make_engine, system_session
from warehouse.models import Workspace


@pytest.fixture
def unconfigured_structlog():
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def world(sqlite_url, tmp_path, unconfigured_structlog):
    engine = make_engine(sqlite_url)
    workspace_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=workspace_id, name="logs", slug=f"logs-{workspace_id.hex[:8]}"))
    resources = {"database": DatabaseResource(url=sqlite_url), "object_store": LocalObjectStore(root=str(tmp_path / "o"))}
    with dg.instance_for_test() as instance:
        yield engine, workspace_id, resources, instance
    engine.dispose()


def _submit(world, **payload):
    engine, workspace_id, _, _ = world
    with system_session(engine) as s:
        return jobs.submit_job(s, workspace_id=workspace_id, kind="selftest", payload={"message": "m", **payload}).job.id


def _run(world, job_id):
    _, workspace_id, resources, instance = world
    instance.add_dynamic_partitions("selftest_jobs", [str(job_id)])
    return dg.materialize(
        [selftest_report], partition_key=str(job_id), instance=instance, resources=resources, raise_on_error=False,
        tags=tags_for_job(job_id=job_id, workspace_id=workspace_id, kind="selftest", attempt=1),
    )


def _kiln_lines(err: str) -> list[dict]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if str(line.get("event", "")).startswith(("job_step", "job_not"))]


def test_step_lines_carry_job_workspace_run_kind_and_attempt(world, capsys):
    _, workspace_id, _, instance = world
    job_id = _submit(world)
    result = _run(world, job_id)
    assert result.success

    lines = _kiln_lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["job_step_started", "job_step_finished"]
    for line in lines:
        assert (line["job_id"], line["workspace_id"], line["run_id"]) == (str(job_id), str(workspace_id), result.run_id)
        assert (line["kind"], line["attempt"], line["level"]) == ("selftest", 1, "info")
    assert structlog.contextvars.get_contextvars() == {}  # unbound once the step is over
    # Dagster's own event log (the UI) names them too.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(str(job_id) in m and str(workspace_id) in m and "selftest" in m for m in messages)


def test_a_failing_step_logs_its_error_code_with_the_ids(world, capsys):
    job_id = _submit(world, fail_permanently=True)
    result = _run(world, job_id)
    assert not result.success

    (started, failed) = _kiln_lines(capsys.readouterr().err)
    assert started["event"] == "job_step_started"
    assert (failed["event"], failed["level"], failed["retryable"]) == ("job_step_failed", "warning", False)
    assert failed["error_code"] and (failed["job_id"], failed["run_id"]) == (str(job_id), result.run_id)
    assert structlog.contextvars.get_contextvars() == {}


def test_a_job_that_cannot_start_is_logged_with_the_run_and_kind(world, capsys):
    job_id = _submit(world)
    with system_session(world[0]) as s:
        assert jobs.cancel_job(s, job_id)
    result = _run(world, job_id)
    assert not result.success
    (line,) = _kiln_lines(capsys.readouterr().err)
    assert (line["event"], line["error_code"], line["run_id"], line["kind"]) == (
        "job_not_started", "canceled", result.run_id, "selftest")
    assert structlog.contextvars.get_contextvars() == {}


def test_dagster_logging_redacts_secrets_and_keeps_the_first_setup(unconfigured_structlog):
    first, second = io.StringIO(), io.StringIO()
    configure_dagster_logging(None, stream=first)
    configure_dagster_logging(None, stream=second)  # a later call (the next step in this process) changes nothing
    structlog.get_logger("kiln.test").info("step", secret="s3cr3t", note="Bearer abc.def")
    (line,) = [json.loads(text) for text in first.getvalue().splitlines()]
    assert (line["event"], line["secret"], line["note"]) == ("step", "[REDACTED]", "Bearer [REDACTED]")
    assert second.getvalue() == ""

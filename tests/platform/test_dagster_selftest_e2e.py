"""End to end through real Dagster runs: sensor -> run -> run-status sensors -> job state.

The daemon is not running in tests, so each step it would take is taken here, in its order: tick
the dispatch sensor, apply its partition requests, execute the requested run in process with the
request's tags, and hand the run's events to the run-status sensors.
"""

import hashlib
import json
import uuid

import dagster as dg
import pytest
from sqlalchemy import select

from assets.selftest.assets import selftest_report
from resources.dagster_resources import DatabaseResource
from resources.objectstore_local import LocalObjectStore
from sensors import run_status
from sensors.selftest import selftest_dispatch_sensor, selftest_job
from warehouse import jobs
from warehouse.db import make_engine, system_session
from tests.support.dagster_runs import add_requested_partitions, no_backoff, report_run_to_sensors  # noqa: F401
from warehouse.models import Artifact, Job, LineageEdge, Workspace


def _world(url, tmp_path):
    engine = make_engine(url)
    workspace_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=workspace_id, name="e2e", slug=f"e2e-{workspace_id.hex[:8]}"))
    resources = {
        "database": DatabaseResource(url=url),
        "object_store": LocalObjectStore(root=str(tmp_path / "objects")),
    }
    with dg.instance_for_test() as instance:
        yield engine, workspace_id, resources, instance
    engine.dispose()


@pytest.fixture
def world(sqlite_url, tmp_path, no_backoff):
    yield from _world(sqlite_url, tmp_path)


@pytest.fixture
def world_any_backend(db_url, tmp_path, no_backoff):
    """The core paths also run against PostgreSQL as the worker role (row-level security on)."""
    yield from _world(db_url, tmp_path)


def _submit(engine, workspace_id, payload):
    with system_session(engine) as s:
        return jobs.submit_job(s, workspace_id=workspace_id, kind="selftest", payload=payload).job.id


def _dispatch_and_run(instance, resources):
    """One daemon cycle: a sensor tick, the run it requests, and the run-status sensors' reaction."""
    tick = selftest_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    add_requested_partitions(instance, tick)
    (run_request,) = tick.run_requests
    job_def = dg.Definitions(assets=[selftest_report], jobs=[selftest_job], resources=resources).resolve_job_def(
        "selftest_job"
    )
    result = job_def.execute_in_process(
        partition_key=run_request.partition_key, tags=run_request.tags, instance=instance, raise_on_error=False
    )
    report_run_to_sensors(instance, result, resources)
    return run_request, result


def test_selftest_job_runs_to_success_and_its_artifact_matches(world_any_backend):
    engine, workspace_id, resources, instance = world_any_backend
    job_id = _submit(engine, workspace_id, {"message": "hello kiln"})

    run_request, result = _dispatch_and_run(instance, resources)

    assert result.success
    assert run_request.run_key == f"{job_id}:1"
    assert instance.has_dynamic_partition("selftest_jobs", str(job_id))
    with system_session(engine) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempt, job.progress, job.dagster_run_id) == ("succeeded", 1, 100, result.run_id)
        output = s.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == "output"))
        message = s.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == "input"))
        edge = s.scalar(select(LineageEdge).where(LineageEdge.child_artifact_id == output.id))
    data = resources["object_store"].get_bytes(output.storage_key)
    assert hashlib.sha256(data).hexdigest() == output.sha256 and len(data) == output.size_bytes
    report = json.loads(data)
    assert report["message_sha256"] == hashlib.sha256(b"hello kiln").hexdigest()
    assert (report["attempt"], report["run_id"]) == (1, result.run_id)
    assert (output.asset_key, output.run_id, output.workspace_id) == ("selftest_report", result.run_id, workspace_id)
    assert (edge.parent_artifact_id, edge.run_id) == (message.id, result.run_id)
    assert output.expires_at is not None, "outputs carry their kind's retention"
    materialization = instance.get_latest_materialization_event(dg.AssetKey("selftest_report"))
    assert materialization.asset_materialization.partition == str(job_id)


def test_transient_failure_is_retried_in_a_new_run_that_succeeds(world_any_backend):
    engine, workspace_id, resources, instance = world_any_backend
    job_id = _submit(engine, workspace_id, {"message": "flaky", "fail_times": 1})

    first_request, first = _dispatch_and_run(instance, resources)

    assert not first.success
    with system_session(engine) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempt, job.error_code) == ("retrying", 1, "selftest_transient")

    second_request, second = _dispatch_and_run(instance, resources)

    assert (first_request.run_key, second_request.run_key) == (f"{job_id}:1", f"{job_id}:2")
    assert second.success
    with system_session(engine) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempt, job.dagster_run_id) == ("succeeded", 2, second.run_id)
        assert s.scalar(select(Artifact.run_id).where(Artifact.job_id == job_id, Artifact.kind == "output")) == second.run_id


def test_permanent_error_fails_the_job_with_its_code(world):
    engine, workspace_id, resources, instance = world
    job_id = _submit(engine, workspace_id, {"message": "no", "fail_permanently": True})

    _, result = _dispatch_and_run(instance, resources)

    assert not result.success
    with system_session(engine) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.error_code) == ("failed", "selftest_rejected")
        assert "fail_permanently" in job.error_message
        assert s.scalar(select(Artifact).where(Artifact.job_id == job_id)) is None


def test_unexpected_exception_is_classified_internal_and_retryable(world, monkeypatch):
    engine, workspace_id, resources, instance = world
    job_id = _submit(engine, workspace_id, {"message": "x"})

    def explode(*args, **kwargs):
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr("assets.selftest.assets.build_report", explode)
    _dispatch_and_run(instance, resources)

    with system_session(engine) as s:
        job = s.get(Job, job_id)
    assert (job.status, job.error_code) == ("retrying", "internal_error")
    assert "secret internals" not in job.error_message


def test_canceled_job_stops_its_run_without_work(world):
    engine, workspace_id, resources, instance = world
    job_id = _submit(engine, workspace_id, {"message": "x"})
    tick = selftest_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    with system_session(engine) as s:
        assert jobs.cancel_job(s, job_id)
    instance.add_dynamic_partitions("selftest_jobs", [str(job_id)])
    (request,) = tick.run_requests
    result = dg.materialize(
        [selftest_report], partition_key=request.partition_key, tags=request.tags, instance=instance,
        resources=resources, raise_on_error=False,
    )
    assert not result.success
    error = run_status.run_failure_error(instance, result.run_id)
    assert (error.code, error.retryable) == ("canceled", False)
    with system_session(engine) as s:
        assert s.get(Job, job_id).status == "canceled"
        assert s.scalar(select(Artifact).where(Artifact.job_id == job_id)) is None


def test_manual_materialization_reprocesses_a_finished_job_as_a_new_tracked_job(world):
    engine, workspace_id, resources, instance = world
    job_id = _submit(engine, workspace_id, {"message": "again"})
    _dispatch_and_run(instance, resources)

    result = dg.materialize([selftest_report], partition_key=str(job_id), instance=instance, resources=resources)

    run = instance.get_run_by_id(result.run_id)
    new_job_id = uuid.UUID(run.tags["kiln/job_id"])
    assert new_job_id != job_id
    with system_session(engine) as s:
        status = run_status.apply_run_outcome(s, tags=run.tags, run_id=run.run_id, outcome="success")
        new_job = s.get(Job, new_job_id)
    assert status == "succeeded"
    assert (new_job.partition_key, new_job.payload, new_job.workspace_id) == (str(job_id), {"message": "again"}, workspace_id)


def test_selftest_domain_validates_its_payload_and_fails_on_demand():
    from datetime import UTC, datetime

    from pipelines.errors import InvalidInput, PermanentError, RetryableError
    from pipelines.selftest import SelftestRequest, build_report

    for bad in ({"message": 5}, {"fail_times": "1"}, {"fail_times": True}, {"fail_times": -1}, {"fail_permanently": "yes"}):
        with pytest.raises(InvalidInput):
            SelftestRequest.from_payload(bad)
    now = datetime.now(UTC)
    flaky = SelftestRequest.from_payload({"message": "m", "fail_times": 2})
    for attempt in (1, 2):
        with pytest.raises(RetryableError):
            build_report(flaky, attempt=attempt, run_id="r", started_at=now, finished_at=now)
    assert build_report(flaky, attempt=3, run_id="r", started_at=now, finished_at=now)["attempt"] == 3
    with pytest.raises(PermanentError) as rejected:
        build_report(SelftestRequest("m", fail_permanently=True), attempt=1, run_id="r", started_at=now, finished_at=now)
    assert (rejected.value.code, rejected.value.retryable) == ("selftest_rejected", False)

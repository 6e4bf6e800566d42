"""The dispatch contract: due queued jobs -> dynamic partitions + RunRequests, capped, once per attempt."""

import uuid

import dagster as dg
import pytest

from pipelines.run_tags import ATTEMPT_TAG, DAGSTER_MAX_RETRIES_TAG, JOB_ID_TAG, KIND_TAG, WORKSPACE_ID_TAG
from resources.dagster_resources import DatabaseResource
from sensors.dispatch import dispatch_due_jobs
from sensors.selftest import selftest_dispatch_sensor
from warehouse import jobs
from warehouse.db import system_session
from warehouse.models import Job

PARTITIONS = dg.DynamicPartitionsDefinition(name="selftest_jobs")
NO_BACKOFF = jobs.RetryPolicy(base_seconds=0, max_seconds=0)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _submit(engine, workspace_id, n=1, kind="selftest"):
    ids = []
    with system_session(engine) as s:
        for i in range(n):
            ids.append(jobs.submit_job(s, workspace_id=workspace_id, kind=kind, payload={"message": f"m{i}"}).job.id)
    return ids


def _tick(instance, db_url, **kwargs):
    context = dg.build_sensor_context(instance=instance)
    return dispatch_due_jobs(
        context, database=DatabaseResource(url=db_url), kind="selftest", partitions_def=PARTITIONS, **kwargs
    )


def test_due_jobs_become_partitions_and_run_requests_capped_per_tick(db_url, engine, make_tenant, instance):
    tenant = make_tenant()
    ids = _submit(engine, tenant.workspace_id, n=3)
    _submit(engine, tenant.workspace_id, n=1, kind="other_kind")

    first = _tick(instance, db_url, max_runs=2)

    assert [r.run_key for r in first.run_requests] == [f"{ids[0]}:1", f"{ids[1]}:1"]
    assert [r.partition_key for r in first.run_requests] == [str(ids[0]), str(ids[1])]
    assert first.run_requests[0].tags == {
        JOB_ID_TAG: str(ids[0]),
        WORKSPACE_ID_TAG: str(tenant.workspace_id),
        KIND_TAG: "selftest",
        ATTEMPT_TAG: "1",
        DAGSTER_MAX_RETRIES_TAG: "0",
    }
    (add_request,) = first.dynamic_partitions_requests
    assert add_request.partitions_def_name == "selftest_jobs"
    assert list(add_request.partition_keys) == [str(ids[0]), str(ids[1])]
    assert first.cursor is not None

    second = _tick(instance, db_url, max_runs=2)
    assert [r.run_key for r in second.run_requests] == [f"{ids[2]}:1"], "dispatched jobs are not dispatched again"

    third = _tick(instance, db_url, max_runs=2)
    assert third.run_requests == [] and third.skip_reason is not None
    with system_session(engine) as s:
        assert all(s.get(Job, i).dispatched_at is not None for i in ids)


def test_known_partitions_are_not_added_again(db_url, engine, make_tenant, instance):
    tenant = make_tenant()
    known, fresh = _submit(engine, tenant.workspace_id, n=2)
    instance.add_dynamic_partitions("selftest_jobs", [str(known)])

    result = _tick(instance, db_url)

    assert len(result.run_requests) == 2
    (add_request,) = result.dynamic_partitions_requests
    assert list(add_request.partition_keys) == [str(fresh)]


def test_retrying_job_is_requeued_after_backoff_and_dispatched_with_next_attempt_key(db_url, engine, make_tenant, instance):
    tenant = make_tenant()
    (job_id,) = _submit(engine, tenant.workspace_id)
    assert [r.run_key for r in _tick(instance, db_url).run_requests] == [f"{job_id}:1"]
    with system_session(engine) as s:
        assert jobs.claim_job(s, job_id, run_id="run-1", attempt=1)
        assert jobs.fail_job(s, job_id, error_code="x", message="boom", retryable=True, run_id="run-1", policy=NO_BACKOFF) == "retrying"

    result = _tick(instance, db_url)

    (request,) = result.run_requests
    assert request.run_key == f"{job_id}:2"
    assert request.tags[ATTEMPT_TAG] == "2"
    with system_session(engine) as s:
        assert s.get(Job, job_id).status == "queued"


def test_retrying_job_waits_for_its_backoff(db_url, engine, make_tenant, instance):
    tenant = make_tenant()
    (job_id,) = _submit(engine, tenant.workspace_id)
    with system_session(engine) as s:
        jobs.claim_job(s, job_id, run_id="run-1")
        jobs.fail_job(s, job_id, error_code="x", message="boom", retryable=True, policy=jobs.RetryPolicy(base_seconds=3600))

    assert _tick(instance, db_url).run_requests == []
    with system_session(engine) as s:
        assert s.get(Job, job_id).status == "retrying"


def test_selftest_sensor_uses_the_contract(sqlite_url, instance):
    from warehouse.db import make_engine
    from warehouse.models import Workspace

    engine = make_engine(sqlite_url)
    ws = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=ws, name="w", slug=f"w-{ws.hex[:8]}"))
    (job_id,) = _submit(engine, ws)

    context = dg.build_sensor_context(instance=instance, resources={"database": DatabaseResource(url=sqlite_url)})
    result = selftest_dispatch_sensor(context)

    assert isinstance(result, dg.SensorResult)
    assert [r.run_key for r in result.run_requests] == [f"{job_id}:1"]
    assert result.dynamic_partitions_requests[0].partitions_def_name == "selftest_jobs"
    engine.dispose()


def test_runs_carry_the_pool_their_card_names_unless_the_sensor_routes_them(db_url, engine, make_tenant, instance,
                                                                           monkeypatch):
    from pipelines.card import JobKind
    from pipelines.run_tags import POOL_TAG
    from pipelines.selftest.product import SelftestPayload

    tenant = make_tenant()
    _submit(engine, tenant.workspace_id, n=2)
    monkeypatch.setattr("sensors.dispatch.all_job_kinds", lambda: {
        "selftest": JobKind("selftest", partitions="selftest_jobs", payload_model=SelftestPayload, pool="render")})
    pooled = _tick(instance, db_url, max_runs=1)
    assert pooled.run_requests[0].tags[POOL_TAG] == "render"
    unpooled = _tick(instance, db_url, max_runs=1, pool=None)
    assert POOL_TAG not in unpooled.run_requests[0].tags


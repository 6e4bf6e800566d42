"""The DuckDB lineage warehouse: incremental sync from the system of record and Dagster, and the views."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import pytest
from sqlalchemy import func, select

from warehouse.db import system_session
from warehouse.jobs import claim_job, submit_job, succeed_job
from warehouse.lineage import sync_lineage, table_counts
from warehouse.models import Artifact, Job, JobEvent, LineageEdge

DAY1 = datetime(2024, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def _job(session, ws, kind, status, created, *, started=None, finished=None, error_code=None, events=()):
    """Insert one job with its history; ``events`` are (event, to_status, at, error_code)."""
    job = Job(
        id=uuid.uuid4(), workspace_id=ws, kind=kind, status=status, attempt=1 if started else 0,
        created_at=created, updated_at=finished or started or created, next_attempt_at=created,
        started_at=started, finished_at=finished, error_code=error_code, event_seq=1 + len(events),
    )
    job.partition_key = str(job.id)
    session.add(job)
    session.flush()
    session.add(JobEvent(workspace_id=ws, job_id=job.id, seq=1, event="submitted", to_status="queued", created_at=created))
    for seq, (event, to_status, at, code) in enumerate(events, start=2):
        detail = {"error_code": code} if code else {}
        session.add(JobEvent(workspace_id=ws, job_id=job.id, seq=seq, event=event, to_status=to_status, detail=detail, created_at=at))
    session.flush()
    return job


def _artifact(session, ws, job, name, created):
    return Artifact(
        id=uuid.uuid4(), workspace_id=ws, kind="output", storage_key=f"ws/{ws}/output/{job.id}/{uuid.uuid4()}/{name}",
        sha256=hashlib.sha256(name.encode()).hexdigest(), size_bytes=len(name), filename=name, job_id=job.id,
        created_at=created, updated_at=created,
    )


def _quantile_cont(values, q):
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@pytest.fixture
def seeded(engine, make_tenant):
    ws = make_tenant().workspace_id
    # Kinds unique to this test: the PostgreSQL database is shared by the whole test session.
    alpha, beta = f"alpha-{ws.hex[:8]}", f"beta-{ws.hex[:8]}"
    h = timedelta(hours=1)
    with system_session(engine) as s:
        jobs = [
            _job(s, ws, alpha, "succeeded", DAY1 + 1 * h, started=DAY1 + 1.1 * h, finished=DAY1 + 2 * h,
                 events=[("started", "running", DAY1 + 1.1 * h, None), ("succeeded", "succeeded", DAY1 + 2 * h, None)]),
            _job(s, ws, alpha, "succeeded", DAY1 + 3 * h, started=DAY1 + 3.5 * h, finished=DAY1 + 7 * h,
                 events=[("started", "running", DAY1 + 3.5 * h, None), ("succeeded", "succeeded", DAY1 + 7 * h, None)]),
            _job(s, ws, alpha, "succeeded", DAY1 + 20 * h, started=DAY1 + 23 * h, finished=DAY2 + 1 * h,
                 events=[("started", "running", DAY1 + 23 * h, None), ("succeeded", "succeeded", DAY2 + 1 * h, None)]),
            _job(s, ws, alpha, "failed", DAY1 + 4 * h, started=DAY1 + 4.2 * h, finished=DAY1 + 5 * h, error_code="invalid_media",
                 events=[("started", "running", DAY1 + 4.2 * h, None), ("failed", "failed", DAY1 + 5 * h, "invalid_media")]),
            _job(s, ws, beta, "succeeded", DAY2 + 1 * h, started=DAY2 + 3 * h, finished=DAY2 + 4 * h,
                 events=[("started", "running", DAY2 + 1.5 * h, None), ("retry_scheduled", "retrying", DAY2 + 2 * h, "timeout"),
                         ("started", "running", DAY2 + 3 * h, None), ("succeeded", "succeeded", DAY2 + 4 * h, None)]),
            _job(s, ws, beta, "canceled", DAY2 + 2 * h, finished=DAY2 + 2.5 * h, error_code="canceled",
                 events=[("canceled", "canceled", DAY2 + 2.5 * h, None)]),
            _job(s, ws, beta, "queued", DAY2 + 5 * h),
        ]
        producer = jobs[0]
        # a -> b, a -> c (siblings), b -> d -> e; f unrelated
        arts = {n: _artifact(s, ws, producer, f"{n}.bin", DAY1 + 2 * h) for n in "abcdef"}
        s.add_all(arts.values())
        s.flush()
        for parent, child in [("a", "b"), ("a", "c"), ("b", "d"), ("d", "e")]:
            s.add(LineageEdge(workspace_id=ws, parent_artifact_id=arts[parent].id, child_artifact_id=arts[child].id, created_at=DAY1 + 2 * h))
        s.flush()
        events = list(s.query(JobEvent).filter(JobEvent.workspace_id == ws))
    return {"ws": ws, "alpha": alpha, "beta": beta, "jobs": jobs, "artifacts": {n: str(a.id) for n, a in arts.items()}, "events": events}


def test_first_sync_copies_everything_and_views_match_the_seed(engine, seeded, tmp_path):
    path = tmp_path / "wh.duckdb"
    counts = sync_lineage(engine, path)
    with system_session(engine) as s:  # the first sync copies everything in the system of record
        expected = {t: s.scalar(select(func.count()).select_from(m)) for t, m in
                    [("jobs", Job), ("artifacts", Artifact), ("job_events", JobEvent), ("lineage_edges", LineageEdge)]}
    assert counts == expected
    assert table_counts(path)["jobs"] == expected["jobs"]
    mine = "kind IN (?, ?)"
    kinds = [seeded["alpha"], seeded["beta"]]

    jobs = seeded["jobs"]
    expected_throughput = defaultdict(lambda: [0, 0, 0, 0])
    for job in jobs:
        expected_throughput[(job.kind, job.created_at.date())][0] += 1
        if job.status in ("succeeded", "failed", "canceled"):
            column = ("succeeded", "failed", "canceled").index(job.status) + 1
            expected_throughput[(job.kind, job.finished_at.date())][column] += 1
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute(f"SELECT kind, day, submitted, succeeded, failed, canceled FROM throughput_daily WHERE {mine}", kinds).fetchall()
    assert {(k, d): list(v) for k, d, *v in rows} == dict(expected_throughput)

    done = [j for j in jobs if j.status == "succeeded"]
    for kind, day in {(j.kind, j.finished_at.date()) for j in done}:
        group = [j for j in done if (j.kind, j.finished_at.date()) == (kind, day)]
        total = [(j.finished_at - j.created_at).total_seconds() for j in group]
        run = [(j.finished_at - j.started_at).total_seconds() for j in group]
        got = con.execute(
            "SELECT jobs, total_p50_s, total_p90_s, total_p99_s, run_p50_s, run_p95_s FROM latency_daily WHERE kind = ? AND day = ?",
            [kind, day],
        ).fetchone()
        assert got[0] == len(group)
        assert got[1:] == pytest.approx(
            (_quantile_cont(total, 0.5), _quantile_cont(total, 0.9), _quantile_cont(total, 0.99),
             _quantile_cont(run, 0.5), _quantile_cont(run, 0.95))
        )
    assert con.execute(f"SELECT count(*) FROM latency_daily WHERE {mine}", kinds).fetchone()[0] == 3  # alpha d1, alpha d2, beta d2

    failures = con.execute(f"SELECT kind, day, error_code, count, terminal FROM failure_reasons_daily WHERE {mine}", kinds).fetchall()
    assert sorted(failures) == [
        (seeded["alpha"], date(2024, 3, 1), "invalid_media", 1, 1),
        (seeded["beta"], date(2024, 3, 2), "timeout", 1, 0),
    ]

    ids = seeded["artifacts"]
    from_b = con.execute("SELECT artifact_id, depth FROM derived_from(?)", [ids["b"]]).fetchall()
    assert from_b == sorted([(ids["d"], 1), (ids["e"], 2)], key=lambda r: (r[1], r[0]))
    from_a = dict(con.execute("SELECT artifact_id, depth FROM derived_from(?)", [ids["a"]]).fetchall())
    assert from_a == {ids["b"]: 1, ids["c"]: 1, ids["d"]: 2, ids["e"]: 3}
    assert con.execute("SELECT count(*) FROM derived_from(?)", [ids["e"]]).fetchone()[0] == 0
    con.close()


def test_second_sync_copies_only_new_and_changed_rows(engine, seeded, tmp_path):
    path = tmp_path / "wh.duckdb"
    sync_lineage(engine, path)
    assert sync_lineage(engine, path) == {"jobs": 0, "artifacts": 0, "job_events": 0, "lineage_edges": 0}

    ws, queued = seeded["ws"], seeded["jobs"][-1]
    with system_session(engine) as s:
        new_job = submit_job(s, workspace_id=ws, kind=seeded["beta"], payload={"n": 1}).job  # +1 job, +1 event
        assert claim_job(s, queued.id, run_id="run-1")  # +1 event, job changed
        assert succeed_job(s, queued.id, run_id="run-1")  # +1 event
        parent = s.get(Artifact, uuid.UUID(seeded["artifacts"]["e"]))
        child = _artifact(s, ws, new_job, "g.bin", datetime.now(UTC))
        s.add(child)
        s.flush()
        s.add(LineageEdge(workspace_id=ws, parent_artifact_id=parent.id, child_artifact_id=child.id))
    counts = sync_lineage(engine, path)
    assert counts == {"jobs": 2, "artifacts": 1, "job_events": 3, "lineage_edges": 1}
    assert sync_lineage(engine, path) == {"jobs": 0, "artifacts": 0, "job_events": 0, "lineage_edges": 0}

    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT status FROM jobs WHERE id = ?", [str(queued.id)]).fetchone() == ("succeeded",)
    assert con.execute("SELECT count(*) FROM jobs WHERE workspace_id = ?", [str(ws)]).fetchone()[0] == 8
    descendants = {r[0] for r in con.execute("SELECT artifact_id FROM derived_from(?)", [seeded["artifacts"]["d"]]).fetchall()}
    assert descendants == {seeded["artifacts"]["e"], str(child.id)}
    con.close()


def test_dagster_runs_and_materializations_are_copied_incrementally(engine, tmp_path):
    @dg.asset
    def tiny() -> int:
        return 1

    path = tmp_path / "wh.duckdb"
    with dg.instance_for_test() as instance:
        first = dg.materialize([tiny], instance=instance, tags={"kiln/kind": "selftest"})
        assert first.success
        counts = sync_lineage(engine, path, dagster_instance=instance)
        assert (counts["dagster_runs"], counts["materializations"]) == (1, 1)
        again = sync_lineage(engine, path, dagster_instance=instance)
        assert (again["dagster_runs"], again["materializations"]) == (0, 0)
        second = dg.materialize([tiny], instance=instance)
        counts = sync_lineage(engine, path, dagster_instance=instance)
        assert (counts["dagster_runs"], counts["materializations"]) == (1, 1)

    con = duckdb.connect(str(path), read_only=True)
    runs = dict(con.execute("SELECT run_id, status FROM dagster_runs").fetchall())
    assert runs == {first.run_id: "SUCCESS", second.run_id: "SUCCESS"}
    assert con.execute("SELECT kind FROM dagster_runs WHERE run_id = ?", [first.run_id]).fetchone() == ("selftest",)
    mats = Counter(r[0] for r in con.execute("SELECT asset_key FROM materializations").fetchall())
    assert mats == {"tiny": 2}
    con.close()


def test_lineage_asset_materializes_with_counts_and_the_run_sensor_debounces(engine, db_url, seeded, tmp_path):
    from assets.maintenance.defs import defs, lineage_after_run_sensor, lineage_schedule
    from resources.dagster_resources import DatabaseResource
    from resources.objectstore_local import LocalObjectStore

    path = tmp_path / "asset.duckdb"
    resources = {"database": DatabaseResource(url=db_url), "object_store": LocalObjectStore(root=str(tmp_path / "objects"))}
    job = dg.Definitions.merge(defs, dg.Definitions(resources=resources)).resolve_job_def("lineage_warehouse_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"lineage_warehouse": {"config": {"duckdb_path": str(path)}}}}
        )
        assert result.success
        metadata = result.asset_materializations_for_node("lineage_warehouse")[0].metadata
        assert metadata["rows_jobs"].value >= 7
        assert metadata["copied_lineage_edges"].value >= 4
        assert metadata["copied_dagster_runs"].value == 1  # this very run, seen while it was running

        # A refresh run finishing does not trigger another refresh.
        context = dg.build_run_status_sensor_context(
            sensor_name="lineage_after_run_sensor",
            dagster_event=result.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        )
        assert isinstance(lineage_after_run_sensor(context), dg.SkipReason)

        @dg.asset
        def work() -> int:
            return 1

        other = dg.materialize([work], instance=instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="lineage_after_run_sensor",
            dagster_event=other.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=other.dagster_run,
        )
        request = lineage_after_run_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("lineage:")
    assert lineage_schedule.cron_schedule == "*/15 * * * *"
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM derived_from(?)", [seeded["artifacts"]["a"]]).fetchone()[0] == 4
    con.close()

"""Retention: expired objects deleted and rows marked, stale dynamic partitions removed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import update

from pipelines.maintenance.retention import (
    PartitionJob,
    kinds_by_partitions_def,
    register_partitions,
    removable_partitions,
    ttl_for_kind,
)
from pipelines.maintenance_defs import retention_job, retention_schedule
from resources.dagster_resources import DatabaseResource
from resources.objectstore import LocalObjectStore
from resources.settings import Settings
from warehouse.artifacts import expiry, store_artifact
from warehouse.db import system_session, utcnow
from warehouse.jobs import claim_job, fail_job, submit_job, succeed_job
from warehouse.models import Artifact, Job
from warehouse.retention import purge_expired_artifacts, stale_partitions

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
GRACE = timedelta(days=30)
EXPIRED, FRESH = timedelta(days=-1), timedelta(days=30)
# A kind of our own: the PostgreSQL database is shared by the session, and queued "selftest" jobs
# left behind would be picked up by the selftest dispatch tests.
KIND, PARTITIONS = "retention_probe", "retention_probe_jobs"


@pytest.fixture(autouse=True)
def _probe_kind_registered(monkeypatch):
    from pipelines.maintenance.retention import PARTITIONS_BY_KIND

    monkeypatch.setitem(PARTITIONS_BY_KIND, KIND, PARTITIONS)


# --- plain decisions -------------------------------------------------------------------------


def _pj(key, status, *, total=0, available=0, finished=NOW - timedelta(days=1), kind="selftest"):
    return PartitionJob(kind, key, status, finished, total, available)


@pytest.mark.parametrize(
    ("job", "removable"),
    [
        (_pj("k", "succeeded", total=2, available=0), True),
        (_pj("k", "failed", total=2, available=1), False),
        (_pj("k", "running", total=1, available=0), False),
        (_pj("k", "retrying", total=0), False),
        (_pj("k", "canceled", total=0, finished=NOW - timedelta(days=31)), True),
        (_pj("k", "succeeded", total=0, finished=NOW - timedelta(days=29)), False),
        (_pj("k", "succeeded", total=0, finished=(NOW - timedelta(days=31)).replace(tzinfo=None)), True),  # SQLite: naive
    ],
)
def test_one_job_decides_its_partition(job, removable):
    got = removable_partitions({"selftest_jobs": ["k"]}, [job], now=NOW, empty_job_grace=GRACE)
    assert got == ({"selftest_jobs": ["k"]} if removable else {})


def test_a_partition_shared_by_jobs_goes_only_when_all_release_it_and_orphans_stay():
    jobs = [
        _pj("shared", "succeeded", total=1, available=0),
        _pj("shared", "queued"),  # a reprocess of the same subject is waiting
        _pj("done", "succeeded", total=1, available=0),
        _pj("done", "failed", total=3, available=0),
        _pj("other-def", "succeeded", total=1, available=0, kind="unregistered"),
    ]
    existing = {"selftest_jobs": ["shared", "done", "orphan"], "videos": ["other-def"]}
    assert removable_partitions(existing, jobs, now=NOW, empty_job_grace=GRACE) == {"selftest_jobs": ["done"]}


def test_registry_registers_and_refuses_a_second_definition_for_a_kind(monkeypatch):
    from pipelines.maintenance import retention

    monkeypatch.setattr(retention, "PARTITIONS_BY_KIND", dict(retention.PARTITIONS_BY_KIND))
    register_partitions("video_notes", "videos")
    register_partitions("video_notes", "videos")  # idempotent
    with pytest.raises(ValueError):
        register_partitions("video_notes", "other")
    assert kinds_by_partitions_def()["videos"] == ["video_notes"]
    assert ttl_for_kind(7) == timedelta(days=7) and ttl_for_kind(0) is None and ttl_for_kind(None) is None


def test_every_writer_takes_artifact_ttls_from_one_setting_per_kind():
    # Settings.retention_ttl is what store_artifact callers, the upload routes and the bulk rows use.
    settings = Settings(retention_days_input=3, retention_days_output=0, retention_days_archive=-1)
    assert settings.retention_ttl("input") == timedelta(days=3)
    assert settings.retention_ttl("output") is None and settings.retention_ttl("archive") is None
    assert settings.retention_ttl("no_such_kind") is None
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert expiry(settings.retention_ttl("input"), now=now) == datetime(2024, 1, 4, tzinfo=UTC)
    assert expiry(None, now=now) is None


# --- against a real database, object store and Dagster instance ------------------------------


def _job(session, ws, status, *, finished_days_ago=None):
    job = submit_job(session, workspace_id=ws, kind=KIND, payload={"n": uuid.uuid4().hex}).job
    if status != "queued":
        assert claim_job(session, job.id, run_id=f"run-{job.id.hex[:8]}")
    if status == "succeeded":
        assert succeed_job(session, job.id)
    elif status == "failed":
        assert fail_job(session, job.id, error_code="invalid_input", message="bad", retryable=False) == "failed"
    if finished_days_ago is not None:  # backdate the finish (test data only; status is untouched)
        session.execute(update(Job).where(Job.id == job.id).values(finished_at=utcnow() - timedelta(days=finished_days_ago)))
    return job


def _store(session, store, ws, job, name, ttl):
    return store_artifact(
        session, store, workspace_id=ws, kind="output", subject_id=job.id, name=name, chunks=[name.encode() * 10],
        job_id=job.id, ttl=ttl,
    )


@pytest.fixture
def world(engine, make_tenant, tmp_path):
    ws = make_tenant().workspace_id
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    with system_session(engine) as s:
        jobs = {
            "all_expired": _job(s, ws, "succeeded"),
            "partly_expired": _job(s, ws, "succeeded"),
            "running": _job(s, ws, "running"),
            "old_empty": _job(s, ws, "failed", finished_days_ago=40),
            "recent_empty": _job(s, ws, "succeeded"),
            "queued": _job(s, ws, "queued"),
        }
        arts = {
            "gone1": _store(s, store, ws, jobs["all_expired"], "a.txt", EXPIRED),
            "gone2": _store(s, store, ws, jobs["all_expired"], "b.txt", EXPIRED),
            "gone3": _store(s, store, ws, jobs["partly_expired"], "c.txt", EXPIRED),
            "kept": _store(s, store, ws, jobs["partly_expired"], "d.txt", FRESH),
            "gone4": _store(s, store, ws, jobs["running"], "e.txt", EXPIRED),
            "forever": _store(s, store, ws, jobs["recent_empty"], "f.txt", None),
        }
        arts = {name: (a.id, a.storage_key, a.size_bytes) for name, a in arts.items()}
        # "forever" has no TTL; make recent_empty truly artifact-less for the partition rule
        s.execute(update(Artifact).where(Artifact.id == arts["forever"][0]).values(job_id=None))
    store.delete(arts["gone2"][1])  # an object already missing (an interrupted earlier pass)
    return {"ws": ws, "store": store, "jobs": jobs, "arts": arts}


def _rows(engine, arts):
    with system_session(engine) as s:
        return {name: s.get(Artifact, art[0]) for name, art in arts.items()}


def test_purge_deletes_expired_objects_marks_rows_and_keeps_the_rest(engine, world, db_url):
    store, arts = world["store"], world["arts"]
    report = purge_expired_artifacts(engine, store, batch_size=2)
    rows = _rows(engine, arts)
    for name in ("gone1", "gone2", "gone3", "gone4"):
        assert not store.exists(arts[name][1])
        assert rows[name].status == "deleted" and rows[name].deleted_at is not None
    for name in ("kept", "forever"):
        assert store.exists(arts[name][1])
        assert rows[name].status == "available" and rows[name].deleted_at is None
    if db_url.startswith("sqlite"):  # PostgreSQL's database is shared by the session: check exact counts here
        assert (report.objects_deleted, report.missing_objects, report.rows_marked) == (3, 1, 4)
        assert report.bytes_freed == sum(arts[n][2] for n in ("gone1", "gone3", "gone4"))
        assert report.batches == 2 and report.failed_artifact_ids == []
    assert purge_expired_artifacts(engine, store).rows_marked == 0  # nothing left to do


def test_an_object_the_store_cannot_delete_is_reported_and_the_rest_still_purged(engine, world):
    class FlakyStore(LocalObjectStore):
        def delete(self, key: str) -> None:
            if key.endswith("/c.txt"):
                raise OSError("storage unavailable")
            super().delete(key)

    flaky = FlakyStore(root=world["store"].root)
    report = purge_expired_artifacts(engine, flaky, batch_size=1)
    rows = _rows(engine, world["arts"])
    assert str(world["arts"]["gone3"][0]) in report.failed_artifact_ids
    assert rows["gone3"].status == "available"
    assert {rows[n].status for n in ("gone1", "gone2", "gone4")} == {"deleted"}


def test_stale_partitions_of_finished_subjects_only(engine, world):
    purge_expired_artifacts(engine, world["store"])
    keys = {name: job.partition_key for name, job in world["jobs"].items()}
    existing = {PARTITIONS: [*keys.values(), "orphan-key"], "selftest_jobs": list(keys.values())}
    got = stale_partitions(engine, existing, empty_job_grace=GRACE)
    # the same keys under another kind's partitions definition are not ours to judge
    assert got == {PARTITIONS: sorted([keys["all_expired"], keys["old_empty"]])}


def test_retention_job_runs_against_a_real_instance(engine, world, db_url):
    keys = {name: job.partition_key for name, job in world["jobs"].items()}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS, [*keys.values(), "orphan-key"])
        result = retention_job.execute_in_process(
            instance=instance,
            resources={"database": DatabaseResource(url=db_url), "object_store": world["store"]},
        )
        assert result.success
        remaining = set(instance.get_dynamic_partitions(PARTITIONS))
    assert remaining == {keys[n] for n in ("partly_expired", "running", "recent_empty", "queued")} | {"orphan-key"}
    assert result.output_for_node("remove_stale_partitions_op") == {PARTITIONS: 2}
    purge_meta = {
        e.event_specific_data.metadata["objects_deleted"].value
        for e in result.all_node_events
        if e.is_successful_output and e.node_name == "purge_expired_artifacts_op"
    }
    if db_url.startswith("sqlite"):
        assert purge_meta == {3}
    assert not world["store"].exists(world["arts"]["gone1"][1])
    assert _rows(engine, world["arts"])["gone4"].status == "deleted"


def test_retention_schedule_is_daily_in_utc():
    assert retention_schedule.cron_schedule == "17 3 * * *"
    assert retention_schedule.execution_timezone == "UTC"
    assert retention_schedule.job_name == "retention_job"

"""Retention: expired objects deleted and rows marked, stale dynamic partitions removed, orphans swept."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import update

from pipelines.maintenance.retention import (
    PartitionJob,
    kinds_by_partitions_def,
    removable_partitions,
    ttl_for_kind,
)
from assets.maintenance.defs import retention_job, retention_schedule
from resources.dagster_resources import DatabaseResource
from resources.objectstore import artifact_key
from resources.objectstore_local import LocalObjectStore
from resources.settings import Settings
from tests.support.objectstores import moto_endpoint, s3_store  # noqa: F401 - fixtures
from warehouse.artifacts import expiry, store_artifact
from warehouse.db import make_engine, system_session, utcnow
from warehouse.jobs import claim_job, fail_job, submit_job, succeed_job
from warehouse.models import Artifact, Job
from warehouse.retention import purge_expired_artifacts, stale_partitions, sweep_orphans

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
GRACE = timedelta(days=30)
EXPIRED, FRESH = timedelta(days=-1), timedelta(days=30)
# A kind of our own: the PostgreSQL database is shared by the session, and queued "selftest" jobs
# left behind would be picked up by the selftest dispatch tests.
KIND, PARTITIONS = "retention_probe", "retention_probe_jobs"


@pytest.fixture(autouse=True)
def _probe_kind_listed(monkeypatch):
    from pipelines import products
    from pipelines.card import JobKind, ProductCard
    from pipelines.selftest.product import SelftestPayload

    probe = ProductCard("retention_probe", (JobKind(KIND, partitions=PARTITIONS, payload_model=SelftestPayload),))
    monkeypatch.setattr(products, "PRODUCTS", (*products.PRODUCTS, probe))


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


def test_partitions_come_from_the_product_cards_and_a_kind_is_named_once(monkeypatch):
    from pipelines import products

    assert kinds_by_partitions_def()["videos"] == ["video_notes"]
    assert kinds_by_partitions_def()["bulk_runs"] == ["documents_bulk"]
    assert kinds_by_partitions_def()[PARTITIONS] == [KIND]
    monkeypatch.setattr(products, "PRODUCTS", (*products.PRODUCTS, products.PRODUCTS[1]))
    with pytest.raises(ValueError, match="two product cards"):
        products.partitions_by_kind()
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
            "in_use": _store(s, store, ws, jobs["running"], "e.txt", EXPIRED),  # its job may still read it
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
    for name in ("gone1", "gone2", "gone3"):
        assert not store.exists(arts[name][1])
        assert rows[name].status == "deleted" and rows[name].deleted_at is not None
    for name in ("kept", "forever", "in_use"):
        assert store.exists(arts[name][1])
        assert rows[name].status == "available" and rows[name].deleted_at is None
    if db_url.startswith("sqlite"):  # PostgreSQL's database is shared by the session: check exact counts here
        assert (report.objects_deleted, report.missing_objects, report.rows_marked) == (2, 1, 3)
        assert report.bytes_freed == sum(arts[n][2] for n in ("gone1", "gone3"))
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
    assert {rows[n].status for n in ("gone1", "gone2")} == {"deleted"} and rows["in_use"].status == "available"


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
        assert purge_meta == {2}
    assert not world["store"].exists(world["arts"]["gone1"][1])
    assert _rows(engine, world["arts"])["in_use"].status == "available"


def test_retention_schedule_is_daily_in_utc():
    assert retention_schedule.cron_schedule == "17 3 * * *"
    assert retention_schedule.execution_timezone == "UTC"
    assert retention_schedule.job_name == "retention_job"


# --- orphaned objects: in the store, named by no artifact row --------------------------------

HOUR = timedelta(hours=1)


def _age(store: LocalObjectStore, key_or_path: str, hours: float) -> None:
    stamp = (utcnow() - timedelta(hours=hours)).timestamp()
    os.utime(os.path.join(store.root, *key_or_path.split("/")), (stamp, stamp))


def _orphan_key(ws, name):
    return artifact_key(ws, "output", uuid.uuid4(), uuid.uuid4(), name)


@pytest.fixture
def orphan_world(engine, make_tenant):
    """Rows for two objects (one available, one marked deleted whose object is still there) in a workspace."""
    ws = make_tenant().workspace_id

    def build(store):
        with system_session(engine) as s:
            job = _job(s, ws, "succeeded")
            live = _store(s, store, ws, job, "live.txt", FRESH)
            marked = _store(s, store, ws, job, "marked.txt", FRESH)
            s.execute(update(Artifact).where(Artifact.id == marked.id).values(status="deleted", deleted_at=utcnow()))
            keys = {"live": live.storage_key, "marked": marked.storage_key}
        keys["old_orphan"] = _orphan_key(ws, "crashed.pdf")
        keys["young_orphan"] = _orphan_key(ws, "uploading.bin")
        keys["not_an_artifact"] = "health/readyz-probe"
        store.put_bytes(keys["old_orphan"], b"o" * 700)
        store.put_bytes(keys["young_orphan"], b"y" * 5)
        store.put_bytes(keys["not_an_artifact"], b"p")
        return keys

    return build


def test_sweep_deletes_old_orphans_and_stale_temp_files_on_a_local_store(engine, orphan_world, tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    keys = orphan_world(store)
    for name in ("live", "marked", "old_orphan", "not_an_artifact"):
        _age(store, keys[name], 30)  # rows' objects are as old as the orphan: only the row saves them
    crashed_dir = tmp_path / "objects" / "ws" / "crashed-write"
    crashed_dir.mkdir()
    (crashed_dir / ".tmp-dead.part").write_bytes(b"t" * 11)
    _age(store, "ws/crashed-write/.tmp-dead.part", 30)
    (tmp_path / "objects" / "ws" / ".tmp-writing.part").write_bytes(b"still going")

    report = sweep_orphans(engine, store, now=utcnow(), grace=timedelta(hours=24), batch=2)

    assert not store.exists(keys["old_orphan"])
    for name in ("live", "marked", "young_orphan", "not_an_artifact"):
        assert store.exists(keys[name]), name
    assert not crashed_dir.exists() and (tmp_path / "objects" / "ws" / ".tmp-writing.part").exists()
    assert (report.objects_checked, report.orphans_deleted, report.bytes_freed) == (3, 1, 700)
    assert report.batches == 2 and report.failed == 0
    assert (report.incomplete_writes_removed, report.incomplete_bytes_freed) == (1, 11)
    again = sweep_orphans(engine, store, now=utcnow())
    assert (again.orphans_deleted, again.objects_checked) == (0, 2)


def test_sweep_on_s3_respects_the_grace_period_and_rows(engine, orphan_world, s3_store):
    store = s3_store
    keys = orphan_world(store)
    # moto cannot backdate LastModified: look from two days ahead instead.
    later = utcnow() + timedelta(days=2)
    within_grace = sweep_orphans(engine, store, now=later, grace=timedelta(days=3))
    assert (within_grace.objects_checked, within_grace.orphans_deleted) == (0, 0)
    assert all(store.exists(key) for key in keys.values())

    report = sweep_orphans(engine, store, now=later, grace=timedelta(hours=24))
    # Both orphans are past the grace period seen from two days ahead; the rows' objects stay.
    assert (report.objects_checked, report.orphans_deleted, report.bytes_freed) == (4, 2, 705)
    assert not store.exists(keys["old_orphan"]) and not store.exists(keys["young_orphan"])
    assert all(store.exists(keys[name]) for name in ("live", "marked", "not_an_artifact"))


def test_a_failing_delete_is_reported_and_the_sweep_goes_on(engine, make_tenant, tmp_path):
    class FlakyStore(LocalObjectStore):
        def delete(self, key: str) -> None:
            if key.endswith("/stuck.bin"):
                raise OSError("storage unavailable")
            super().delete(key)

    store = FlakyStore(root=str(tmp_path / "objects"))
    ws = make_tenant().workspace_id
    stuck, other = _orphan_key(ws, "stuck.bin"), _orphan_key(ws, "other.bin")
    for key in (stuck, other):
        store.put_bytes(key, b"x")
        _age(store, key, 48)
    report = sweep_orphans(engine, store, now=utcnow(), batch=1)
    assert report.failed == 1 and report.failed_keys == [stuck] and report.orphans_deleted == 1
    assert store.exists(stuck) and not store.exists(other)


def test_sweep_refuses_a_zero_grace_period(engine, tmp_path):
    with pytest.raises(ValueError):
        sweep_orphans(engine, LocalObjectStore(root=str(tmp_path)), now=utcnow(), grace=timedelta(0))


@pytest.mark.postgres
def test_sweep_refuses_a_role_that_row_level_security_scopes_to_a_tenant(fresh_postgres_database, tmp_path):
    # The API's role sees no artifact rows outside a tenant transaction: every object would look orphaned.
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    key = _orphan_key(uuid.uuid4(), "precious.bin")
    store.put_bytes(key, b"keep me")
    _age(store, key, 48)
    app_engine = make_engine(fresh_postgres_database.app_url)
    try:
        with pytest.raises(PermissionError):
            sweep_orphans(app_engine, store, now=utcnow())
    finally:
        app_engine.dispose()
    assert store.exists(key)


def test_retention_job_sweeps_orphans_after_the_purge(engine, world, db_url):
    store, ws = world["store"], world["ws"]
    for _, key, _ in world["arts"].values():
        if store.exists(key):
            _age(store, key, 48)  # old enough to be checked; their rows keep them
    orphan = _orphan_key(ws, "left-behind.docx")
    store.put_bytes(orphan, b"z" * 64)
    _age(store, orphan, 48)
    os.makedirs(os.path.join(store.root, "ws", "tmpdir"))
    with open(os.path.join(store.root, "ws", "tmpdir", ".tmp-x.part"), "wb") as fh:
        fh.write(b"half")
    _age(store, "ws/tmpdir/.tmp-x.part", 48)

    with dg.instance_for_test() as instance:
        result = retention_job.execute_in_process(
            instance=instance,
            resources={"database": DatabaseResource(url=db_url), "object_store": store},
        )
    assert result.success
    swept = result.output_for_node("sweep_orphaned_objects_op")
    # gone1/gone3 were purged first (gone2 was already missing); kept, forever and in_use remain, with rows.
    assert swept["objects_checked"] == 4 and swept["orphans_deleted"] == 1 and swept["bytes_freed"] == 64
    assert (swept["incomplete_writes_removed"], swept["incomplete_bytes_freed"]) == (1, 4)
    assert swept["grace_hours"] == 24 and swept["failed"] == 0
    metadata = next(
        e.event_specific_data.metadata
        for e in result.all_node_events
        if e.is_successful_output and e.node_name == "sweep_orphaned_objects_op"
    )
    assert metadata["orphans_deleted"].value == 1 and metadata["bytes_freed"].value == 64
    assert not store.exists(orphan)
    assert store.exists(world["arts"]["kept"][1]) and store.exists(world["arts"]["forever"][1])


def test_orphan_grace_is_a_setting(monkeypatch):
    assert Settings().orphan_grace_hours == 24
    monkeypatch.setenv("KILN_ORPHAN_GRACE_HOURS", "72")
    assert Settings().orphan_grace_hours == 72
    monkeypatch.setenv("KILN_ORPHAN_GRACE_HOURS", "0")
    with pytest.raises(ValueError):
        Settings()

"""Durability per batch: ``ObjectStore.put_many`` pays one barrier for a batch of objects, and a bulk
row is marked ``succeeded`` only after its batch's barrier returned; a batch whose barrier failed is
redone, never duplicated."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, update

import resources.objectstore_local as local_store
from pipelines.errors import PayloadTooLarge
from resources.dagster_resources import DatabaseResource
from resources.objectstore import PutItem
from resources.objectstore_local import LocalObjectStore
from resources.settings import get_settings
from tests.support.api import api  # noqa: F401 - fixture
from tests.support.documents_product import name_email_template, run_bulk_cycle
from tests.support.objectstores import moto_endpoint, store  # noqa: F401 - fixtures
from warehouse.db import system_session, utcnow
from warehouse.documents import BulkRow
from warehouse.models import Artifact, Job

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _items(n: int, prefix: str = "ws/a/intermediate/run") -> list[PutItem]:
    # One folder per object, as bulk rows are stored (ws/<ws>/intermediate/<run>/<artifact>/<name>).
    return [PutItem(f"{prefix}/obj{i}/row-{i}.docx", [b"row ", str(i).encode()], content_type=DOCX) for i in range(n)]


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_put_many_stores_every_object_in_order_on_every_backend(store):  # noqa: F811 - fixture
    """The contract both backends keep (S3 uses the default: its puts, a few at a time)."""
    items = _items(7, prefix="ws/b/intermediate/run")
    results = store.put_many(items)
    assert [r.key for r in results] == [i.key for i in items]
    for i, r in enumerate(results):
        assert store.get_bytes(r.key) == f"row {i}".encode() and r.size_bytes == len(f"row {i}")
    assert store.put_many([]) == []
    with pytest.raises(PayloadTooLarge):
        store.put_many([PutItem("ws/b/x/big/x.docx", [b"x" * 11], max_bytes=10)])
    assert not store.exists("ws/b/x/big/x.docx")


@pytest.fixture
def fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def test_put_many_makes_a_batch_durable_with_one_syncfs_and_no_fsync(tmp_path, monkeypatch, fsyncs):
    barriers: list[str] = []
    real = local_store._syncfs()
    assert real is not None, "this Linux machine has syncfs"
    monkeypatch.setattr(local_store, "_syncfs", lambda: lambda path: (barriers.append(path), real(path))[1])
    store = LocalObjectStore(root=str(tmp_path / "objects"))

    results = store.put_many(_items(20))

    assert barriers == [os.path.realpath(tmp_path / "objects")] and fsyncs == [], "one barrier, not 40 fsyncs"
    assert [r.key for r in results] == [i.key for i in _items(20)]
    for i, r in enumerate(results):
        data = f"row {i}".encode()
        assert store.get_bytes(r.key) == data and r.sha256 == hashlib.sha256(data).hexdigest() and r.size_bytes == len(data)
    assert _temp_files(tmp_path / "objects") == []


def test_without_syncfs_each_file_and_each_directory_is_fsynced_once(tmp_path, monkeypatch, fsyncs):
    monkeypatch.setattr(local_store, "_syncfs", lambda: None)
    synced_dirs: list[str] = []
    real_dir_sync = local_store._fsync_directory
    monkeypatch.setattr(local_store, "_fsync_directory", lambda d: (synced_dirs.append(d), real_dir_sync(d))[1])
    store = LocalObjectStore(root=str(tmp_path / "objects"))

    results = store.put_many(_items(10))

    object_dirs = {os.path.dirname(store._path(r.key)) for r in results}
    assert len(synced_dirs) == len(set(synced_dirs)), "every directory once per batch"
    assert object_dirs <= set(synced_dirs)
    # The folders makedirs created are durable too: every parent up to the root.
    assert os.path.realpath(tmp_path / "objects") in synced_dirs
    assert os.path.realpath(tmp_path / "objects" / "ws" / "a" / "intermediate" / "run") in synced_dirs
    assert len(fsyncs) == 10 + len(synced_dirs), "one fsync per file, one per directory"


def test_put_many_failing_mid_batch_raises_and_leaves_no_temp_file(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))

    def broken():
        yield b"partial"
        raise OSError("source lost")

    items = _items(3)
    with pytest.raises(OSError, match="source lost"):
        store.put_many([items[0], PutItem("ws/a/b/broken/x.docx", broken()), items[2]])
    with pytest.raises(PayloadTooLarge):
        store.put_many([PutItem("ws/a/b/big/x.docx", [b"x" * 11], max_bytes=10)])
    assert _temp_files(tmp_path / "objects") == []
    assert not store.exists("ws/a/b/broken/x.docx") and not store.exists("ws/a/b/big/x.docx")
    assert store.put_many([]) == []


def test_a_failed_barrier_leaves_its_batch_without_outcomes_and_the_retry_finishes_each_row_once(
        api, db_url, monkeypatch):
    """The batch's rows are committed only after its barrier; a barrier that fails (the disk said
    EIO) stops the run with rows 11-20 without an outcome, and the retry redoes exactly those."""
    monkeypatch.setenv("KILN_DOCUMENTS_ROWS_PER_COMMIT", "10")
    monkeypatch.setenv("KILN_DOCUMENTS_RENDER_PROCESSES", "1")
    get_settings.cache_clear()
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers, files={"file": ("t.docx", name_email_template(), DOCX)})
    assert r.status_code == 201, r.text
    rows = "name,email\r\n" + "".join(f"P{i},p{i}@example.test\r\n" for i in range(25))
    r = api.client.post(f"/v1/templates/{r.json()['id']}/bulk-runs", headers=owner.headers,
                        data={"filename_pattern": "{name}"}, files={"file": ("rows.csv", rows.encode(), "text/csv")})
    assert r.status_code == 202, r.text
    run = r.json()
    run_id = uuid.UUID(run["id"])

    def outcomes() -> int:
        with system_session(api.system) as s:
            return s.scalar(select(func.count()).select_from(BulkRow).where(BulkRow.bulk_run_id == run_id))

    seen_at_barrier: list[int] = []
    real = local_store._syncfs()

    def barrier(path: str) -> None:
        seen_at_barrier.append(outcomes())
        if len(seen_at_barrier) == 2:
            raise OSError(5, "Input/output error")
        real(path)

    monkeypatch.setattr(local_store, "_syncfs", lambda: barrier)
    resources = {"database": DatabaseResource(url=db_url), "object_store": api.store}
    try:
        with dg.instance_for_test() as instance:
            ((_, result),) = run_bulk_cycle(instance, resources)
            assert not result.success
            assert seen_at_barrier == [0, 10], "no row of a batch is recorded before its barrier"
            assert outcomes() == 10, "the batch whose barrier failed has no outcome"
            with system_session(api.system) as s:
                s.execute(update(Job).where(Job.id == uuid.UUID(run["job_id"])).values(next_attempt_at=utcnow()))
            monkeypatch.setattr(local_store, "_syncfs", lambda: real)
            ((_, result),) = run_bulk_cycle(instance, resources)
            assert result.success
    finally:
        get_settings.cache_clear()
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["status"], done["succeeded_rows"], done["failed_rows"]) == ("succeeded", 25, 0)
    with system_session(api.system) as s:
        per_row = s.scalar(select(func.count()).select_from(Artifact).where(
            Artifact.job_id == uuid.UUID(run["job_id"]), Artifact.kind == "intermediate"))
        assert per_row == 25
    assert len(list(Path(api.store.root).rglob("row-*.docx"))) == 25, "the redone batch overwrote its objects"

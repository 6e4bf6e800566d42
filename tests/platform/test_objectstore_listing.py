"""Listing objects and cleaning up incomplete writes, on the local directory and on S3 (moto over HTTP).

The retention job's orphan sweep (tests/platform/test_retention.py) stands on these.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.errors import StorageKeyError
from resources.objectstore import ObjectStore
from resources.objectstore_local import LocalObjectStore
from tests.support.objectstores import BUCKET, moto_endpoint, raw_s3, s3_store, store  # noqa: F401 - fixtures

# ------------------------------------------------------------------------------ listing


def _listed(store: ObjectStore, prefix: str, **kwargs) -> dict[str, int]:
    return {info.key: info.size_bytes for info in store.list_objects(prefix, **kwargs)}


def test_list_objects_returns_logical_keys_sizes_and_times_under_a_prefix(store):
    store.put_bytes("ws/a/one.txt", b"1")
    store.put_bytes("ws/a/two.txt", b"22")
    store.put_bytes("ws/ab/three.bin", b"333")
    store.put_bytes("health/probe", b"p")
    assert _listed(store, "ws/") == {"ws/a/one.txt": 1, "ws/a/two.txt": 2, "ws/ab/three.bin": 3}
    assert _listed(store, "ws/a/") == {"ws/a/one.txt": 1, "ws/a/two.txt": 2}
    assert _listed(store, "ws/a") == {"ws/a/one.txt": 1, "ws/a/two.txt": 2, "ws/ab/three.bin": 3}  # a plain prefix
    assert set(_listed(store, "")) == {"ws/a/one.txt", "ws/a/two.txt", "ws/ab/three.bin", "health/probe"}
    assert _listed(store, "nothing/here/") == {}
    for info in store.list_objects("ws/"):
        assert len(store.get_bytes(info.key)) == info.size_bytes  # the key reads back as listed
        assert info.modified_at.tzinfo is not None
        assert abs(info.modified_at - datetime.now(UTC)) < timedelta(hours=1)  # UTC, not local time


def test_list_objects_older_than_filters_by_modification_time(store):
    store.put_bytes("ws/t/obj", b"x")
    now = datetime.now(UTC)
    assert _listed(store, "ws/", older_than=now - timedelta(hours=1)) == {}
    assert _listed(store, "ws/", older_than=now + timedelta(hours=1)) == {"ws/t/obj": 1}
    naive_utc = (now + timedelta(hours=1)).replace(tzinfo=None)  # naive datetimes are UTC
    assert _listed(store, "ws/", older_than=naive_utc) == {"ws/t/obj": 1}


def test_list_objects_survives_deleting_while_listing(store):
    keys = {f"ws/{i}/sub/{j}/obj.bin" for i in range(3) for j in range(3)}
    for key in keys:
        store.put_bytes(key, b"d")
    seen = set()
    for info in store.list_objects("ws/"):
        seen.add(info.key)
        store.delete(info.key)  # the sweep deletes as it lists
    assert seen == keys
    assert _listed(store, "") == {}


@pytest.mark.parametrize("prefix", ["/etc", "../", "ws//", "ws/../", ".tmp-", "a\x00"])
def test_list_objects_refuses_unsafe_prefixes_at_the_call(store, prefix):
    with pytest.raises(StorageKeyError):
        store.list_objects(prefix)


def _age(path, hours: float) -> None:
    stamp = (datetime.now(UTC) - timedelta(hours=hours)).timestamp()
    os.utime(path, (stamp, stamp))


def test_local_listing_skips_temp_files_symlinks_and_foreign_names(tmp_path):
    root = tmp_path / "objects"
    store = LocalObjectStore(root=str(root))
    store.put_bytes("ws/a/kept.txt", b"k")
    (root / "ws/a/.tmp-abc.part").write_bytes(b"half")
    (root / "ws/a/.DS_Store").write_bytes(b"junk")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"s")
    os.symlink(outside, root / "ws/linked")
    os.symlink(outside / "secret.txt", root / "ws/a/linkfile")
    assert _listed(store, "ws/") == {"ws/a/kept.txt": 1}


def test_local_listing_ages_come_from_mtime(tmp_path):
    root = tmp_path / "objects"
    store = LocalObjectStore(root=str(root))
    store.put_bytes("ws/old/a", b"old")
    store.put_bytes("ws/new/b", b"new")
    _age(root / "ws/old/a", 48)
    assert _listed(store, "ws/", older_than=datetime.now(UTC) - timedelta(hours=24)) == {"ws/old/a": 3}


def test_local_stale_temp_files_are_found_and_removed_young_ones_kept(tmp_path):
    root = tmp_path / "objects"
    store = LocalObjectStore(root=str(root))
    (root / "ws/crashed/x").mkdir(parents=True)
    (root / "ws/crashed/x/.tmp-dead.part").write_bytes(b"12345")
    _age(root / "ws/crashed/x/.tmp-dead.part", 48)
    store.put_bytes("ws/live/obj", b"o")
    (root / "ws/live/.tmp-writing.part").write_bytes(b"in progress")
    _age(root / "ws/live/obj", 48)  # an old object next to a young temp file
    cutoff = datetime.now(UTC) - timedelta(hours=24)

    stale = list(store.stale_temp_files(cutoff))
    assert [(i.key, i.size_bytes) for i in stale] == [("ws/crashed/x/.tmp-dead.part", 5)]
    report = store.remove_incomplete_writes(cutoff)
    assert (report.removed, report.bytes_freed, report.failed) == (1, 5, 0)
    assert not (root / "ws/crashed").exists()  # emptied folders pruned
    assert (root / "ws/live/.tmp-writing.part").exists() and store.exists("ws/live/obj")
    assert store.remove_incomplete_writes(cutoff).removed == 0


def test_s3_listing_strips_the_prefix_and_ignores_neighbours(s3_store, raw_s3):
    s3_store.put_bytes("ws/a/b.txt", b"bb")
    raw_s3.put_object(Bucket=BUCKET, Key=f"{s3_store.prefix}x/ws/a/c.txt", Body=b"neighbour prefix")
    raw_s3.put_object(Bucket=BUCKET, Key=f"{s3_store.prefix}/ws/a/.hidden", Body=b"not a put_* key")
    assert _listed(s3_store, "ws/") == {"ws/a/b.txt": 2}


def test_s3_remove_incomplete_writes_aborts_only_stale_multipart_uploads(s3_store, raw_s3):
    key = f"{s3_store.prefix}/ws/crashed/video.mp4"
    upload_id = raw_s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    raw_s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * 1024)

    def uploads():
        return raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{s3_store.prefix}/").get("Uploads", [])

    # moto reports every upload as initiated in 2010 and cannot backdate one: move the cutoff instead.
    initiated = uploads()[0]["Initiated"]
    young = s3_store.remove_incomplete_writes(initiated - timedelta(hours=24))
    assert young.removed == 0 and len(uploads()) == 1
    stale = s3_store.remove_incomplete_writes(datetime.now(UTC) + timedelta(hours=1))
    assert (stale.removed, stale.failed) == (1, 0)
    assert uploads() == []

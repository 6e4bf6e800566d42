"""One contract for every object store: the local directory and S3 (moto's server over real HTTP).

Each S3 test gets its own key prefix in one shared bucket, so tests never see each other's objects.
moto does not verify presigned signatures or expiry, so link tampering is tested on Kiln's own
signed links (API), not here.
"""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
import uuid
from collections.abc import Iterator

import httpx
import pytest

from pipelines.errors import ObjectMissing, PayloadTooLarge, StorageKeyError
from resources.objectstore import content_disposition, validate_key
from resources.objectstore_factory import build_object_store
from resources.objectstore_local import LocalObjectStore
from resources.objectstore_s3 import S3ObjectStore
from resources.settings import Settings
from tests.support.objectstores import (  # noqa: F401 - fixtures
    BUCKET,
    DUMMY_CREDENTIALS,
    moto_endpoint,
    raw_s3,
    s3_store,
    store,
)

MiB = 1024 * 1024


def _pattern(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _chunked(data: bytes, chunk: int) -> Iterator[bytes]:
    for offset in range(0, len(data), chunk):
        yield data[offset : offset + chunk]


def _endless(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


def _stream_hash(chunks) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


# ------------------------------------------------------------------------------ the contract


def test_put_stream_reports_sha256_and_size_and_reads_back(store):
    data = _pattern(300_000)
    result = store.put_stream("ws/a/doc.bin", _chunked(data, 64 * 1024), content_type="application/octet-stream")
    assert result.key == "ws/a/doc.bin"
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size_bytes == len(data)
    assert store.get_bytes("ws/a/doc.bin") == data
    assert store.size("ws/a/doc.bin") == len(data)


def test_empty_object(store):
    result = store.put_bytes("empty", b"")
    assert (result.size_bytes, result.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert store.exists("empty") and store.size("empty") == 0
    assert store.get_bytes("empty") == b""


def test_put_replaces_an_existing_object(store):
    store.put_bytes("k", b"first version")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"


def test_large_object_streams_through_multipart_sized_parts(store):
    data = _pattern(11 * MiB + 12345)
    result = store.put_stream("big/video.mp4", _chunked(data, MiB))
    assert (result.sha256, result.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert _stream_hash(store.iter_range("big/video.mp4", chunk_size=MiB)) == (result.sha256, result.size_bytes)
    assert all(len(chunk) <= MiB for chunk in store.iter_range("big/video.mp4", chunk_size=MiB))


def test_size_limit_stops_the_stream_and_leaves_nothing(store):
    # An endless source proves the store stops reading at the limit instead of draining it.
    with pytest.raises(PayloadTooLarge):
        store.put_stream("too/big.bin", _endless(b"x" * MiB), max_bytes=6 * MiB + 1)
    assert not store.exists("too/big.bin")
    with pytest.raises(ObjectMissing):
        store.size("too/big.bin")


def test_size_limit_exactly_at_the_limit_is_accepted(store):
    assert store.put_bytes("exact", b"12345").size_bytes == 5
    assert store.put_stream("exact2", [b"123", b"45"], max_bytes=5).size_bytes == 5
    with pytest.raises(PayloadTooLarge):
        store.put_stream("exact3", [b"123", b"456"], max_bytes=5)
    assert not store.exists("exact3")


def test_failed_source_leaves_no_object_and_keeps_the_old_one(store):
    store.put_bytes("keep", b"old bytes")

    def broken() -> Iterator[bytes]:
        yield b"new"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream("keep", broken())
    assert store.get_bytes("keep") == b"old bytes"


# ------------------------------------------------------------------ the incremental writer (uploads)


def test_writer_streams_chunks_and_publishes_only_on_commit(store):
    data = _pattern(11 * MiB + 123)  # more than two S3 parts of the test part size
    writer = store.open_writer("ws/w/obj.bin", max_bytes=len(data))
    for piece in _chunked(data, 300_000):
        writer.write(piece)
        assert not store.exists("ws/w/obj.bin")  # nothing visible before commit
    assert writer.size_bytes == len(data)
    result = writer.commit()
    assert (result.sha256, result.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.get_bytes("ws/w/obj.bin") == data
    writer.abort()  # a no-op after commit
    assert store.exists("ws/w/obj.bin")


def test_writer_abort_leaves_nothing_and_keeps_the_old_object(store):
    store.put_bytes("ws/w/keep.bin", b"old")
    writer = store.open_writer("ws/w/keep.bin")
    writer.write(_pattern(6 * MiB))  # past one S3 part: a multipart upload is open
    writer.abort()
    writer.abort()  # idempotent
    assert store.get_bytes("ws/w/keep.bin") == b"old"
    fresh = store.open_writer("ws/w/new.bin")
    fresh.write(b"partial")
    fresh.abort()
    assert not store.exists("ws/w/new.bin")
    assert [o.key for o in store.list_objects("ws/w/")] == ["ws/w/keep.bin"]
    with pytest.raises(RuntimeError):
        fresh.write(b"more")


def test_writer_size_limit_aborts_at_the_write_that_passes_it(store):
    writer = store.open_writer("ws/w/limited.bin", max_bytes=6 * MiB)
    writer.write(b"a" * (6 * MiB))
    with pytest.raises(PayloadTooLarge):
        writer.write(b"b")
    assert not store.exists("ws/w/limited.bin")
    with pytest.raises(RuntimeError):
        writer.commit()


def test_local_writer_abort_removes_its_temp_file(tmp_path):
    store = LocalObjectStore(root=str(tmp_path))
    writer = store.open_writer("ws/x/y.bin")
    writer.write(b"partial")
    writer.abort()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_s3_writer_abort_leaves_no_multipart_upload(s3_store, raw_s3):
    writer = s3_store.open_writer("aborted.bin")
    writer.write(b"z" * (6 * MiB))
    assert raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=s3_store.prefix).get("Uploads", [])
    writer.abort()
    assert raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=s3_store.prefix).get("Uploads", []) == []
    assert raw_s3.list_objects_v2(Bucket=BUCKET, Prefix=s3_store.prefix)["KeyCount"] == 0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, slice(0, 1)),  # first byte
        (1000, 1999, slice(1000, 2000)),  # middle, inclusive end
        (4000, None, slice(4000, None)),  # to the end
        (4000, 999_999, slice(4000, None)),  # an end past the object is clamped, like HTTP
        (4095, 4095, slice(4095, 4096)),  # last byte
    ],
)
def test_ranged_reads(store, start, end, expected):
    data = _pattern(4096, seed=3)
    store.put_bytes("range/obj", data)
    assert b"".join(store.iter_range("range/obj", start, end, chunk_size=300)) == data[expected]


def test_ranged_read_is_chunked(store):
    data = _pattern(10_000)
    store.put_bytes("chunks", data)
    chunks = list(store.iter_range("chunks", 100, 9_099, chunk_size=1000))
    assert b"".join(chunks) == data[100:9100]
    assert len(chunks) >= 9 and all(len(c) <= 1000 for c in chunks)


def test_range_starting_past_the_end_yields_nothing(store):
    store.put_bytes("short", b"abc")
    assert list(store.iter_range("short", 10, None)) == []


def test_invalid_ranges_are_refused(store):
    store.put_bytes("r", b"abc")
    with pytest.raises(ValueError):
        store.iter_range("r", 2, 1)
    with pytest.raises(ValueError):
        store.iter_range("r", -1, None)


def test_missing_key_raises_object_missing_before_streaming(store):
    # Raised by the call itself, so an HTTP handler can answer 404 before starting a response.
    with pytest.raises(ObjectMissing):
        store.iter_range("no/such/object")
    with pytest.raises(ObjectMissing):
        store.size("no/such/object")
    assert store.exists("no/such/object") is False


def test_exists_delete_and_idempotent_delete(store):
    store.put_bytes("ws/x/a.txt", b"a")
    store.put_bytes("ws/x/b.txt", b"b")
    assert store.exists("ws/x/a.txt")
    store.delete("ws/x/a.txt")
    assert not store.exists("ws/x/a.txt")
    store.delete("ws/x/a.txt")  # retention is at-least-once
    store.delete("never/existed")
    assert store.get_bytes("ws/x/b.txt") == b"b"


ESCAPING_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../outside",
    "a/./b",
    "a//b",
    "a/",
    "a\\..\\b",
    "a\x00b",
    "a\nb",
    "C:/windows",
    ".hidden",
    ".tmp-123.part",
    "-rf",
    "x" * 2000,
]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_unsafe_keys_are_refused_everywhere(store, key):
    with pytest.raises(StorageKeyError):
        store.put_bytes(key, b"nope")
    with pytest.raises(StorageKeyError):
        store.iter_range(key)
    with pytest.raises(StorageKeyError):
        store.exists(key)
    with pytest.raises(StorageKeyError):
        store.delete(key)


# ------------------------------------------------------------------------------ local only


def test_local_refuses_symlinks_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"top secret")
    root = tmp_path / "objects"
    root.mkdir()
    os.symlink(outside, root / "linkdir")
    os.symlink(secret, root / "linkfile")
    store = LocalObjectStore(root=str(root))

    for key in ("linkdir/secret.txt", "linkfile", "linkdir/new.txt"):
        with pytest.raises(StorageKeyError):
            store.iter_range(key)
        with pytest.raises(StorageKeyError):
            store.put_bytes(key, b"overwrite")
        with pytest.raises(StorageKeyError):
            store.delete(key)
    assert secret.read_bytes() == b"top secret"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_local_writes_leave_no_temp_files_and_delete_prunes_empty_dirs(tmp_path):
    root = tmp_path / "objects"
    store = LocalObjectStore(root=str(root))
    with pytest.raises(PayloadTooLarge):
        store.put_stream("ws/1/input/s/a/big.bin", _endless(b"y" * 1000), max_bytes=10_000)
    store.put_bytes("ws/1/input/s/b/ok.bin", b"ok")
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert files == [str(root / "ws/1/input/s/b/ok.bin")]
    store.delete("ws/1/input/s/b/ok.bin")
    assert os.listdir(root) == []  # root stays; the empty per-artifact folders are gone


def test_local_streaming_memory_stays_flat(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    chunk = b"z" * MiB
    tracemalloc.start()
    try:
        result = store.put_stream("flat/big.bin", (chunk for _ in range(48)))
        _, written_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = _stream_hash(store.iter_range("flat/big.bin"))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == (result.sha256, 48 * MiB)
    assert written_peak < 8 * MiB, written_peak
    assert read_peak < 8 * MiB, read_peak


# ------------------------------------------------------------------------------ S3 only


def test_s3_large_put_is_multipart_and_streams(s3_store, raw_s3):
    produced = {"chunks": 0, "at_first_part": None}

    def source() -> Iterator[bytes]:
        for block in _chunked(_pattern(11 * MiB), MiB):
            produced["chunks"] += 1
            yield block

    def record_first_part(**_kwargs):
        if produced["at_first_part"] is None:
            produced["at_first_part"] = produced["chunks"]

    client = s3_store._s3()
    client.meta.events.register("before-call.s3.UploadPart", record_first_part)
    try:
        result = s3_store.put_stream("big.bin", source())
    finally:
        client.meta.events.unregister("before-call.s3.UploadPart", record_first_part)
    # The first 5 MiB part left while the source still had 6 MiB to give: nothing buffers the whole object.
    assert produced["at_first_part"] == 5 and produced["chunks"] == 11
    head = raw_s3.head_object(Bucket=BUCKET, Key=f"{s3_store.prefix}/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert head["ContentLength"] == result.size_bytes == 11 * MiB


def test_s3_small_put_is_a_single_put_with_content_type(s3_store, raw_s3):
    s3_store.put_bytes("small.json", b"{}", content_type="application/json")
    head = raw_s3.head_object(Bucket=BUCKET, Key=f"{s3_store.prefix}/small.json")
    assert "-" not in head["ETag"] and head["ContentType"] == "application/json"


def test_s3_size_limit_aborts_the_multipart_upload(s3_store, raw_s3):
    with pytest.raises(PayloadTooLarge):
        s3_store.put_stream("limited.bin", _endless(b"q" * MiB), max_bytes=6 * MiB)
    uploads = raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=s3_store.prefix).get("Uploads", [])
    assert uploads == []
    assert raw_s3.list_objects_v2(Bucket=BUCKET, Prefix=s3_store.prefix)["KeyCount"] == 0


def test_s3_keys_live_under_the_prefix(s3_store, raw_s3):
    s3_store.put_bytes("ws/a/b.txt", b"b")
    keys = [o["Key"] for o in raw_s3.list_objects_v2(Bucket=BUCKET, Prefix=s3_store.prefix)["Contents"]]
    assert keys == [f"{s3_store.prefix}/ws/a/b.txt"]


def test_s3_presigned_url_downloads_the_bytes_as_an_attachment(s3_store):
    data = _pattern(2048)
    s3_store.put_bytes("ws/a/report.pdf", data, content_type="application/octet-stream")
    url = s3_store.presigned_url(
        "ws/a/report.pdf", expires_in=300, filename='../../Résumé "final"\r\n.pdf', content_type="application/pdf"
    )
    assert url is not None and "X-Amz-Signature=" in url  # SigV4, not the legacy SigV2 form
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition == content_disposition("Résumé final.pdf")
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf" in disposition
    assert "\r" not in disposition and "\n" not in disposition and ".." not in disposition


def test_s3_presigned_url_refuses_bad_expiry(s3_store):
    with pytest.raises(ValueError):
        s3_store.presigned_url("k", expires_in=0, filename="a", content_type="text/plain")
    with pytest.raises(ValueError):
        s3_store.presigned_url("k", expires_in=8 * 24 * 3600, filename="a", content_type="text/plain")


def test_s3_part_size_below_the_s3_minimum_is_refused(moto_endpoint):
    with pytest.raises(ValueError):
        S3ObjectStore(bucket=BUCKET, endpoint_url=moto_endpoint, multipart_part_bytes=MiB, **DUMMY_CREDENTIALS)


def test_s3_store_repr_hides_the_secret_key():
    store = S3ObjectStore(bucket=BUCKET, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(store) and "s3cr3t-value" not in str(store)


# ------------------------------------------------------------------------------ helpers


def test_local_presigned_url_is_none(tmp_path):
    store = LocalObjectStore(root=str(tmp_path))
    assert store.presigned_url("a", expires_in=60, filename="a.txt", content_type="text/plain") is None


def test_validate_key_accepts_server_keys():
    assert validate_key("ws/0b6e/output/1f2a/9c3d/transcript.json") == "ws/0b6e/output/1f2a/9c3d/transcript.json"


def test_content_disposition_has_an_ascii_fallback():
    assert content_disposition("naïve.txt") == "attachment; filename=\"na_ve.txt\"; filename*=UTF-8''na%C3%AFve.txt"
    assert content_disposition("") == "attachment; filename=\"download\"; filename*=UTF-8''download"


def test_build_object_store_follows_settings(tmp_path, moto_endpoint, monkeypatch):
    local = build_object_store(Settings(home=tmp_path, object_store="local"))
    assert isinstance(local, LocalObjectStore) and local.root == str(tmp_path / "objects")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = build_object_store(
        Settings(object_store="s3", s3_bucket=BUCKET, s3_endpoint_url=moto_endpoint, s3_prefix=f"b-{uuid.uuid4().hex}")
    )
    assert isinstance(s3, S3ObjectStore)
    s3.put_bytes("through/settings.txt", b"hello")  # credentials come from the standard AWS chain
    assert s3.get_bytes("through/settings.txt") == b"hello"

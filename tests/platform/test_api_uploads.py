"""The shared upload helper, through a test-only route and at the raw ASGI level."""

from __future__ import annotations

import hashlib
import tracemalloc
import json
import uuid
from pathlib import Path

import anyio
import pytest
from fastapi import Depends, Request

from api.transport import streams_own_body
from api.uploads import sniff, stream_upload_to_store
from tests.support.api import api  # noqa: F401 - fixture

LIMIT = 4 * 1024 * 1024


def _add_upload_route(app, store, limit=LIMIT):
    @app.post("/test-only/upload", dependencies=[Depends(streams_own_body)])  # streams its body, like uploads
    async def upload(request: Request):
        key = f"ws/{uuid.uuid4()}/input/{uuid.uuid4()}/{uuid.uuid4()}/original"
        result = await stream_upload_to_store(request, store, key, max_bytes=limit)
        return {"key": result.key, "sha256": result.sha256, "size_bytes": result.size_bytes,
                "filename": result.filename, "content_type": result.content_type,
                "declared": result.declared_content_type, "fields": result.fields}


@pytest.fixture
def upload_client(api):
    _add_upload_route(api.app, api.store)
    return api


def test_streams_file_and_fields_hashing_as_it_goes(upload_client):
    api = upload_client
    data = b"%PDF-1.7\n" + bytes(range(256)) * 5000
    r = api.client.post("/test-only/upload", data={"title": "Q3 report", "lang": "en"},
                        files={"file": ("report.exe", data, "application/x-msdownload")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size_bytes"] == len(data)
    assert body["content_type"] == "application/pdf", "type comes from the bytes, not the name or the header"
    assert body["declared"] == "application/x-msdownload" and body["filename"] == "report.exe"
    assert body["fields"] == {"title": "Q3 report", "lang": "en"}
    assert api.store.get_bytes(body["key"]) == data


def test_oversized_upload_is_413_and_leaves_nothing(upload_client):
    api = upload_client
    r = api.client.post("/test-only/upload", files={"file": ("big.bin", b"x" * (LIMIT + 1))})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "payload_too_large"
    leftovers = [p for p in Path(api.store.root).rglob("*") if p.is_file()]
    assert leftovers == []


def test_missing_file_and_wrong_content_type(upload_client):
    api = upload_client
    r = api.client.post("/test-only/upload", data={"title": "no file"}, files={"other": ("a.txt", b"a")})
    assert r.status_code == 422 and r.json()["code"] == "missing_file"
    r = api.client.post("/test-only/upload", json={"file": "nope"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"


def test_a_large_upload_never_sits_in_memory(api):
    """24 MiB through the raw ASGI app in 256 KiB messages; Python's peak allocation stays small."""
    _add_upload_route(api.app, api.store, limit=64 * 1024 * 1024)
    boundary = "kilnboundary123"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    piece, pieces = bytes(range(256)) * 1024, 96  # 256 KiB x 96 = 24 MiB
    expected = hashlib.sha256()
    for _ in range(pieces):
        expected.update(piece)
    messages = [head] + [piece] * pieces + [tail]
    total = sum(len(m) for m in messages)
    sent: list[dict] = []

    async def call():
        index = 0

        async def receive():
            nonlocal index
            if index < len(messages):
                index += 1
                return {"type": "http.request", "body": messages[index - 1], "more_body": index < len(messages)}
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/test-only/upload", "raw_path": b"/test-only/upload", "query_string": b"",
                 "root_path": "", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                 "headers": [(b"host", b"testserver"), (b"content-length", str(total).encode()),
                             (b"content-type", f"multipart/form-data; boundary={boundary}".encode())]}
        await api.app(scope, receive, send)

    tracemalloc.start()
    try:
        anyio.run(call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent[0]["status"] == 200, sent
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["size_bytes"] == 256 * 1024 * pieces and body["sha256"] == expected.hexdigest()
    assert peak < 6 * 1024 * 1024, f"peak Python allocation {peak} bytes for a 24 MiB upload"


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"%PDF-1.4", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "video/webm"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"ID3\x04", "audio/mpeg"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b'{"a": 1}', "application/json"),
        ("name,age\nAnn,3\n".encode(), "text/plain"),
        ("héllo".encode()[:2], "text/plain"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_sniff(head, expected):
    assert sniff(head) == expected


def test_non_latin1_field_names_and_filenames_are_read_as_utf8(upload_client):
    """Browsers send part names and filenames as raw UTF-8 bytes; that must never be a server error."""
    api = upload_client
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="Āň"\r\n\r\nvalue\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="résumé-𰭌.txt"\r\n\r\nhello\r\n'
        f"--{boundary}--\r\n"
    ).encode("utf-8")
    response = api.client.post(
        "/test-only/upload", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "résumé-𰭌.txt"
    assert response.json()["fields"] == {"Āň": "value"}


def _stored_files(api) -> list[Path]:
    return [p for p in Path(api.store.root).rglob("*") if p.is_file()]


@pytest.mark.parametrize("cut", ["inside the file", "after the file part", "before the closing boundary",
                                 "inside the headers", "empty body"])
def test_a_body_cut_off_before_its_closing_boundary_is_400_and_stores_nothing(upload_client, cut):
    """A dropped connection or a proxy limit can end the body early; python-multipart does not
    notice on its own, and a partial file must never be stored as if it were complete."""
    api = upload_client
    boundary = "cutboundary"
    file_part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
                 ).encode() + b"0123456789" * 100
    bodies = {
        "inside the file": file_part[:-500],
        "after the file part": file_part + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nx"
        .encode(),
        "before the closing boundary": file_part + f"\r\n--{boundary}".encode(),
        "inside the headers": f'--{boundary}\r\nContent-Disposition: form-data; name="fi'.encode(),
        "empty body": b"",
    }
    r = api.client.post("/test-only/upload", content=bodies[cut],
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "malformed_multipart"
    assert _stored_files(api) == []


def test_a_complete_body_with_an_epilogue_is_accepted(upload_client):
    api = upload_client
    boundary = "epilogue"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n'
            f"--{boundary}--\r\ntrailing epilogue text").encode()
    r = api.client.post("/test-only/upload", content=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    assert api.store.get_bytes(r.json()["key"]) == b"hello"

"""Slow and vanishing clients against a real server (uvicorn on loopback, raw sockets).

Stalled uploads must not park worker threads (the pool every sync route, /healthz included,
shares); idle bodies time out with 408 and leave nothing stored; a client that hangs up mid-body
is logged and counted as a client abort, not a server error.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.support.api import api  # noqa: F401 - fixture

BOUNDARY = "kilnboundary"


@pytest.fixture
def server(api) -> Iterator[tuple[object, int]]:
    # The per-token/per-workspace upload caps (api/limits.py, tested in test_api_quotas_concurrency.py) are off here:
    # this test is about 80 stalled bodies reaching the server at once, not about refusing them.
    api.app.state.settings = api.settings.model_copy(update={
        "upload_idle_timeout_seconds": 4.0,
        "max_concurrent_uploads_per_token": 0,
        "max_concurrent_uploads_per_workspace": 0,
    })
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(api.app, log_config=None, lifespan="off", timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield api, port
    srv.should_exit = True
    thread.join(10)
    sock.close()


def _upload_head(token: str, *, declared: int = 50_000_000, path: str = "/v1/videos") -> bytes:
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 2048
    headers = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n")
    return headers.encode() + part


def _json_head(token: str) -> bytes:
    return (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"kind\": \"selftest\", ").encode()


def _stalled(port: int, payload: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(payload)
    return s


def _status(s: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest or b"{}")


def _stored_files(api) -> list:
    root = api.store._root()
    import pathlib

    return [p for p in pathlib.Path(root).rglob("*") if p.is_file()]


def test_stalled_uploads_do_not_take_the_api_down_and_time_out(server):
    api, port = server
    t = api.tenant()
    stalled = [_stalled(port, _upload_head(t.token)) for _ in range(60)]
    stalled += [_stalled(port, _json_head(t.token)) for _ in range(20)]
    time.sleep(0.8)  # every connection is inside its route, waiting for more body
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/jobs", headers=t.headers).status_code == 200
        r = client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "hi"}}, headers=t.headers)
        assert r.status_code == 202, r.text
        assert time.monotonic() - started < 2.5  # answered while 80 bodies stall
    for s in stalled:
        status, problem = _status(s)
        assert (status, problem.get("code")) == (408, "upload_timeout")
        s.close()
    assert _stored_files(api) == []  # the partial uploads were aborted


def _sample(api, name: str, **labels) -> float:
    return api.app.state.metrics.registry.get_sample_value(name, labels) or 0.0


def test_client_hanging_up_mid_upload_is_a_client_abort_and_keeps_nothing(server):
    api, port = server
    t = api.tenant()
    s = _stalled(port, _upload_head(t.token) + b"\x05" * 300_000)
    time.sleep(0.5)
    s.close()
    deadline = time.monotonic() + 5
    while "client_aborted" not in api.log.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in api.log.getvalue().splitlines() if line.startswith("{")]
    aborted = [line for line in lines if line.get("event") == "client_aborted"]
    assert len(aborted) == 1 and aborted[0]["level"] == "info" and aborted[0]["status"] == 499
    assert aborted[0]["route"] == "/v1/videos"
    text = api.log.getvalue()
    assert "unhandled_error" not in text and "Traceback" not in text and "Exception in ASGI" not in text
    assert _sample(api, "kiln_http_client_aborts_total", method="POST", route="/v1/videos") == 1
    assert _sample(api, "kiln_http_requests_total", method="POST", route="/v1/videos", status="499") == 1
    assert _sample(api, "kiln_http_requests_total", method="POST", route="/v1/videos", status="500") == 0
    assert _stored_files(api) == []


def test_client_hanging_up_mid_json_body_is_a_client_abort(server):
    api, port = server
    t = api.tenant()
    s = _stalled(port, _json_head(t.token))
    time.sleep(0.3)
    s.close()
    deadline = time.monotonic() + 5
    while _sample(api, "kiln_http_client_aborts_total", method="POST", route="/v1/jobs") < 1 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sample(api, "kiln_http_client_aborts_total", method="POST", route="/v1/jobs") == 1
    assert _sample(api, "kiln_http_requests_total", method="POST", route="/v1/jobs", status="499") == 1
    assert "unhandled_error" not in api.log.getvalue()

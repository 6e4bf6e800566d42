"""Concurrent-upload caps with real concurrency: a uvicorn server on loopback and slow raw-socket uploads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from api.limits import upload_slots
from tests.platform.test_api_quotas import BOUNDARY, TEMPLATE, multipart, stored_objects, used
from tests.support.api import api  # noqa: F401 - fixture


@contextmanager
def serve(app) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def stalled_upload(base: str, token: str, prefix: bytes) -> socket.socket:
    """Headers announcing a 10 MB body, then only ``prefix`` of it: the upload stays in flight."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall((f"POST /v1/templates HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 10000000\r\n\r\n")
                 .encode() + prefix)
    return sock


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def upload(base: str, tenant, body: bytes) -> httpx.Response:
    return httpx.post(f"{base}/v1/templates", content=body, timeout=30, headers={
        **tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_concurrent_uploads_are_capped_per_token_and_workspace_and_freed_on_disconnect(api):
    api.settings.max_concurrent_uploads_per_token = 2
    api.settings.max_concurrent_uploads_per_workspace = 3
    owner, elsewhere = api.tenant(), api.tenant()
    second, third = api.member(owner, "editor"), api.member(owner, "editor")
    slots = upload_slots(api.app)
    in_flight = ("workspace", str(owner.workspace_id))
    prefix = multipart(TEMPLATE)[:5000]  # part of a body: the server waits for the rest
    with serve(api.app) as base:
        sockets = [stalled_upload(base, owner.token, prefix), stalled_upload(base, owner.token, prefix)]
        wait_for(lambda: slots.in_flight(in_flight) == 2, "two uploads in flight")

        r = upload(base, owner, multipart(TEMPLATE))
        assert r.status_code == 429 and r.json()["code"] == "too_many_uploads", r.text
        assert int(r.headers["Retry-After"]) > 0
        assert upload(base, second, multipart(TEMPLATE)).status_code == 201, "another token has its own slots"

        sockets.append(stalled_upload(base, second.token, prefix))
        wait_for(lambda: slots.in_flight(in_flight) == 3, "three uploads in flight")
        r = upload(base, third, multipart(TEMPLATE))
        assert r.status_code == 429 and r.json()["code"] == "too_many_uploads", "the workspace's cap"
        assert upload(base, elsewhere, multipart(TEMPLATE)).status_code == 201, "other workspaces are not held up"

        before = used(api, owner)
        for sock in sockets:  # clients that go away mid-body give their slots back
            sock.close()
        wait_for(lambda: slots.in_flight(in_flight) == 0, "the slots of the disconnected uploads to be freed")
        # The bytes that did arrive count; nothing of the cut-off uploads is kept.
        assert used(api, owner) == before + 3 * len(prefix)
        kept = len(stored_objects(api, owner))
        assert upload(base, owner, multipart(TEMPLATE)).status_code == 201
        assert len(stored_objects(api, owner)) == kept + 1


def test_an_upload_that_times_out_gives_its_slot_back_and_counts_what_arrived(api):
    """The idle-body 408 (api/transport.py) and the upload caps (api/limits.py) together: with the caps on, a
    stalled upload answers 408, frees its slot, counts the bytes it sent and keeps nothing."""
    api.settings.max_concurrent_uploads_per_token = 1
    api.settings.upload_idle_timeout_seconds = 1.0
    owner = api.tenant()
    slots = upload_slots(api.app)
    token_slot = ("token", str(owner.token_id))
    prefix = multipart(TEMPLATE)[:5000]
    before, kept = used(api, owner), len(stored_objects(api, owner))
    with serve(api.app) as base:
        sock = stalled_upload(base, owner.token, prefix)
        try:
            wait_for(lambda: slots.in_flight(token_slot) == 1, "the upload to hold its slot")
            sock.settimeout(20)
            answer = sock.recv(65536).decode("latin-1")
        finally:
            sock.close()
        assert answer.startswith("HTTP/1.1 408") and "upload_timeout" in answer, answer[:300]
        wait_for(lambda: slots.in_flight(token_slot) == 0, "the timed-out upload's slot to be freed")
        assert used(api, owner) == before + len(prefix)
        assert len(stored_objects(api, owner)) == kept
        assert upload(base, owner, multipart(TEMPLATE)).status_code == 201  # the token may upload again

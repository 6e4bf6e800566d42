"""Request bodies: authenticated before a byte is read, non-multipart bodies capped (api/transport.py)."""

from __future__ import annotations

import json

import anyio
import pytest
from fastapi.routing import APIRoute

from api.deps import _principal
from api.transport import _depends_on, iter_routes
from tests.support.api import api  # noqa: F401 - fixture

HUGE = 300 * 1024 * 1024


def _call_asgi(app, method: str, path: str, headers: dict[str, str], body_chunks) -> tuple[int, dict, int]:
    """Drive the ASGI app directly; returns (status, problem body, body bytes the app pulled from receive)."""
    pulled = {"bytes": 0, "calls": 0}
    chunks = iter(body_chunks)
    sent: list[dict] = []

    async def receive():
        pulled["calls"] += 1
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled["bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body or b"null"), pulled["bytes"]


def _endless(size: int = 64 * 1024):
    while True:
        yield b"x" * size


def _body_routes(app) -> list[tuple[str, str]]:
    """Every authenticated route that accepts a body, with its path filled in."""
    routes = []
    for route in iter_routes(app.routes):
        if isinstance(route, APIRoute) and _depends_on(route.dependant, _principal):
            for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
                path = route.path_format
                for name in route.param_convertors:
                    path = path.replace("{" + name + "}", "00000000-0000-0000-0000-000000000001")
                routes.append((method, path))
    return routes


def test_every_authenticated_body_route_answers_401_without_reading_the_body(api):
    routes = _body_routes(api.app)
    assert ("POST", "/v1/jobs") in routes and ("POST", "/v1/videos") in routes and len(routes) >= 10
    bad = {"Authorization": "Bearer kiln_aaaaaaaaaaaa_" + "b" * 43}  # well formed, unknown
    for method, path in routes:
        for auth in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, bad):
            for content_type in ("application/json", "multipart/form-data; boundary=xyz"):
                headers = {"content-type": content_type, "content-length": str(HUGE), **auth}
                status, problem, pulled = _call_asgi(api.app, method, path, headers, _endless())
                assert (status, problem["code"], pulled) == (401, "unauthorized", 0), (method, path, auth)
        # chunked (no Content-Length) too
        status, _, pulled = _call_asgi(api.app, method, path, {"transfer-encoding": "chunked"}, _endless())
        assert (status, pulled) == (401, 0), (method, path)


def test_json_body_over_the_cap_is_413_from_content_length_without_reading(api):
    t = api.tenant()
    headers = {**t.headers, "content-type": "application/json", "content-length": str(HUGE)}
    status, problem, pulled = _call_asgi(api.app, "POST", "/v1/jobs", headers, _endless())
    assert (status, problem["code"], pulled) == (413, "payload_too_large", 0)


def test_chunked_json_body_is_cut_off_at_the_cap(api):
    t = api.tenant()
    cap = api.settings.max_json_body_bytes
    headers = {**t.headers, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, problem, pulled = _call_asgi(api.app, "POST", "/v1/jobs", headers, _endless())
    assert (status, problem["code"]) == (413, "payload_too_large")
    assert cap < pulled <= cap + 64 * 1024  # stopped at the first chunk past the cap


def test_json_cap_through_http_client_with_and_without_content_length(api):
    t = api.tenant()
    cap = api.settings.max_json_body_bytes
    big = json.dumps({"kind": "selftest", "payload": {"message": "x" * cap}}).encode()
    r = api.client.post("/v1/jobs", content=big, headers={**t.headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert r.headers["content-type"].startswith("application/problem+json")
    r = api.client.post("/v1/jobs", content=iter([big[:cap // 2], big[cap // 2:]]),
                        headers={**t.headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_valid_requests_still_work(api):
    t = api.tenant()
    r = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "hi"}}, headers=t.headers)
    assert r.status_code == 202, r.text
    r = api.client.post("/v1/jobs", content=iter([b'{"kind": "selftest", ', b'"payload": {"message": "hi"}}']),
                        headers={**t.headers, "content-type": "application/json"})
    assert r.status_code == 202, r.text
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 200
    # The signed download link (no bearer, token in the path) still serves bytes.
    artifact_id = api.artifact(t, b"hello bytes")
    link = api.client.post(f"/v1/artifacts/{artifact_id}/download-link", headers=t.headers)
    assert link.status_code == 200, link.text
    r = api.client.get(link.json()["url"].removeprefix("http://testserver"))
    assert r.status_code == 200 and r.content == b"hello bytes"
    # An empty-body POST without auth is still the dependency's plain 401.
    assert api.client.post("/v1/jobs").status_code == 401


def test_lowering_the_cap_applies_per_request(api):
    t = api.tenant()
    api.app.state.settings = api.settings.model_copy(update={"max_json_body_bytes": 50})
    r = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "x" * 100}}, headers=t.headers)
    assert r.status_code == 413


def test_early_answers_are_logged_under_their_route(api):
    headers = {"content-type": "application/json", "content-length": str(HUGE)}
    status, _, _ = _call_asgi(api.app, "POST", "/v1/jobs", headers, _endless())
    assert status == 401
    lines = [json.loads(line) for line in api.log.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request" and line.get("status") == 401]
    assert access and access[-1]["route"] == "/v1/jobs"


def _public_body_routes(app) -> set[tuple[str, str]]:
    return {(method, route.path_format) for route in iter_routes(app.routes)
            if isinstance(route, APIRoute) and not _depends_on(route.dependant, _principal)
            for method in route.methods & {"POST", "PUT", "PATCH"}}


def test_the_only_public_route_with_a_body_is_invitation_acceptance(api):
    # A new unauthenticated route that takes a body must be a deliberate decision: it gets the cap but no auth.
    assert _public_body_routes(api.app) == {("POST", "/v1/invitations/accept")}


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=xyz", "application/octet-stream", ""])
def test_the_cap_follows_the_route_not_the_claimed_content_type(api, content_type):
    """FastAPI reads a JSON route's whole body whatever its content type: only upload routes are exempt."""
    cap = api.settings.max_json_body_bytes
    t = api.tenant()
    for path, auth in (("/v1/invitations/accept", {}), ("/v1/jobs", t.headers), ("/v1/tokens", t.headers)):
        headers = {**auth, "transfer-encoding": "chunked", **({"content-type": content_type} if content_type else {})}
        status, problem, pulled = _call_asgi(api.app, "POST", path, headers, _endless())
        assert (status, problem["code"]) == (413, "payload_too_large"), path
        assert pulled <= cap + 64 * 1024, path
        headers = {**auth, "content-length": str(HUGE), **({"content-type": content_type} if content_type else {})}
        status, problem, pulled = _call_asgi(api.app, "POST", path, headers, _endless())
        assert (status, problem["code"], pulled) == (413, "payload_too_large", 0), path


def test_upload_routes_are_the_ones_exempt_from_the_json_cap(api):
    from api.transport import streams_own_body

    exempt = {(method, route.path_format) for route in iter_routes(api.app.routes)
              if isinstance(route, APIRoute) and _depends_on(route.dependant, streams_own_body)
              for method in route.methods}
    assert exempt == {("POST", "/v1/videos"), ("POST", "/v1/templates"), ("POST", "/v1/templates/{id}/versions"),
                      ("POST", "/v1/templates/{id}/bulk-runs"), ("POST", "/v1/characters/{id}/images")}
    # A multipart upload larger than the JSON cap still goes through on one of them.
    t = api.tenant()
    cap = api.settings.max_json_body_bytes
    r = api.client.post("/v1/videos", headers=t.headers, files={"file": ("big.bin", b"\0" * (cap + 4096))})
    assert r.status_code == 422 and r.json()["code"] == "invalid_media", r.text  # read whole, then judged


@pytest.mark.parametrize("error", ["locked", "pool"])
def test_a_database_failure_during_the_guards_token_check_is_503(api, monkeypatch, error):
    import sqlalchemy.exc

    import api.transport as transport

    def failing(*args, **kwargs):
        if error == "locked":
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))
        raise sqlalchemy.exc.TimeoutError("QueuePool limit reached")

    monkeypatch.setattr(transport, "_check_token", failing)
    t = api.tenant()
    headers = {**t.headers, "content-type": "application/json", "content-length": "20"}
    status, problem, pulled = _call_asgi(api.app, "POST", "/v1/jobs", headers, [b'{"kind": "selftest"}'])
    assert (status, problem["code"], pulled) == (503, "database_busy", 0)

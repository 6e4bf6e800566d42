"""Quotas and rate limits (api/limits.py, api/ratelimit.py, warehouse/usage.py) on SQLite and PostgreSQL.

The concurrency caps with real sockets are in test_api_quotas_concurrency.py.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from tests.support.corpus import PUBLIC
from api.ratelimit import token_rate_limiter
from tests.support.api import api, api_urls  # noqa: F401 - fixture
from warehouse import jobs as job_machine
from warehouse.db import make_engine, system_session, tenant_session
from warehouse.documents import Template
from warehouse.models import Artifact, UsageCounter
from warehouse.usage import UPLOAD_BYTES, add_usage, usage_value

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEMPLATE = (PUBLIC / "docx/order_tpl.docx").read_bytes()
BOUNDARY = "quota-boundary"


def multipart(data: bytes, filename: str = "letter.docx", content_type: str = DOCX) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post(api, tenant, url: str, body: bytes, *, chunked: bool = False):
    headers = {**tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if chunked:
        return anyio.run(_post_chunked, api.app, url, headers, body)
    return api.client.post(url, headers=headers, content=body)


async def _post_chunked(app, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    """No Content-Length, and the body in 4 KiB messages (TestClient would join them into one)."""
    async def chunks():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.post(url, headers=headers, content=chunks())


def used(api, tenant) -> int:
    with tenant_session(api.system, tenant.workspace_id) as s:
        return usage_value(s, tenant.workspace_id, UPLOAD_BYTES)


def stored_objects(api, tenant) -> list[Path]:
    root = Path(api.store.root) / "ws" / str(tenant.workspace_id)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def rows(api, tenant, model) -> int:
    with system_session(api.system) as s:
        return s.scalar(select(func.count()).select_from(model).where(model.workspace_id == tenant.workspace_id))


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).total_seconds()


def assert_429(r, code: str) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    return int(r.headers["Retry-After"])


def upload_routes(api, tenant) -> list[str]:
    """Every upload route: videos, templates, template versions and bulk runs."""
    r = post(api, tenant, "/v1/templates", multipart(TEMPLATE))
    assert r.status_code == 201, r.text
    template_id = r.json()["id"]
    return ["/v1/videos", "/v1/templates", f"/v1/templates/{template_id}/versions",
            f"/v1/templates/{template_id}/bulk-runs"]


# ---------------------------------------------------------------------------------------------- upload bytes

def test_usage_counts_the_received_bytes_of_kept_refused_and_duplicate_uploads(api):
    owner, other = api.tenant(), api.tenant()
    body = multipart(TEMPLATE)
    assert post(api, owner, "/v1/templates", body).status_code == 201
    assert used(api, owner) == len(body)
    junk = multipart(b"not a video at all" * 100, "clip.mp4", "video/mp4")
    r = post(api, owner, "/v1/videos", junk)
    assert r.status_code == 422 and r.json()["code"] == "invalid_media"
    # Refused uploads crossed the network and were checked: they count (or repeating them would cost nothing).
    assert used(api, owner) == len(body) + len(junk)
    assert used(api, other) == 0, "one workspace's uploads never count against another"

    usage = api.client.get("/v1/usage", headers=owner.headers).json()
    assert usage["counters"][UPLOAD_BYTES] == len(body) + len(junk)
    assert usage["limits"]["upload_bytes_per_day"] == api.settings.quota_upload_bytes_per_day
    assert usage["upload_bytes_remaining"] == api.settings.quota_upload_bytes_per_day - len(body) - len(junk)
    assert usage["day"] == datetime.now(UTC).strftime("%Y-%m-%d")
    assert api.client.get("/v1/usage", headers=other.headers).json()["counters"][UPLOAD_BYTES] == 0


def test_daily_upload_quota_refuses_once_reached_and_not_before(api):
    owner, other = api.tenant(), api.tenant()
    body = multipart(TEMPLATE)
    api.settings.quota_upload_bytes_per_day = 2 * len(body)  # exactly two uploads
    assert post(api, owner, "/v1/templates", body).status_code == 201
    assert post(api, owner, "/v1/templates", body).status_code == 201, "reaching the quota exactly is allowed"
    assert used(api, owner) == 2 * len(body)
    objects, templates = stored_objects(api, owner), rows(api, owner, Template)

    retry_after = assert_429(post(api, owner, "/v1/templates", body), "quota_exceeded")
    assert abs(retry_after - seconds_to_midnight()) < 5, "Retry-After: seconds until the next UTC midnight"
    assert stored_objects(api, owner) == objects and rows(api, owner, Template) == templates
    assert used(api, owner) == 2 * len(body), "refused before the body: nothing received, nothing counted"
    assert post(api, other, "/v1/templates", body).status_code == 201, "another workspace has its own quota"
    api.settings.quota_upload_bytes_per_day = 1000  # one upload larger than a whole day's quota: no use retrying
    r = post(api, other, "/v1/templates", multipart(b"\0" * 2000))
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_preflight_refuses_by_content_length_on_every_upload_route(api):
    owner = api.tenant()
    routes = upload_routes(api, owner)
    api.settings.quota_upload_bytes_per_day = used(api, owner) + 1000
    big = multipart(b"\0" * 5000)
    before_objects, before_artifacts = stored_objects(api, owner), rows(api, owner, Artifact)
    for url in routes:
        assert_429(post(api, owner, url, big), "quota_exceeded")
    assert stored_objects(api, owner) == before_objects and rows(api, owner, Artifact) == before_artifacts
    assert used(api, owner) == api.settings.quota_upload_bytes_per_day - 1000


def test_an_upload_crossing_the_quota_mid_stream_is_refused_and_keeps_nothing(api):
    owner = api.tenant()
    routes = upload_routes(api, owner)
    start = used(api, owner)
    api.settings.quota_upload_bytes_per_day = start + 20_000
    before_objects, before_artifacts = stored_objects(api, owner), rows(api, owner, Artifact)
    big = multipart(TEMPLATE + b"\0" * 100_000)
    r = post(api, owner, routes[1], big, chunked=True)
    assert_429(r, "quota_exceeded")
    assert stored_objects(api, owner) == before_objects and rows(api, owner, Artifact) == before_artifacts
    # What arrived until the refusal counts (at most one chunk past the quota): the quota is now spent.
    assert start + 20_000 < used(api, owner) <= start + 20_000 + 4096
    for url in routes:
        assert_429(post(api, owner, url, multipart(b"x"), chunked=True), "quota_exceeded")


def test_upload_slots_are_released_after_errors(api):
    owner = api.tenant()
    api.settings.max_concurrent_uploads_per_token = 1
    api.settings.max_concurrent_uploads_per_workspace = 1
    api.settings.max_upload_bytes = 10_000
    for _ in range(3):  # each refusal gives its slot back, or the next one would be 429 too_many_uploads
        assert post(api, owner, "/v1/videos", multipart(b"\0" * 20_000)).status_code == 413
        assert post(api, owner, "/v1/videos", multipart(b"junk")).status_code == 422
        assert post(api, owner, "/v1/templates", multipart(b"not a docx")).status_code == 422
        assert api.client.post("/v1/templates", headers=owner.headers, content=b"x").status_code == 415
    assert post(api, owner, "/v1/templates", multipart(TEMPLATE)).status_code == 201


# ---------------------------------------------------------------------------------------------- concurrent jobs

def test_active_jobs_per_kind_are_capped_at_submit(api):
    owner, other = api.tenant(), api.tenant()
    api.settings.quota_concurrent_jobs_per_kind = 2
    submit = [api.client.post("/v1/jobs", headers={**owner.headers, "Idempotency-Key": f"k{i}"},
                              json={"kind": "selftest", "payload": {"message": "hi"}}) for i in range(2)]
    assert [r.status_code for r in submit] == [202, 202]
    retry_after = assert_429(api.client.post("/v1/jobs", headers=owner.headers,
                                             json={"kind": "selftest", "payload": {"message": "hi"}}), "too_many_jobs")
    assert retry_after > 0
    replay = api.client.post("/v1/jobs", headers={**owner.headers, "Idempotency-Key": "k0"},
                             json={"kind": "selftest", "payload": {"message": "hi"}})
    assert replay.status_code == 200, "a retry of an accepted submit answers its job, whatever the cap"
    assert api.client.post("/v1/jobs", headers=other.headers,
                           json={"kind": "selftest", "payload": {"message": "hi"}}).status_code == 202
    assert api.client.get("/v1/usage", headers=owner.headers).json()["active_jobs"] == {"selftest": 2}
    assert api.client.post(f"/v1/jobs/{submit[0].json()['job_id']}/cancel", headers=owner.headers).status_code == 200
    assert api.client.post("/v1/jobs", headers=owner.headers,
                           json={"kind": "selftest", "payload": {"message": "hi"}}).status_code == 202


def test_upload_routes_that_queue_jobs_check_the_cap_before_the_body(api):
    from pipelines.documents.product import KIND as BULK_KIND
    from warehouse.video_notes import JOB_KIND as VIDEO_KIND

    owner = api.tenant()
    routes = upload_routes(api, owner)
    api.settings.quota_concurrent_jobs_per_kind = 1
    start = used(api, owner)
    with system_session(api.system) as s:
        for kind in (VIDEO_KIND, BULK_KIND):
            job_machine.submit_job(s, workspace_id=owner.workspace_id, kind=kind, payload={})
    assert_429(post(api, owner, routes[0], multipart(b"\0" * 5000)), "too_many_jobs")
    assert_429(post(api, owner, routes[3], multipart(b"a,b\n1,2\n" * 10_000, "rows.csv", "text/csv")),
               "too_many_jobs")
    assert used(api, owner) == start, "refused before the body was read"


# ---------------------------------------------------------------------------------------------- request rate

def test_requests_per_token_are_rate_limited_per_minute(api):
    owner = api.tenant()
    colleague = api.member(owner, "viewer")
    api.settings.rate_limit_requests_per_minute, api.settings.rate_limit_burst = 5, 0
    for _ in range(10):  # unauthenticated requests never touch a token's allowance
        assert api.client.get("/v1/usage", headers={"Authorization": "Bearer kiln_nope_nope"}).status_code == 401
    assert [api.client.get("/v1/usage", headers=owner.headers).status_code for _ in range(5)] == [200] * 5
    retry_after = assert_429(api.client.get("/v1/usage", headers=owner.headers), "rate_limited")
    assert 1 <= retry_after <= 60
    assert api.client.get("/v1/usage", headers=colleague.headers).status_code == 200, "per token"


def test_signed_download_links_are_not_counted_against_the_token(api):
    owner = api.tenant()
    api.settings.rate_limit_requests_per_minute, api.settings.rate_limit_burst = 2, 0
    link = api.client.post(f"/v1/artifacts/{api.artifact(owner)}/download-link", headers=owner.headers).json()["url"]
    assert [api.client.get(link.removeprefix("http://testserver")).status_code for _ in range(5)] == [200] * 5
    assert api.client.get("/v1/usage", headers=owner.headers).status_code == 200, "the link fetches used nothing"
    assert_429(api.client.get("/v1/usage", headers=owner.headers), "rate_limited")


def test_requests_per_token_burst(api):
    owner = api.tenant()
    api.settings.rate_limit_requests_per_minute, api.settings.rate_limit_burst = 0, 3
    assert [api.client.get("/v1/usage", headers=owner.headers).status_code for _ in range(3)] == [200] * 3
    # Fill the one-second window through the app's own limiter (microseconds, so a slow machine cannot spread the
    # hits over more than a second), then the next request over HTTP is refused.
    time.sleep(1.1)
    limiter = token_rate_limiter(api.app, api.settings)
    assert [limiter.hit(owner.token_id) for _ in range(3)] == [None] * 3
    assert_429(api.client.get("/v1/usage", headers=owner.headers), "rate_limited")
    time.sleep(1.1)
    assert api.client.get("/v1/usage", headers=owner.headers).status_code == 200, "the window moved on"


def test_usage_needs_the_workspace_read_scope(api):
    owner = api.tenant()
    viewer = api.member(owner, "viewer")
    assert api.client.get("/v1/usage", headers=viewer.headers).status_code == 200
    narrow = api.member(owner, "editor", scopes=["jobs:read"])
    r = api.client.get("/v1/usage", headers=narrow.headers)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"


# ---------------------------------------------------------------------------------------------- usage_counter

def test_parallel_increments_lose_no_update(request, db_url, make_tenant):
    """20 concurrent increments through the API's role (row-level security on PostgreSQL) add up exactly."""
    tenant, bystander = make_tenant(), make_tenant()
    engine = make_engine(api_urls(request, db_url), pool_size=20, max_overflow=5) \
        if not db_url.startswith("sqlite") else make_engine(db_url)
    try:
        def bump(n: int) -> None:
            with tenant_session(engine, tenant.workspace_id) as s:
                add_usage(s, tenant.workspace_id, UPLOAD_BYTES, n)

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(bump, range(1, 21)))
        with tenant_session(engine, tenant.workspace_id) as s:
            assert usage_value(s, tenant.workspace_id, UPLOAD_BYTES) == sum(range(1, 21))
        with tenant_session(engine, bystander.workspace_id) as s:
            assert usage_value(s, bystander.workspace_id, UPLOAD_BYTES) == 0
            # Row-level security: the other workspace's counter is invisible, not just filtered out.
            assert s.scalar(select(func.count()).select_from(UsageCounter)) == 0 or db_url.startswith("sqlite")
    finally:
        engine.dispose()


def test_counters_are_per_day(db_url, make_tenant, engine):
    tenant = make_tenant()
    with tenant_session(engine, tenant.workspace_id) as s:
        add_usage(s, tenant.workspace_id, UPLOAD_BYTES, 7, day="2026-01-01")
        add_usage(s, tenant.workspace_id, UPLOAD_BYTES, 5)
        assert usage_value(s, tenant.workspace_id, UPLOAD_BYTES, day="2026-01-01") == 7
        assert usage_value(s, tenant.workspace_id, UPLOAD_BYTES) == 5
    with pytest.raises(ValueError):
        with tenant_session(engine, tenant.workspace_id) as s:
            add_usage(s, tenant.workspace_id, UPLOAD_BYTES, -1)


def test_reprocess_resume_and_retry_failed_check_the_job_cap(api):
    from pipelines.documents.product import KIND as BULK_KIND
    from tests.support.documents_product import CSV_DIR, name_email_template
    from warehouse.documents import BulkRun
    from warehouse.models import Job
    from warehouse.video_notes import JOB_KIND as VIDEO_KIND

    owner = api.tenant()
    video = api.client.post("/v1/videos", headers=owner.headers, files={
        "file": ("v.mp4", (PUBLIC / "video/example_no_audio.mp4").read_bytes(), "video/mp4")}).json()
    template_id = api.client.post("/v1/templates", headers=owner.headers, files={
        "file": ("letter.docx", name_email_template(), DOCX)}).json()["id"]
    run = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=owner.headers, data={"format": "docx"},
                          files={"file": ("p.csv", (CSV_DIR / "mailmerge_database_with_BOM.csv").read_bytes(),
                                          "text/csv")}).json()
    with system_session(api.system) as s:  # both finished (a failed row to retry), and one other active job each
        for job_id in (video["job_id"], run["job_id"]):
            s.get(Job, uuid.UUID(job_id)).status = "failed"
        s.get(BulkRun, uuid.UUID(run["id"])).failed_rows = 1
        for kind in (VIDEO_KIND, BULK_KIND):
            job_machine.submit_job(s, workspace_id=owner.workspace_id, kind=kind, payload={})
    api.settings.quota_concurrent_jobs_per_kind = 1
    routes = [f"/v1/videos/{video['id']}/reprocess", f"/v1/bulk-runs/{run['id']}/resume",
              f"/v1/bulk-runs/{run['id']}/retry-failed"]
    for url in routes:
        assert_429(api.client.post(url, headers=owner.headers), "too_many_jobs")
    api.settings.quota_concurrent_jobs_per_kind = 2
    assert [api.client.post(url, headers=owner.headers).status_code for url in routes[:2]] == [202, 202]

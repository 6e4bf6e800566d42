"""Text and time inputs that databases treat differently: NUL and other control characters
(PostgreSQL text cannot hold NUL), times with a UTC offset (SQLite compares times as UTC text),
and the download-link lifetime a caller may ask for. Run on both backends: each was a 500 or a
silently wrong answer on one of them only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DataError

from api.schemas import MAX_DOWNLOAD_LINK_SECONDS, PlainText
from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import utcnow


def _problem(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.mark.parametrize("path, params", [
    ("/v1/jobs", {"kind": "a\x00b"}),
    ("/v1/jobs", {"status": "queued", "cursor": "\x00"}),
    ("/v1/workspace/members", {"limit": "1\x00"}),
])
def test_a_nul_in_the_query_string_is_a_400_problem(api, path, params):
    owner = api.tenant()
    body = _problem(api.client.get(path, params=params, headers=owner.headers), 400, "invalid_characters")
    assert body["request_id"]
    access = [line for line in api.log.getvalue().splitlines() if '"event": "request"' in line]
    assert '"status": 400' in access[-1], "the refusal is access-logged like any answer"


def test_a_nul_in_the_path_is_a_400_problem(api):
    owner = api.tenant()
    _problem(api.client.get("/v1/jobs/abc%00def", headers=owner.headers), 400, "invalid_characters")


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/tokens", {"name": "a\x00b"}),
    ("POST", "/v1/tokens", {"name": "line\nbreak"}),
    ("POST", "/v1/tokens", {"name": "ok", "scopes": ["jobs:read\x00"]}),
    ("POST", "/v1/workspace/members", {"email": "new@example.test", "display_name": "a\x00b"}),
    ("POST", "/v1/workspace/members", {"email": "a\x00b@example.test"}),
    ("POST", "/v1/jobs", {"kind": "self\x00test", "payload": {}}),
])
def test_control_characters_in_body_text_are_a_422_validation_error(api, method, path, body):
    owner = api.tenant()
    problem = _problem(api.client.request(method, path, json=body, headers=owner.headers), 422, "validation_error")
    assert "control characters" in problem["detail"]


def test_plain_text_keeps_ordinary_unicode():
    adapter = TypeAdapter(PlainText)
    assert adapter.validate_python("Zoë's CI token — 東京 🚀") == "Zoë's CI token — 東京 🚀"
    for bad in ("\x00", "a\tb", "a\rb", "\x7f"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_a_database_data_error_is_a_422_problem_not_a_500(api):
    """The safety net behind the validators: any value the database refuses is the client's input."""

    @api.app.get("/test-only/data-error")
    def boom():
        raise DataError("SELECT 1", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    _problem(api.client.get("/test-only/data-error"), 422, "invalid_value")
    assert "database_rejected_value" in api.log.getvalue()


def _jobs(api, headers, **params) -> list[str]:
    r = api.client.get("/v1/jobs", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["items"]]


@pytest.mark.parametrize("hours", [5, -5, 14, -12])
def test_created_after_and_before_honour_the_utc_offset(api, hours):
    """The same instant written with any offset selects the same jobs."""
    owner = api.tenant()
    job_id = str(api.job(owner))
    zone = timezone(timedelta(hours=hours))
    a_minute_ago = (utcnow() - timedelta(minutes=1)).astimezone(zone).isoformat()
    in_a_minute = (utcnow() + timedelta(minutes=1)).astimezone(zone).isoformat()
    assert _jobs(api, owner.headers, created_after=a_minute_ago) == [job_id]
    assert _jobs(api, owner.headers, created_before=in_a_minute) == [job_id]
    assert _jobs(api, owner.headers, created_after=in_a_minute) == []
    assert _jobs(api, owner.headers, created_before=a_minute_ago) == []


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_created_filter_with_no_utc_equivalent_is_a_422(api, value):
    owner = api.tenant()
    _problem(api.client.get("/v1/jobs", params={"created_after": value}, headers=owner.headers), 422,
             "validation_error")


def test_a_naive_created_filter_means_utc(api):
    owner = api.tenant()
    job_id = str(api.job(owner))
    naive = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert _jobs(api, owner.headers, created_after=naive) == [job_id]


def test_a_download_link_lives_at_most_a_day(api):
    viewer_of = api.tenant()
    viewer = api.member(viewer_of, "viewer")
    artifact_id = api.artifact(viewer_of)
    url = f"/v1/artifacts/{artifact_id}/download-link"
    r = api.client.post(url, json={"expires_in_seconds": MAX_DOWNLOAD_LINK_SECONDS}, headers=viewer.headers)
    assert r.status_code == 200, r.text
    expires_at = datetime.fromisoformat(r.json()["expires_at"])
    assert expires_at <= utcnow() + timedelta(seconds=MAX_DOWNLOAD_LINK_SECONDS)
    for too_long in (MAX_DOWNLOAD_LINK_SECONDS + 1, 7 * 24 * 3600, 10**30):
        r = api.client.post(url, json={"expires_in_seconds": too_long}, headers=viewer.headers)
        _problem(r, 422, "validation_error")

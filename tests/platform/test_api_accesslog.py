"""The access log line names the job a request touched.

Sync routes run in a worker thread with a copy of the request's context, so a ``bind_context``
inside the route never reaches the middleware's access line; the job id travels on request.state.
"""

from __future__ import annotations

import json

from tests.support.api import api  # noqa: F401 - fixture


def _access_lines(api) -> dict[str, dict]:
    lines = [json.loads(line) for line in api.log.getvalue().splitlines() if line.strip()]
    return {line["request_id"]: line for line in lines if line.get("event") == "request"}


def test_the_access_line_carries_the_job_id_of_job_routes(api):
    t = api.tenant()
    r = api.client.post("/v1/jobs", headers={**t.headers, "X-Request-ID": "submit-1"},
                        json={"kind": "selftest", "payload": {"message": "x"}})
    job_id = r.json()["id"]
    for request_id, method, path in [
        ("get-1", "GET", f"/v1/jobs/{job_id}"),
        ("events-1", "GET", f"/v1/jobs/{job_id}/events"),
        ("artifacts-1", "GET", f"/v1/jobs/{job_id}/artifacts"),
        ("cancel-1", "POST", f"/v1/jobs/{job_id}/cancel"),
        ("cancel-2", "POST", f"/v1/jobs/{job_id}/cancel"),  # 409: the job is known, so it is named
        ("list-1", "GET", "/v1/jobs"),
    ]:
        api.client.request(method, path, headers={**t.headers, "X-Request-ID": request_id})
    access = _access_lines(api)
    for request_id in ("submit-1", "get-1", "events-1", "artifacts-1", "cancel-1", "cancel-2"):
        assert access[request_id].get("job_id") == job_id, access[request_id]
    assert access["cancel-2"]["status"] == 409
    assert "job_id" not in access["list-1"], "a listing names no single job"


def test_a_foreign_job_id_is_not_logged_as_the_requests_job(api):
    t, other = api.tenant(), api.tenant()
    foreign = api.job(other)
    r = api.client.get(f"/v1/jobs/{foreign}", headers={**t.headers, "X-Request-ID": "foreign-1"})
    assert r.status_code == 404
    assert "job_id" not in _access_lines(api)["foreign-1"]

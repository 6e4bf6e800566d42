from __future__ import annotations

from sqlalchemy import select

from tests.support.api import api  # noqa: F401 - fixture
from warehouse import jobs as job_machine
from warehouse.db import system_session
from warehouse.models import AuditLog, Job


def _submit(api, t, payload=None, key=None, kind="selftest"):
    headers = dict(t.headers)
    if key:
        headers["Idempotency-Key"] = key
    return api.client.post("/v1/jobs", headers=headers, json={"kind": kind, "payload": payload or {"message": "hello"}})


def test_submit_answers_202_with_id_and_job_id(api):
    t = api.tenant()
    r = _submit(api, t)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"] == body["job_id"] and body["status"] == "queued" and body["progress"] == 0
    assert body["created_at"].endswith("Z")
    assert body["payload"] == {"message": "hello", "fail_times": 0, "fail_permanently": False}
    assert api.client.get(f"/v1/jobs/{body['id']}", headers=t.headers).json()["id"] == body["id"]


def test_idempotency_key_returns_the_first_job_or_409(api):
    t = api.tenant()
    first = _submit(api, t, key="order-42")
    again = _submit(api, t, key="order-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    conflict = _submit(api, t, {"message": "something else"}, key="order-42")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["code"] == "idempotency_conflict"
    # Keys are per workspace: another tenant's same key is a new job.
    other = _submit(api, api.tenant(), key="order-42")
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


def test_bad_payloads_are_422_validation_problems(api):
    t = api.tenant()
    for payload, kind in (({"message": ""}, "selftest"), ({"message": "x", "fail_times": -1}, "selftest"),
                          ({"message": "x", "extra": 1}, "selftest")):
        r = _submit(api, t, payload, kind=kind)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    r = _submit(api, t, kind="no_such_kind")
    assert r.status_code == 422 and r.json()["code"] == "unknown_job_kind"
    r = api.client.post("/v1/jobs", headers=t.headers, content=b"not json", )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_keyset_pagination_returns_every_job_exactly_once(api):
    t = api.tenant()
    created = {_submit(api, t, {"message": f"m{i}"}).json()["id"] for i in range(23)}
    api.job(api.tenant())  # another tenant's job never shows up
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/jobs", headers=t.headers, params=params).json()
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 5 and len(seen) == 23 and set(seen) == created
    times = [j["created_at"] for j in api.client.get("/v1/jobs", headers=t.headers, params={"limit": 200}).json()["items"]]
    assert times == sorted(times, reverse=True)


def test_list_filters(api):
    t = api.tenant()
    ids = [_submit(api, t, {"message": f"m{i}"}).json()["id"] for i in range(3)]
    api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=t.headers)
    canceled = api.client.get("/v1/jobs", headers=t.headers, params={"status": "canceled"}).json()["items"]
    assert [j["id"] for j in canceled] == [ids[0]]
    assert api.client.get("/v1/jobs", headers=t.headers, params={"kind": "other"}).json()["items"] == []
    first_time = api.client.get(f"/v1/jobs/{ids[0]}", headers=t.headers).json()["created_at"]
    after = api.client.get("/v1/jobs", headers=t.headers, params={"created_after": first_time}).json()["items"]
    assert {j["id"] for j in after} == set(ids[1:])
    before = api.client.get("/v1/jobs", headers=t.headers, params={"created_before": first_time}).json()["items"]
    assert before == []
    r = api.client.get("/v1/jobs", headers=t.headers, params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    r = api.client.get("/v1/jobs", headers=t.headers, params={"status": "bogus"})
    assert r.status_code == 422


def test_cancel_events_and_audit(api):
    t = api.tenant()
    job_id = _submit(api, t).json()["id"]
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=t.headers)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    again = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=t.headers)
    assert again.status_code == 409 and again.json()["code"] == "job_not_cancelable"
    events = api.client.get(f"/v1/jobs/{job_id}/events", headers=t.headers).json()
    assert [(e["seq"], e["to_status"]) for e in events["items"]] == [(1, "queued"), (2, "canceled")]
    with system_session(api.system) as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.workspace_id == t.workspace_id)).all()
    assert [(a.action, a.target_id) for a in audit] == [("job.cancel", job_id)]


def test_progress_and_events_follow_the_state_machine(api):
    t = api.tenant()
    job_id = api.job(t)
    with system_session(api.system) as s:
        job_machine.claim_job(s, job_id, run_id="run-1")
        job_machine.set_progress(s, job_id, 40)
    body = api.client.get(f"/v1/jobs/{job_id}", headers=t.headers).json()
    assert (body["status"], body["progress"], body["attempt"], body["dagster_run_id"]) == ("running", 40, 1, "run-1")
    page = api.client.get(f"/v1/jobs/{job_id}/events", headers=t.headers, params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = api.client.get(f"/v1/jobs/{job_id}/events", headers=t.headers,
                          params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [e["seq"] for e in rest["items"]] == [2] and rest["next_cursor"] is None
    with system_session(api.system) as s:
        assert s.get(Job, job_id).status == "running"


def test_unknown_job_is_404_problem(api):
    t = api.tenant()
    r = api.client.get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=t.headers)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = api.client.get("/v1/jobs/not-a-uuid", headers=t.headers)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = api.client.get("/v1/nothing-here", headers=t.headers)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


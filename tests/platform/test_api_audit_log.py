"""``GET /v1/audit-log``: the workspace's own trail, newest first, filtered, paged; admins only."""

from __future__ import annotations

import uuid

from tests.support.api import api  # noqa: F401 - fixture


def _cancel_a_job(api, tenant) -> str:
    job = api.client.post("/v1/jobs", json={"kind": "selftest", "payload": {"message": "x"}}, headers=tenant.headers)
    assert job.status_code == 202, job.text
    assert api.client.post(f"/v1/jobs/{job.json()['job_id']}/cancel", headers=tenant.headers).status_code == 200
    return job.json()["job_id"]


def test_admins_read_their_workspaces_trail_newest_first_filtered_and_paged(api):
    owner, other = api.tenant(), api.tenant()
    jobs = [_cancel_a_job(api, owner) for _ in range(3)]
    _cancel_a_job(api, other)
    invited = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": "a@example.test"})
    assert invited.status_code == 201, invited.text

    everything = api.client.get("/v1/audit-log", headers=owner.headers).json()["items"]
    assert [e["action"] for e in everything] == ["member.invite", "job.cancel", "job.cancel", "job.cancel"]
    assert [e["target_id"] for e in everything[1:]] == list(reversed(jobs))  # newest first; the other workspace's
    assert all(e["actor_user_id"] == str(owner.user_id) for e in everything)  # entries are not there

    cancels = api.client.get("/v1/audit-log", params={"action": "job.cancel", "limit": 2}, headers=owner.headers).json()
    assert [e["target_id"] for e in cancels["items"]] == [jobs[2], jobs[1]] and cancels["next_cursor"]
    rest = api.client.get("/v1/audit-log", params={"action": "job.cancel", "limit": 2, "cursor": cancels["next_cursor"]},
                          headers=owner.headers).json()
    assert [e["target_id"] for e in rest["items"]] == [jobs[0]] and rest["next_cursor"] is None
    prefix = api.client.get("/v1/audit-log", params={"action": "member."}, headers=owner.headers).json()["items"]
    assert [e["action"] for e in prefix] == ["member.invite"]
    one = api.client.get("/v1/audit-log", params={"target_type": "job", "target_id": jobs[1]},
                         headers=owner.headers).json()["items"]
    assert [e["target_id"] for e in one] == [jobs[1]]
    nobody = api.client.get("/v1/audit-log", params={"actor_user_id": str(uuid.uuid4())}, headers=owner.headers)
    assert nobody.json()["items"] == []


def test_the_trail_is_for_admins_and_bad_filters_are_422(api):
    owner = api.tenant()
    editor = api.member(owner, "editor")
    r = api.client.get("/v1/audit-log", headers=editor.headers)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert api.client.get("/v1/audit-log", params={"cursor": "nonsense"}, headers=owner.headers).status_code == 422
    assert api.client.get("/v1/audit-log", params={"action": "a b"}, headers=owner.headers).status_code == 422
    assert api.client.get("/v1/audit-log", headers={}).status_code == 401

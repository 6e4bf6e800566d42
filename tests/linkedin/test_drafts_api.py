"""Drafts, personas and config packs through the API: lifecycle, approval rules, races, cross-tenant 404."""

from __future__ import annotations

import uuid

from pipelines.linkedin.drafts import content_sha256
from tests.support.linkedin_product import PACK, li  # noqa: F401 - fixture
from warehouse import linkedin_posting as posting
from warehouse.db import system_session, utcnow
from warehouse.linkedin_models import Draft


def _draft(li, tenant, text="Hello LinkedIn 1) plan (x) #tag"):
    r = li.client.post("/v1/drafts", headers=tenant.headers, json={"text": text})
    assert r.status_code == 201, r.text
    return r.json()


def test_draft_lifecycle_approval_records_the_sha_and_an_edit_voids_it(li):
    owner = li.tenant()
    editor = li.member(owner, "editor")
    draft = _draft(li, editor)
    assert draft["status"] == "draft" and draft["content_sha256"] == content_sha256(draft["text"])
    path = f"/v1/drafts/{draft['id']}"
    assert li.client.post(f"{path}/approve", headers=owner.headers).json()["code"] == "illegal_transition"
    assert li.client.post(f"{path}/submit", headers=editor.headers).json()["status"] == "in_review"
    assert li.client.post(f"{path}/approve", headers=editor.headers).status_code == 403  # editors do not approve
    approved = li.client.post(f"{path}/approve", headers=owner.headers).json()
    assert approved["status"] == "approved" and approved["approved_sha256"] == draft["content_sha256"]

    edited = li.client.patch(path, headers=editor.headers, json={"text": "Changed after approval"}).json()
    assert edited["status"] == "draft" and edited["approved_sha256"] is None and edited["revision"] == 2
    assert li.client.post(f"{path}/submit", headers=editor.headers).status_code == 200
    assert li.client.post(f"{path}/reject", headers=owner.headers).json()["status"] == "rejected"


def test_authors_cannot_approve_their_own_draft_and_stale_approvals_are_refused(li):
    owner = li.tenant()
    draft = _draft(li, owner)
    path = f"/v1/drafts/{draft['id']}"
    li.client.post(f"{path}/submit", headers=owner.headers)
    r = li.client.post(f"{path}/approve", headers=owner.headers)
    assert r.status_code == 403 and r.json()["code"] == "approval_self"
    approver = li.member(owner, "editor", scopes=["drafts:approve"])
    stale = li.client.post(f"{path}/approve", headers=approver.headers, json={"content_sha256": "0" * 64})
    assert stale.status_code == 409 and stale.json()["code"] == "approval_stale"
    ok = li.client.post(f"{path}/approve", headers=approver.headers, json={"content_sha256": draft["content_sha256"]})
    assert ok.status_code == 200 and ok.json()["approved_by"] == str(approver.user_id)


def test_commentary_rules_are_checked_at_submit_with_a_located_issue(li):
    owner = li.tenant()
    too_long = _draft(li, owner, "x" * 3001)
    r = li.client.post(f"/v1/drafts/{too_long['id']}/submit", headers=owner.headers)
    assert r.status_code == 422 and r.json()["code"] == "commentary_too_long"
    bad_mention = _draft(li, owner, "Hi @[Ada](https://example.com)")
    r = li.client.post(f"/v1/drafts/{bad_mention['id']}/submit", headers=owner.headers)
    assert r.status_code == 422 and r.json()["code"] == "commentary_mention_invalid"


def test_approve_edit_race_never_leaves_an_approval_of_other_text(li):
    """The approver read revision 1; an edit lands before the approval's conditional update: it must fail."""
    owner = li.tenant()
    editor = li.member(owner, "editor")
    draft = _draft(li, editor, "Original text")
    li.client.post(f"/v1/drafts/{draft['id']}/submit", headers=editor.headers)
    draft_id = uuid.UUID(draft["id"])
    with system_session(li.api.system) as s:
        seen = s.get(Draft, draft_id)  # what the approver loaded
        s.expunge(seen)
    assert li.client.patch(f"/v1/drafts/{draft_id}", headers=editor.headers,
                           json={"text": "Edited meanwhile"}).status_code == 200
    with system_session(li.api.system) as s:
        seen = s.merge(seen, load=False)
        assert posting.approve_draft(s, seen, approver_id=owner.user_id, seen_revision=1, at=utcnow()) is False
    got = li.client.get(f"/v1/drafts/{draft_id}", headers=owner.headers).json()
    assert got["status"] == "draft" and got["approved_sha256"] is None

    # The other order: approved first, then edited -> the approval is void and the draft is back to draft.
    li.client.post(f"/v1/drafts/{draft_id}/submit", headers=editor.headers)
    assert li.client.post(f"/v1/drafts/{draft_id}/approve", headers=owner.headers).status_code == 200
    stale_edit = li.client.patch(f"/v1/drafts/{draft_id}", headers=editor.headers,
                                 json={"text": "Late edit", "revision": 1})
    assert stale_edit.status_code == 409 and stale_edit.json()["code"] == "draft_changed"
    edit = li.client.patch(f"/v1/drafts/{draft_id}", headers=editor.headers, json={"text": "Late edit"}).json()
    assert edit["status"] == "draft" and edit["approved_sha256"] is None


def test_schedule_rules_one_live_schedule_unschedule_and_edit_cancels(li):
    owner = li.tenant()
    approver = li.member(owner, "admin")
    account_id = li.connect(owner)
    draft = li.approved_draft(owner, approver, "Scheduled once")
    path = f"/v1/drafts/{draft['id']}/schedule"
    past = li.client.post(path, headers=owner.headers, json={"account_id": str(account_id),
                                                            "publish_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["code"] == "publish_at_past"
    scheduled = li.schedule(owner, draft["id"], account_id)
    assert scheduled["status"] == "scheduled" and scheduled["schedule"]["status"] == "scheduled"
    again = li.client.post(path, headers=owner.headers, json={"account_id": str(account_id),
                                                             "publish_at": scheduled["schedule"]["publish_at"]})
    assert again.status_code == 409
    unscheduled = li.client.delete(path, headers=owner.headers).json()
    assert unscheduled["status"] == "approved" and unscheduled["schedule"]["status"] == "canceled"
    li.schedule(owner, draft["id"], account_id)
    edited = li.client.patch(f"/v1/drafts/{draft['id']}", headers=owner.headers, json={"text": "New words"}).json()
    assert edited["status"] == "draft" and edited["schedule"]["status"] == "canceled"
    not_approved = li.client.post(path, headers=owner.headers, json={"account_id": str(account_id),
                                                                     "publish_at": scheduled["schedule"]["publish_at"]})
    assert not_approved.status_code == 409 and not_approved.json()["code"] == "draft_not_approved"
    canceled = li.approved_draft(owner, approver, "Cancel me")
    li.schedule(owner, canceled["id"], account_id)
    gone = li.client.post(f"/v1/drafts/{canceled['id']}/cancel", headers=owner.headers).json()
    assert gone["status"] == "canceled" and gone["schedule"]["status"] == "canceled"
    again = li.client.post(f"/v1/drafts/{canceled['id']}/cancel", headers=owner.headers)
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"


def test_personas_are_versioned_and_packs_publish_validate_channel_and_roll_back(li):
    owner = li.tenant()
    persona = li.client.post("/v1/personas", headers=owner.headers, json={"name": "CTO", "tone": "dry"}).json()
    assert persona["version"] == 1
    edited = li.client.patch(f"/v1/personas/{persona['id']}", headers=owner.headers, json={"tone": "warm"}).json()
    assert edited["version"] == 2 and edited["content"]["tone"] == "warm" and edited["version_id"] != persona["version_id"]
    v1 = li.client.get(f"/v1/personas/{persona['id']}?version=1", headers=owner.headers).json()
    assert v1["content"]["tone"] == "dry"
    li.client.post("/v1/personas", headers=owner.headers, json={"name": "CFO"})
    listed = {p["name"]: p for p in li.client.get("/v1/personas", headers=owner.headers).json()["items"]}
    assert listed["CTO"]["version"] == 2 and listed["CTO"]["content"]["tone"] == "warm" and listed["CFO"]["version"] == 1

    bad = li.client.post("/v1/config-packs/default/versions", headers=owner.headers,
                         json={"content": PACK | {"style": {"max_characters": 5000}}})
    assert bad.status_code == 422 and bad.json()["code"] == "pack_invalid"
    assert bad.json()["json_path"] == "$.style.max_characters"
    first = li.client.post("/v1/config-packs/default/versions", headers=owner.headers,
                           json={"content": PACK, "git_commit": "abc1234", "author": "genai", "channel": "production"})
    assert first.status_code == 201 and first.json()["version"] == 1
    same = li.client.post("/v1/config-packs/default/versions", headers=owner.headers, json={"content": PACK})
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    second = li.client.post("/v1/config-packs/default/versions", headers=owner.headers,
                            json={"content": PACK | {"description": "v2"}, "channel": "production"})
    assert second.json()["version"] == 2
    channel = li.client.get("/v1/config-packs/default/channels/production", headers=owner.headers).json()
    assert channel["version"] == 2 and [h["to_version"] for h in channel["history"]] == [1, 2]
    rolled = li.client.post("/v1/config-packs/default/channels/production/rollback", headers=owner.headers).json()
    assert rolled["version"] == 1 and rolled["history"][-1]["action"] == "rollback"

    service = li.member(owner, "editor", scopes=["drafts:write"])  # no packs:write
    assert li.client.post("/v1/config-packs/default/versions", headers=service.headers,
                          json={"content": PACK}).status_code == 403


def test_every_new_route_answers_404_for_another_workspaces_ids(li):
    owner, stranger = li.tenant(), li.tenant()
    approver = li.member(owner, "admin")
    account_id = li.connect(owner)
    draft = li.approved_draft(owner, approver, "Mine only")
    persona = li.client.post("/v1/personas", headers=owner.headers, json={"name": "P"}).json()
    li.client.post("/v1/config-packs/default/versions", headers=owner.headers,
                   json={"content": PACK, "channel": "production"})
    d, h = draft["id"], stranger.headers
    later = "2099-01-01T00:00:00Z"
    calls = [
        ("get", f"/v1/linkedin/accounts/{account_id}", None), ("delete", f"/v1/linkedin/accounts/{account_id}", None),
        ("get", f"/v1/drafts/{d}", None), ("patch", f"/v1/drafts/{d}", {"text": "x"}),
        ("post", f"/v1/drafts/{d}/submit", None), ("post", f"/v1/drafts/{d}/approve", None),
        ("post", f"/v1/drafts/{d}/reject", None), ("get", f"/v1/drafts/{d}/attempts", None),
        ("post", f"/v1/drafts/{d}/schedule", {"account_id": str(account_id), "publish_at": later}),
        ("delete", f"/v1/drafts/{d}/schedule", None), ("post", f"/v1/drafts/{d}/cancel", None),
        ("post", f"/v1/drafts/{d}/resolve", {"outcome": "failed"}),
        ("get", f"/v1/personas/{persona['id']}", None), ("patch", f"/v1/personas/{persona['id']}", {"tone": "x"}),
        ("get", "/v1/config-packs/default/versions/1", None),
        ("get", "/v1/config-packs/default/channels/production", None),
        ("put", "/v1/config-packs/default/channels/production", {"version": 1}),
        ("post", "/v1/config-packs/default/channels/production/rollback", None),
        ("post", "/v1/drafts/generate", {"persona_id": persona["id"], "topic": "t"}),
    ]
    for method, url, body in calls:
        r = li.client.request(method, url, headers=h, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
    # The stranger's own account cannot be used with the owner's draft either, and lists are empty.
    mine = li.tenant()
    other_draft = li.approved_draft(mine, li.member(mine, "admin"), "Theirs")
    r = li.client.post(f"/v1/drafts/{other_draft['id']}/schedule", headers=mine.headers,
                       json={"account_id": str(account_id), "publish_at": later})
    assert r.status_code == 404
    for url in ("/v1/linkedin/accounts", "/v1/drafts", "/v1/personas"):
        assert li.client.get(url, headers=h).json()["items"] == []


def test_the_draft_list_costs_the_same_queries_for_one_or_many_drafts(li):
    from tests.support.api import counted_statements

    owner = li.tenant()
    approver = li.member(owner, "admin")
    account_id = li.connect(owner)

    def count() -> int:
        with counted_statements(li.api.app.state.engine) as statements:
            assert li.client.get("/v1/drafts?limit=50", headers=owner.headers).status_code == 200
        return len(statements)

    li.schedule(owner, li.approved_draft(owner, approver, "one")["id"], account_id)
    one = count()
    for i in range(6):
        draft = li.approved_draft(owner, approver, f"more {i}")
        if i % 2:
            li.schedule(owner, draft["id"], account_id)
    assert count() == one
    items = li.client.get("/v1/drafts", headers=owner.headers).json()["items"]
    assert sum(1 for d in items if d["schedule"]) == 4

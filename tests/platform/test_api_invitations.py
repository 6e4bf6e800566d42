"""Adding a member by email invites the address: nothing about an account leaks until the invitee accepts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import system_session, utcnow
from warehouse.models import AppUser, Invitation, Membership


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.test"


def _existing_user_of_another_workspace(api) -> tuple[str, uuid.UUID]:
    other = api.tenant()
    with system_session(api.system) as s:
        user = s.get(AppUser, other.user_id)
        user.display_name = "Secret Name of Another Workspace"
        return user.email, user.id


def test_inviting_answers_only_what_was_typed_whether_or_not_the_address_has_an_account(api):
    owner = api.tenant()
    known_email, known_id = _existing_user_of_another_workspace(api)
    answers, typed = [], (known_email.upper(), _email())
    for email in typed:
        r = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": email, "role": "editor"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["email"] == email.lower() and body["status"] == "pending" and body["role"] == "editor"
        assert body["token"].startswith("kiln_inv_") and body["expires_at"]
        assert str(known_id) not in r.text and "Secret Name" not in r.text
        answers.append(sorted(k for k in body))
    assert answers[0] == answers[1]  # the same shape: an account's existence changes nothing
    listed = api.client.get("/v1/workspace/members", headers=owner.headers).json()["items"]
    invited = [m for m in listed if m["status"] == "invited"]
    assert sorted(m["email"] for m in invited) == sorted(e.lower() for e in typed)
    for m in invited:
        assert m["user_id"] is None and m["display_name"] is None and m["invitation_id"]
    r = api.client.get("/v1/workspace/members", headers=owner.headers)
    assert str(known_id) not in r.text and "Secret Name" not in r.text
    # The token is shown once: reading the invitation never shows it.
    one = api.client.get(f"/v1/workspace/invitations/{invited[0]['invitation_id']}", headers=owner.headers)
    assert one.status_code == 200 and "token" not in one.json()


def test_accepting_creates_the_membership_once_and_returns_a_working_token(api):
    owner = api.tenant()
    email = _email()
    inv = api.client.post("/v1/workspace/members", headers=owner.headers,
                          json={"email": email, "role": "editor", "display_name": "Ann"}).json()
    r = api.client.post("/v1/invitations/accept", json={"token": inv["token"]})
    assert r.status_code == 201, r.text
    accepted = r.json()
    assert accepted["workspace_id"] == str(owner.workspace_id) and accepted["role"] == "editor"
    me = api.client.get("/v1/workspace", headers={"Authorization": f"Bearer {accepted['token']}"})
    assert me.status_code == 200 and me.json()["role"] == "editor"
    members = api.client.get("/v1/workspace/members", headers=owner.headers).json()["items"]
    joined = [m for m in members if m["email"] == email]
    assert len(joined) == 1 and joined[0]["status"] == "active" and joined[0]["user_id"] == accepted["user_id"]
    assert joined[0]["display_name"] == "Ann"
    again = api.client.post("/v1/invitations/accept", json={"token": inv["token"]})
    assert again.status_code == 403 and again.json()["code"] == "invitation_invalid"
    status = api.client.get(f"/v1/workspace/invitations/{inv['id']}", headers=owner.headers).json()["status"]
    assert status == "accepted"


def test_unknown_revoked_and_expired_tokens_answer_one_code(api):
    owner = api.tenant()
    revoked = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": _email()}).json()
    expired = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": _email()}).json()
    assert api.client.delete(f"/v1/workspace/invitations/{revoked['id']}", headers=owner.headers).status_code == 204
    with system_session(api.system) as s:
        s.execute(update(Invitation).where(Invitation.id == uuid.UUID(expired["id"]))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    for token in (revoked["token"], expired["token"], "kiln_inv_" + "A" * 43):
        r = api.client.post("/v1/invitations/accept", json={"token": token})
        assert r.status_code == 403 and r.json()["code"] == "invitation_invalid", token
    bad = api.client.post("/v1/invitations/accept", json={"token": revoked["token"] + "\n"})
    assert bad.status_code == 422
    with system_session(api.system) as s:
        assert s.scalar(select(Membership.id).where(Membership.workspace_id == owner.workspace_id,
                                                    Membership.role != "owner")) is None
    # A lapsed invitation leaves the listing and the address can be invited again.
    listed = api.client.get("/v1/workspace/members", headers=owner.headers).json()["items"]
    assert [m["status"] for m in listed] == ["active"]
    again = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": expired["email"]})
    assert again.status_code == 201


def test_only_admins_invite_and_only_owners_invite_owners(api):
    owner = api.tenant()
    admin, editor = api.member(owner, "admin"), api.member(owner, "editor")
    assert api.client.post("/v1/workspace/members", headers=editor.headers,
                           json={"email": _email()}).status_code == 403
    r = api.client.post("/v1/workspace/members", headers=admin.headers, json={"email": _email(), "role": "owner"})
    assert r.status_code == 403
    inv = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": _email(), "role": "owner"})
    assert inv.status_code == 201
    assert api.client.delete(f"/v1/workspace/invitations/{inv.json()['id']}", headers=admin.headers).status_code == 403


def test_pending_invitations_are_capped(api):
    owner = api.tenant()
    api.settings.max_pending_invitations = 2
    for _ in range(2):
        assert api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": _email()}).status_code == 201
    r = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": _email()})
    assert r.status_code == 409 and r.json()["code"] == "too_many_invitations"


def test_members_and_invitations_page_together(api):
    owner = api.tenant()
    emails = [_email() for _ in range(5)]
    for email in emails:
        assert api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": email}).status_code == 201
    seen, cursor = [], None
    while True:
        page = api.client.get("/v1/workspace/members", headers=owner.headers,
                              params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["email"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 6 and set(emails) <= set(seen)


def test_another_workspaces_invitation_ids_are_404(api):
    owner, other = api.tenant(), api.tenant()
    inv = api.client.post("/v1/workspace/members", headers=other.headers, json={"email": _email()}).json()
    for method in ("GET", "DELETE"):
        r = api.client.request(method, f"/v1/workspace/invitations/{inv['id']}", headers=owner.headers)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert api.client.get(f"/v1/workspace/invitations/{inv['id']}", headers=other.headers).json()["status"] == "pending"


def test_an_existing_account_accepts_only_with_its_own_token(api):
    """The inviter sees the acceptance token: alone it must not let them join as an existing person."""
    owner = api.tenant()
    victim = api.tenant()  # has an account (and a token) in another workspace
    with system_session(api.system) as s:
        victim_email = s.get(AppUser, victim.user_id).email
    inv = api.client.post("/v1/workspace/members", headers=owner.headers,
                          json={"email": victim_email, "role": "editor"}).json()
    for headers in ({}, owner.headers, {"Authorization": "Bearer kiln_aaaaaaaaaaaa_" + "b" * 43}):
        r = api.client.post("/v1/invitations/accept", json={"token": inv["token"]}, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "invitation_invalid", r.text
        assert str(victim.user_id) not in r.text
    with system_session(api.system) as s:
        assert s.scalar(select(Membership).where(Membership.workspace_id == owner.workspace_id,
                                                 Membership.user_id == victim.user_id)) is None
    r = api.client.post("/v1/invitations/accept", json={"token": inv["token"]}, headers=victim.headers)
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == str(victim.user_id) and r.json()["workspace_id"] == str(owner.workspace_id)

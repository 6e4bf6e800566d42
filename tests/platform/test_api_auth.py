from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from api.security import LAST_USED_RESOLUTION, create_api_token
from resources.settings import DEFAULT_SECRET, Settings
from tests.support.api import SECRET, api  # noqa: F401 - fixture
from warehouse.db import system_session, utcnow
from warehouse.models import ApiToken, AuditLog


def _token_row(api, token: str) -> ApiToken:
    prefix = token.split("_")[1]
    with system_session(api.system) as s:
        return s.query(ApiToken).filter_by(prefix=prefix).one()


def test_valid_token_reaches_its_workspace(api):
    t = api.tenant()
    r = api.client.get("/v1/workspace", headers=t.headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == str(t.workspace_id)
    assert r.json()["role"] == "owner"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer kiln_000000000000_" + "A" * 43,
    ],
)
def test_missing_or_garbage_tokens_are_401_problems(api, header):
    headers = {"Authorization": header} if header else {}
    r = api.client.get("/v1/jobs", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "unauthorized" and body["status"] == 401 and body["type"].endswith("unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_wrong_secret_with_a_real_prefix_is_401(api):
    t = api.tenant()
    prefix = t.token.split("_")[1]
    forged = f"kiln_{prefix}_" + "B" * 43
    assert api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_revoked_token_is_401_and_revocation_is_audited(api):
    t = api.tenant()
    row = _token_row(api, t.token)
    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 200
    r = api.client.delete(f"/v1/tokens/{row.id}", headers=t.headers)
    assert r.status_code == 204
    r = api.client.get("/v1/jobs", headers=t.headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    with system_session(api.system) as s:
        actions = [a.action for a in s.query(AuditLog).filter_by(workspace_id=t.workspace_id)]
    assert "token.revoke" in actions


def test_expired_token_is_401(api):
    t = api.tenant()
    prefix = t.token.split("_")[1]
    with system_session(api.system) as s:
        s.query(ApiToken).filter_by(prefix=prefix).update({"expires_at": utcnow() - timedelta(seconds=1)})
    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 401


def test_last_used_at_is_stamped_once_per_resolution_and_listed(api):
    t = api.tenant()
    row = _token_row(api, t.token)
    assert row.last_used_at is None
    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 200
    first = _token_row(api, t.token)
    assert first.last_used_at is not None and first.updated_at == row.updated_at

    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 200
    assert _token_row(api, t.token).last_used_at == first.last_used_at  # within LAST_USED_RESOLUTION: no write

    with system_session(api.system) as s:
        s.query(ApiToken).filter_by(id=row.id).update(
            {"last_used_at": utcnow() - LAST_USED_RESOLUTION - timedelta(seconds=1)}
        )
    assert api.client.get("/v1/workspace", headers=t.headers).status_code == 200
    refreshed = _token_row(api, t.token).last_used_at
    assert refreshed is not None and refreshed.replace(tzinfo=None) > first.last_used_at.replace(tzinfo=None)

    listed = {i["name"]: i for i in api.client.get("/v1/tokens", headers=t.headers).json()["items"]}
    assert listed["test"]["last_used_at"] is not None


def test_a_rejected_token_is_not_stamped(api):
    t = api.tenant()
    prefix = t.token.split("_")[1]
    forged = f"kiln_{prefix}_" + "B" * 43
    assert api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert _token_row(api, t.token).last_used_at is None


def test_created_token_works_and_is_shown_once(api):
    t = api.tenant()
    r = api.client.post("/v1/tokens", headers=t.headers, json={"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 1})
    assert r.status_code == 201, r.text
    new = r.json()["token"]
    assert new.startswith("kiln_")
    listed = api.client.get("/v1/tokens", headers=t.headers).json()["items"]
    assert all("token" not in item for item in listed) and {i["name"] for i in listed} == {"test", "ci"}
    scoped = {"Authorization": f"Bearer {new}"}
    assert api.client.get("/v1/jobs", headers=scoped).status_code == 200
    r = api.client.post("/v1/jobs", headers=scoped, json={"kind": "selftest", "payload": {"message": "x"}})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    # A narrower token cannot mint a broader one.
    r = api.client.post("/v1/tokens", headers=scoped, json={"name": "escalate", "scopes": ["*"]})
    assert r.status_code == 403


def test_roles_are_enforced_per_route(api):
    owner = api.tenant()
    viewer = api.member(owner, "viewer")
    editor = api.member(owner, "editor")
    job_id = api.job(owner)
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=viewer.headers)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = api.client.post("/v1/jobs", headers=viewer.headers, json={"kind": "selftest", "payload": {"message": "x"}})
    assert r.status_code == 403
    r = api.client.post("/v1/workspace/members", headers=editor.headers, json={"email": "new@example.test"})
    assert r.status_code == 403
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=editor.headers).status_code == 200


def test_viewer_gets_404_not_403_for_a_foreign_job(api):
    owner = api.tenant()
    viewer = api.member(owner, "viewer")
    other_job = api.job(api.tenant())
    r = api.client.post(f"/v1/jobs/{other_job}/cancel", headers=viewer.headers)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_member_management_and_audit(api):
    owner = api.tenant()
    r = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": "Ann@Example.test", "role": "editor"})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "ann@example.test" and r.json()["status"] == "pending"
    assert api.client.post("/v1/workspace/members", headers=owner.headers,
                           json={"email": "ann@example.test"}).json()["code"] == "invitation_pending"
    accepted = api.client.post("/v1/invitations/accept", json={"token": r.json()["token"]})
    assert accepted.status_code == 201, accepted.text
    user_id = accepted.json()["user_id"]
    assert api.client.post("/v1/workspace/members", headers=owner.headers,
                           json={"email": "ann@example.test"}).json()["code"] == "already_member"
    r = api.client.patch(f"/v1/workspace/members/{user_id}", headers=owner.headers, json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    # The last owner can neither be demoted nor removed.
    r = api.client.patch(f"/v1/workspace/members/{owner.user_id}", headers=owner.headers, json={"role": "viewer"})
    assert r.status_code == 409 and r.json()["code"] == "last_owner"
    members = api.client.get("/v1/workspace/members", headers=owner.headers).json()["items"]
    assert {m["role"] for m in members} == {"owner", "admin"}
    assert api.client.delete(f"/v1/workspace/members/{user_id}", headers=owner.headers).status_code == 204
    with system_session(api.system) as s:
        actions = [a.action for a in s.query(AuditLog).filter_by(workspace_id=owner.workspace_id).order_by(AuditLog.id)]
    assert actions == ["member.invite", "member.add", "member.role_change", "member.remove"]


def test_a_user_in_two_workspaces_joins_by_invitation_as_the_same_user(api):
    a, b = api.tenant(), api.tenant()
    with system_session(api.system) as s:
        from warehouse.models import AppUser

        email = s.get(AppUser, b.user_id).email
    r = api.client.post("/v1/workspace/members", headers=a.headers, json={"email": email, "role": "viewer"})
    assert r.status_code == 201 and "user_id" not in r.json()  # nothing about the existing account
    # The existing account proves it is itself with one of its own tokens (from its other workspace).
    accepted = api.client.post("/v1/invitations/accept", json={"token": r.json()["token"]}, headers=b.headers).json()
    assert accepted["user_id"] == str(b.user_id) and accepted["workspace_id"] == str(a.workspace_id)


def test_production_refuses_the_default_secret():
    with pytest.raises(ValidationError, match="KILN_SECRET_KEY"):
        Settings(env="production", secret_key=DEFAULT_SECRET, database_url="postgresql://x@h/db")
    with pytest.raises(ValidationError):
        Settings(env="production", secret_key="short", database_url="postgresql://x@h/db")
    ok = Settings(env="production", secret_key="x" * 48, database_url="postgresql://x@h/db")
    assert ok.env == "production"
    # A real LinkedIn app with the emulator's (public) secret: refused; the emulator's own app stays allowed.
    with pytest.raises(ValidationError, match="KILN_LINKEDIN_CLIENT_SECRET"):
        Settings(env="production", secret_key="x" * 48, database_url="postgresql://x@h/db",
                 linkedin_client_id="86real4app")
    assert Settings(env="production", secret_key="x" * 48, database_url="postgresql://x@h/db",
                    linkedin_client_id="86real4app", linkedin_client_secret="s3cret").linkedin_client_id


def _token_with(api, tenant, *, scopes=None, expires_at=None) -> dict[str, str]:
    """Another token of ``tenant``'s user, with the given scopes and expiry."""
    with system_session(api.system) as s:
        _, token = create_api_token(s, tenant.workspace_id, tenant.user_id, "extra", scopes, expires_at,
                                    secret_key=SECRET)
    return {"Authorization": f"Bearer {token}"}


def _expiry(item: dict) -> datetime | None:
    value = item["expires_at"]
    return datetime.fromisoformat(value) if value else None


def test_a_token_never_mints_one_that_outlives_it(api):
    t = api.tenant()
    soon = utcnow() + timedelta(minutes=5)
    short = _token_with(api, t, expires_at=soon)
    for body in ({"name": "forever"}, {"name": "a year", "expires_in_days": 365}):
        r = api.client.post("/v1/tokens", headers=short, json=body)
        assert r.status_code == 201, r.text
        assert _expiry(r.json()) is not None and abs(_expiry(r.json()) - soon) < timedelta(seconds=1)
    # A shorter expiry than the caller's is kept as asked; a non-expiring caller sets no cap.
    long_lived = _token_with(api, t, expires_at=utcnow() + timedelta(days=30))
    r = api.client.post("/v1/tokens", headers=long_lived, json={"name": "a day", "expires_in_days": 1})
    assert _expiry(r.json()) < utcnow() + timedelta(days=1, seconds=5)
    r = api.client.post("/v1/tokens", headers=t.headers, json={"name": "open-ended"})
    assert r.status_code == 201 and r.json()["expires_at"] is None


def test_managing_tokens_needs_the_workspace_scopes(api):
    t = api.tenant()
    jobs_only = _token_with(api, t, scopes=["jobs:read", "jobs:write"])
    reader = _token_with(api, t, scopes=["workspace:read"])
    own_token_id = _token_row(api, t.token).id
    r = api.client.get("/v1/tokens", headers=jobs_only)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    assert api.client.get("/v1/tokens", headers=reader).status_code == 200
    for headers in (jobs_only, reader):
        r = api.client.post("/v1/tokens", headers=headers, json={"name": "x", "scopes": ["jobs:read"]})
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
        r = api.client.delete(f"/v1/tokens/{own_token_id}", headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    assert _token_row(api, t.token).revoked_at is None
    admin_scoped = _token_with(api, t, scopes=["workspace:admin"])
    assert api.client.post("/v1/tokens", headers=admin_scoped, json={"name": "x", "scopes": ["workspace:admin"]}
                           ).status_code == 201


def test_an_admin_cannot_revoke_an_owners_token_but_an_owner_can_revoke_anyones(api):
    owner = api.tenant("owner")
    admin = api.member(owner, "admin")
    other_owner = api.member(owner, "owner")
    editor = api.member(owner, "editor")
    owner_token, editor_token = _token_row(api, owner.token).id, _token_row(api, editor.token).id
    r = api.client.delete(f"/v1/tokens/{owner_token}", headers=admin.headers)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert _token_row(api, owner.token).revoked_at is None
    assert api.client.get("/v1/jobs", headers=owner.headers).status_code == 200
    assert api.client.delete(f"/v1/tokens/{editor_token}", headers=admin.headers).status_code == 204
    assert api.client.delete(f"/v1/tokens/{owner_token}", headers=other_owner.headers).status_code == 204
    assert api.client.get("/v1/jobs", headers=owner.headers).status_code == 401
    # Everyone may revoke their own token, an admin included.
    admin_token = _token_row(api, admin.token).id
    assert api.client.delete(f"/v1/tokens/{admin_token}", headers=admin.headers).status_code == 204


def test_stamping_a_token_never_needs_a_second_connection(api):
    """A request holds one pooled connection; the stamp must not wait for another (a burst would deadlock the pool)."""
    from warehouse.db import make_engine

    original = api.app.state.engine
    api.app.state.engine = make_engine(api.settings.resolved_database_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        t = api.tenant()
        r = api.client.get("/v1/jobs", headers=t.headers)
        assert r.status_code == 200, r.text
        assert _token_row(api, t.token).last_used_at is not None
    finally:
        api.app.state.engine.dispose()
        api.app.state.engine = original


def test_a_failed_stamp_never_fails_the_request(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("api.deps.record_token_use", broken)
    t = api.tenant()
    assert api.client.get("/v1/jobs", headers=t.headers).status_code == 200
    assert "token_use_not_recorded" in api.log.getvalue()

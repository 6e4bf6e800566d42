"""Connecting LinkedIn accounts through the API against the emulator over HTTP: state, tokens, reconnect."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select, update

from resources.objectstore import as_utc
from resources.linkedin_tokens import ACCESS, REFRESH, associated, build_cipher, unseal
from resources.secrets_envelope import DecryptionFailed
from tests.support.linkedin_product import li  # noqa: F401 - fixture
from warehouse import linkedin as store
from warehouse.db import system_session, utcnow
from warehouse.linkedin_models import LinkedInAccount, OAuthState
from warehouse.models import AuditLog


def _accounts(li):
    with system_session(li.api.system) as s:
        return s.scalar(select(func.count()).select_from(LinkedInAccount))


def _tokens(li, account_id: uuid.UUID) -> tuple[str, str | None]:
    with system_session(li.api.system) as s:
        account = s.get(LinkedInAccount, account_id)
        cipher = build_cipher(li.api.settings)
        access = unseal(cipher, store.sealed(account, "access_token"),
                        associated(account.workspace_id, account.id, ACCESS)).get_secret_value()
        sealed_refresh = store.sealed(account, "refresh_token")
        refresh = unseal(cipher, sealed_refresh, associated(account.workspace_id, account.id, REFRESH)
                         ).get_secret_value() if sealed_refresh else None
    return access, refresh


def test_connect_round_trip_stores_encrypted_tokens_and_never_shows_them(li):
    owner = li.tenant()
    url = li.start_connect(owner)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["openid profile w_member_social"] and query["redirect_uri"] == [
        li.api.settings.linkedin_redirect_uri]
    state = query["state"][0]
    with system_session(li.api.system) as s:
        (row,) = s.scalars(select(OAuthState)).all()
        assert row.state_hash != state and len(row.state_hash) == 64 and row.used_at is None
        assert as_utc(row.expires_at) - utcnow() <= timedelta(seconds=600)

    back = li.consent(url, member="Ada")
    r = li.client.get(back, follow_redirects=False)
    assert r.status_code == 303 and "outcome=connected" in r.headers["location"]
    page = li.client.get(r.headers["location"])
    assert page.status_code == 200 and "connected" in page.text

    listing = li.client.get("/v1/linkedin/accounts", headers=owner.headers)
    (account,) = listing.json()["items"]
    assert account["member_urn"] == "urn:li:person:Ada" and account["status"] == "connected"
    assert account["has_refresh_token"] is True and "w_member_social" in account["scopes"]

    access, refresh = _tokens(li, uuid.UUID(account["id"]))
    assert access and refresh
    with system_session(li.api.system) as s:
        raw = s.get(LinkedInAccount, uuid.UUID(account["id"]))
        assert access.encode() not in raw.access_token_ciphertext and raw.access_token_key_id
        audits = [a.detail for a in s.scalars(select(AuditLog))]
    everything = listing.text + r.headers["location"] + li.api.log.getvalue() + repr(audits)
    assert access not in everything and refresh not in everything


def test_state_replay_unknown_and_expired_state_are_refused_and_store_nothing(li):
    owner = li.tenant()
    back = li.consent(li.start_connect(owner))
    assert li.client.get(back, follow_redirects=False).status_code == 303
    assert _accounts(li) == 1

    replay = li.client.get(back, follow_redirects=False)
    assert replay.status_code == 400 and replay.json()["code"] == "oauth_state_invalid"
    unknown = li.client.get("/v1/linkedin/callback?code=x&state=never-issued", follow_redirects=False)
    assert unknown.status_code == 400 and unknown.json()["code"] == "oauth_state_invalid"

    other = li.tenant()
    expired_back = li.consent(li.start_connect(other), member="Late")
    with system_session(li.api.system) as s:
        s.execute(update(OAuthState).where(OAuthState.used_at.is_(None))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = li.client.get(expired_back, follow_redirects=False)
    assert expired.status_code == 400 and expired.json()["code"] == "oauth_state_invalid"
    assert _accounts(li) == 1  # nothing stored for the refused callbacks


def test_denied_consent_and_missing_scope_redirect_with_a_code_and_store_no_account(li):
    owner = li.tenant()
    denied = li.consent(li.start_connect(owner), decision="deny")
    r = li.client.get(denied, follow_redirects=False)
    assert r.status_code == 303 and "linkedin_consent_denied" in r.headers["location"]

    li.emulator_config(granted_scopes=["openid", "profile"])
    r = li.client.get(li.consent(li.start_connect(owner)), follow_redirects=False)
    assert r.status_code == 303 and "linkedin_scope_missing" in r.headers["location"]
    assert _accounts(li) == 0


def test_reconnect_updates_tokens_but_never_wipes_a_stored_refresh_token(li):
    owner = li.tenant()
    account_id = li.connect(owner, member="Grace")
    access1, refresh1 = _tokens(li, account_id)
    li.emulator_config(issue_refresh_tokens=False)  # the reconnect's answer has no refresh token
    assert li.connect(owner, member="Grace") == account_id
    access2, refresh2 = _tokens(li, account_id)
    assert access2 != access1 and refresh2 == refresh1
    assert len(li.client.get("/v1/linkedin/accounts", headers=owner.headers).json()["items"]) == 1


def test_a_ciphertext_moved_to_another_account_does_not_decrypt(li):
    owner = li.tenant()
    first, second = li.connect(owner, member="One"), li.connect(owner, member="Two")
    with system_session(li.api.system) as s:
        a, b = s.get(LinkedInAccount, first), s.get(LinkedInAccount, second)
        stolen = store.sealed(a, "access_token")
        cipher = build_cipher(li.api.settings)
        try:
            unseal(cipher, stolen, associated(b.workspace_id, b.id, ACCESS))
        except DecryptionFailed:
            pass
        else:  # pragma: no cover - the point of the test
            raise AssertionError("a ciphertext decrypted on another account")


def test_disconnect_destroys_tokens_pauses_schedules_and_audits(li):
    owner = li.tenant()
    approver = li.member(owner, "admin")
    account_id = li.connect(owner)
    draft = li.approved_draft(owner, approver, "Disconnect me")
    li.schedule(owner, draft["id"], account_id)
    r = li.client.delete(f"/v1/linkedin/accounts/{account_id}", headers=owner.headers)
    assert r.status_code == 204
    with system_session(li.api.system) as s:
        account = s.get(LinkedInAccount, account_id)
        assert account.status == "disconnected" and account.access_token_ciphertext is None
        assert account.refresh_token_ciphertext is None
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "linkedin.disconnected")) == {
            "schedules_paused": 1}
    got = li.client.get(f"/v1/drafts/{draft['id']}", headers=owner.headers).json()
    assert got["schedule"]["status"] == "paused"
    assert li.client.get("/v1/linkedin/accounts", headers=owner.headers).json()["items"] == []
    assert li.client.delete(f"/v1/linkedin/accounts/{account_id}", headers=owner.headers).status_code == 404


def test_viewers_cannot_connect_or_disconnect(li):
    owner = li.tenant()
    viewer = li.member(owner, "viewer")
    account_id = li.connect(owner)
    assert li.client.post("/v1/linkedin/connect", headers=viewer.headers).status_code == 403
    assert li.client.delete(f"/v1/linkedin/accounts/{account_id}", headers=viewer.headers).status_code == 403


def test_the_callback_holds_no_database_connection_while_linkedin_answers(li, monkeypatch):
    """The token exchange and userinfo calls can take seconds: the request gives its pool slot back first."""
    from api.connection_gate import pool_capacity
    from resources.linkedin_client import LinkedInClient

    owner = li.tenant()
    free, capacity = [], []
    real_exchange = LinkedInClient.exchange_code

    def exchange_watching_the_gate(self, code):
        for engine, gate in li.api.app.state.connection_gates.values():
            free.append(gate.semaphore.value)
            capacity.append(pool_capacity(engine))
        return real_exchange(self, code)

    monkeypatch.setattr(LinkedInClient, "exchange_code", exchange_watching_the_gate)
    li.connect(owner)
    assert free and free == capacity  # every slot was free while LinkedIn was being asked

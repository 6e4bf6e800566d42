"""The daily token upkeep: refresh what expires soon, needs_reauth without a refresh token, transient errors wait."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from assets.linkedin.posting import account_token
from assets.linkedin.tokens import refresh_expiring_tokens
from resources.linkedin_tokens import ACCESS
from resources.objectstore import as_utc
from tests.support.linkedin_product import li  # noqa: F401 - fixture
from warehouse.db import system_session, utcnow
from warehouse.linkedin_models import LinkedInAccount
from warehouse.models import AuditLog


def _expire_in(li, account_id, days: float) -> None:
    with system_session(li.api.system) as s:
        s.get(LinkedInAccount, account_id).access_token_expires_at = utcnow() + timedelta(days=days)


def test_expiring_tokens_are_refreshed_or_the_account_asks_for_reauth(li):
    owner = li.tenant()
    with_refresh = li.connect(owner, member="Refreshable")
    later = li.connect(owner, member="Later")
    li.emulator_config(issue_refresh_tokens=False)
    without_refresh = li.connect(owner, member="NoRefresh")
    for account_id, days in ((with_refresh, 3), (without_refresh, 3), (later, 30)):
        _expire_in(li, account_id, days)
    with li.posting_env() as env:
        before = account_token(env, owner.workspace_id, with_refresh, ACCESS).get_secret_value()
        assert refresh_expiring_tokens(env) == {"refreshed": 1, "needs_reauth": 1}
        after = account_token(env, owner.workspace_id, with_refresh, ACCESS).get_secret_value()
    assert after != before
    with system_session(li.api.system) as s:
        refreshed = s.get(LinkedInAccount, with_refresh)
        assert refreshed.status == "connected"
        assert as_utc(refreshed.access_token_expires_at) > utcnow() + timedelta(days=50)
        assert s.get(LinkedInAccount, without_refresh).status == "needs_reauth"
        assert s.get(LinkedInAccount, later).status == "connected"
        actions = {a.action for a in s.scalars(select(AuditLog))}
    assert {"linkedin.token_refreshed", "linkedin.needs_reauth"} <= actions
    items = {a["member_urn"]: a for a in li.client.get("/v1/linkedin/accounts", headers=owner.headers).json()["items"]}
    assert items["urn:li:person:NoRefresh"]["status"] == "needs_reauth"


def test_a_transient_refresh_error_never_disconnects(li):
    owner = li.tenant()
    account_id = li.connect(owner, member="Flaky")
    _expire_in(li, account_id, 2)
    with li.posting_env(linkedin_auth_base_url="http://127.0.0.1:9") as env:  # nothing listens there
        assert refresh_expiring_tokens(env) == {"retry_tomorrow": 1}
    with system_session(li.api.system) as s:
        assert s.get(LinkedInAccount, account_id).status == "connected"

"""The LinkedIn product through the real API and the real emulator over HTTP (holds no tests itself).

``li`` is the ``api`` environment (tests/support/api.py) whose settings point at an emulator started on a
loopback port for the test, with a keyring under the test's folder. Helpers play the member on the consent
page, approve and schedule drafts, and run the posting engine the way the asset does.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from assets.linkedin.posting import PostingEnv, post_schedule
from resources.linkedin_emulator import EmulatorConfig, EmulatorServer
from resources.linkedin_tokens import build_cipher, build_client
from resources.objectstore_local import LocalObjectStore
from resources.settings import Settings
from tests.support.api import SECRET, ApiEnv, Seeded, api_urls
from warehouse import linkedin_posting as posting
from warehouse.db import make_engine, system_session, tenant_session, utcnow

API_VERSION = "202611"
REDIRECT_URI = "http://testserver/v1/linkedin/callback"

PACK = {
    "schema_version": 1, "name": "default", "system_prompt": "You write LinkedIn posts.",
    "user_prompt_template": "Write about {topic} for {audience}.",
    "style": {"max_characters": 1200, "hashtags": {"min": 0, "max": 3}},
}


@dataclass
class LinkedInEnv:
    api: ApiEnv
    emulator: EmulatorServer
    db_url: str

    @property
    def client(self) -> TestClient:
        return self.api.client

    def tenant(self, role: str = "owner", scopes: list[str] | None = None) -> Seeded:
        return self.api.tenant(role, scopes)

    def member(self, tenant: Seeded, role: str, scopes: list[str] | None = None) -> Seeded:
        return self.api.member(tenant, role, scopes)

    # -- OAuth ------------------------------------------------------------------------------------------------
    def consent(self, authorization_url: str, *, member: str = "EmuMember1", decision: str = "allow") -> str:
        """Play the member on the emulator's consent page; the callback URL (path + query) LinkedIn sends back."""
        with httpx.Client(follow_redirects=False) as browser:
            assert browser.get(authorization_url).status_code == 200
            query = parse_qs(urlsplit(authorization_url).query)
            form = {k: v[0] for k, v in query.items() if k in {"client_id", "redirect_uri", "state", "scope"}}
            answer = browser.post(f"{self.emulator.base_url}/oauth/v2/authorization",
                                  data=form | {"member": member, "name": f"Member {member}", "decision": decision})
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT_URI)
        return location.removeprefix("http://testserver")

    def start_connect(self, tenant: Seeded) -> str:
        r = self.client.post("/v1/linkedin/connect", headers=tenant.headers)
        assert r.status_code == 200, r.text
        return r.json()["authorization_url"]

    def connect(self, tenant: Seeded, member: str = "EmuMember1") -> uuid.UUID:
        back = self.consent(self.start_connect(tenant), member=member)
        r = self.client.get(back, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert "outcome=connected" in r.headers["location"], r.headers["location"]
        return uuid.UUID(parse_qs(urlsplit(r.headers["location"]).query)["account_id"][0])

    # -- drafts -----------------------------------------------------------------------------------------------
    def approved_draft(self, author: Seeded, approver: Seeded, text: str) -> dict:
        r = self.client.post("/v1/drafts", headers=author.headers, json={"text": text})
        assert r.status_code == 201, r.text
        draft_id = r.json()["id"]
        assert self.client.post(f"/v1/drafts/{draft_id}/submit", headers=author.headers).status_code == 200
        r = self.client.post(f"/v1/drafts/{draft_id}/approve", headers=approver.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def schedule(self, tenant: Seeded, draft_id: str, account_id: uuid.UUID, *, in_seconds: float = 60) -> dict:
        at = (utcnow() + timedelta(seconds=in_seconds)).isoformat()
        r = self.client.post(f"/v1/drafts/{draft_id}/schedule", headers=tenant.headers,
                             json={"account_id": str(account_id), "publish_at": at})
        assert r.status_code == 201, r.text
        return r.json()

    # -- the worker side --------------------------------------------------------------------------------------
    def make_due(self) -> None:
        """Move every waiting schedule's time to now (instead of sleeping until publish_at)."""
        from sqlalchemy import update

        from warehouse.linkedin_models import Schedule

        with system_session(self.api.system) as s:
            s.execute(update(Schedule).where(Schedule.status == "scheduled")
                      .values(next_attempt_at=utcnow() - timedelta(seconds=1)))

    def claim(self, *, claim_timeout: timedelta = timedelta(minutes=10)) -> list[posting.Claim]:
        with system_session(self.api.system) as s:
            return posting.claim_due(s, now=utcnow(), limit=1000, claim_timeout=claim_timeout)

    @contextmanager
    def posting_env(self, **settings_overrides) -> Iterator[PostingEnv]:
        settings = self.api.settings.model_copy(update=settings_overrides)
        with build_client(settings) as client:
            yield PostingEnv(tenant=partial(tenant_session, self.api.system), system=partial(system_session, self.api.system),
                             client=client, cipher=build_cipher(settings), settings=settings)

    def run_claims(self, claims: list[posting.Claim], **settings_overrides) -> list[str]:
        with self.posting_env(**settings_overrides) as env:
            return [post_schedule(env, c.workspace_id, c.schedule_id, c.claims) for c in claims]

    def emulator_posts(self) -> dict:
        return httpx.get(f"{self.emulator.base_url}/_emulator/posts").json()

    def emulator_config(self, **values) -> None:
        assert httpx.post(f"{self.emulator.base_url}/_emulator/config", json=values).status_code in (200, 204)

    def queue_faults(self, *kinds: str) -> None:
        assert httpx.post(f"{self.emulator.base_url}/_emulator/faults", json={"queue": list(kinds)}).status_code == 200


@pytest.fixture
def li(request, db_url, tmp_path) -> Iterator[LinkedInEnv]:
    emulator = EmulatorServer(EmulatorConfig(current_version=API_VERSION, redirect_uris=(REDIRECT_URI,), hang_s=1.0,
                                             issue_refresh_tokens=True)).start()
    settings = Settings(
        env="test", home=tmp_path / "home", secret_key=SECRET, database_url=api_urls(request, db_url),
        objects_dir=tmp_path / "objects", api_base_url="http://testserver", metrics_database_url=db_url,
        linkedin_client_id=emulator.config.client_id, linkedin_client_secret=emulator.config.client_secret,
        linkedin_redirect_uri=REDIRECT_URI, linkedin_auth_base_url=emulator.base_url,
        linkedin_api_base_url=emulator.base_url, linkedin_api_version=API_VERSION,
        linkedin_read_timeout_seconds=0.5, keyring_path=tmp_path / "keys" / "keyring.json",
    )
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    log = io.StringIO()
    app = create_app(settings, store=store, configure_logs=False)
    from api.observability import configure_logging

    configure_logging(settings, stream=log)
    system = make_engine(db_url)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield LinkedInEnv(ApiEnv(app, client, settings, store, system, log), emulator, db_url)
    finally:
        system.dispose()
        app.state.engine.dispose()
        emulator.stop()

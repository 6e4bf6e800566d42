"""Helpers for the LinkedIn tests: a running emulator, a production client pointed at it, the consent dance."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from resources.linkedin_client import LinkedInClient, LinkedInClientConfig, TokenSet
from resources.linkedin_emulator import EmulatorConfig, EmulatorServer

API_VERSION = "202611"  # the emulator's "current" month in these tests
REDIRECT_URI = "http://127.0.0.1:9/v1/linkedin/callback"


def emulator_config(**overrides) -> EmulatorConfig:
    values = {"current_version": API_VERSION, "redirect_uris": (REDIRECT_URI,), "hang_s": 1.5} | overrides
    return EmulatorConfig(**values)


def client_for(server: EmulatorServer, **overrides) -> LinkedInClient:
    values = {
        "client_id": server.config.client_id,
        "client_secret": SecretStr(server.config.client_secret),
        "redirect_uri": REDIRECT_URI,
        "api_version": API_VERSION,
        "auth_base_url": server.base_url,
        "api_base_url": server.base_url,
        "read_timeout_s": 0.5,
    } | overrides
    return LinkedInClient(LinkedInClientConfig(**values))


def consent(server: EmulatorServer, authorization_url: str, *, member: str = "EmuMember1",
            name: str = "Ada Lovelace", decision: str = "allow") -> dict[str, str]:
    """Play the member on the consent page; the query of the redirect back to Kiln."""
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text
        query = parse_qs(urlsplit(authorization_url).query)
        form = {k: v[0] for k, v in query.items() if k in {"client_id", "redirect_uri", "state", "scope"}}
        answer = browser.post(f"{server.base_url}/oauth/v2/authorization",
                              data=form | {"member": member, "name": name, "decision": decision})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connect(server: EmulatorServer, client: LinkedInClient, *, member: str = "EmuMember1",
            scopes: tuple[str, ...] | None = None) -> TokenSet:
    back = consent(server, client.authorization_url("st-" + member, scopes=scopes), member=member)
    return client.exchange_code(back["code"])


@contextmanager
def running_emulator(**overrides) -> Iterator[EmulatorServer]:
    server = EmulatorServer(emulator_config(**overrides)).start()
    try:
        yield server
    finally:
        server.stop()

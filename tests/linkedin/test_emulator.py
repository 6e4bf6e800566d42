"""Emulator behaviours that the client tests do not reach: consent page, code/token lifetimes, versions, admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from resources.linkedin_emulator.state import EmulatorConfig, EmulatorState
from tests.linkedin.support import REDIRECT_URI, client_for, connect, consent, running_emulator


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_version_rules():
    clock = Clock()
    state = EmulatorState(EmulatorConfig(now=clock, sunset_versions=("202609",)))
    assert state.version_problem("202611") is None and state.version_problem("202511.01") is None
    assert state.version_problem("202510")[:2] == (426, "NONEXISTENT_VERSION")  # older than 12 months
    assert state.version_problem("202612")[0] == 426  # not released yet
    assert state.version_problem("202609")[0] == 426  # declared sunset
    assert state.version_problem("202613")[0] == 426
    assert state.version_problem(None)[:2] == (400, "VERSION_MISSING")
    clock.now += timedelta(days=31)  # time passes: last year's version is sunset, without a code change
    assert state.version_problem("202511")[0] == 426


def test_consent_page_escapes_and_rejects_unknown_clients():
    with running_emulator() as emu, client_for(emu) as client:
        url = client.authorization_url('"><script>alert(1)</script>')
        page = httpx.get(url)
        assert page.status_code == 200 and "<script>alert" not in page.text and "not LinkedIn" in page.text
        assert httpx.get(url.replace("kiln-emulator-client", "someone-else")).status_code == 400
        other = url.replace("127.0.0.1%3A9", "evil.example")
        assert httpx.get(other).status_code == 400  # redirect URI not registered
        asked_too_much = httpx.get(client.authorization_url("s", scopes=("openid", "w_organization_social")),
                                   follow_redirects=False)
        assert asked_too_much.status_code == 302 and "error=unauthorized_scope_error" in asked_too_much.headers["location"]
        assert asked_too_much.headers["location"].startswith(REDIRECT_URI)


def test_codes_and_tokens_expire():
    clock = Clock()
    with running_emulator(now=clock, current_version=None) as emu, client_for(emu, api_version="202611") as client:
        back = consent(emu, client.authorization_url("s"))
        clock.now += timedelta(minutes=31)
        from resources.linkedin_client import LinkedInAuthError

        with pytest.raises(LinkedInAuthError):
            client.exchange_code(back["code"])
        tokens = connect(emu, client)
        clock.now += timedelta(days=61)
        with pytest.raises(LinkedInAuthError) as info:
            client.userinfo(tokens.access_token)
        assert info.value.status == 401 and info.value.error == "EXPIRED_ACCESS_TOKEN"


def test_admin_endpoints_validate_and_app_limit():
    with running_emulator(app_daily_limit=1) as emu:
        assert httpx.post(f"{emu.base_url}/_emulator/faults", json={"queue": ["meteor"]}).status_code == 400
        assert httpx.post(f"{emu.base_url}/_emulator/config", json={"no_such": 1}).status_code == 400
        assert httpx.post(f"{emu.base_url}/_emulator/config", json={"fault_kinds": ["meteor"]}).status_code == 400
        emu.config.update({"fault_kinds": list(EmulatorConfig().fault_kinds)})
        assert httpx.post(f"{emu.base_url}/_emulator/config", json={"latency_s": 0.0}).status_code == 204
        from pipelines.linkedin.commentary import build_post_body

        with client_for(emu) as client:
            alice = connect(emu, client, member="Alice1")
            bob = connect(emu, client, member="Bob2")
            assert client.create_post(alice.access_token, build_post_body("urn:li:person:Alice1", "a")).status == 201
            limited = client.create_post(bob.access_token, build_post_body("urn:li:person:Bob2", "b"))
        assert limited.status == 429 and "APPLICATION" in limited.body["message"]
        summary = httpx.get(f"{emu.base_url}/_emulator/posts").json()
        assert (summary["count"], summary["duplicates"]) == (1, 0)
        assert httpx.post(f"{emu.base_url}/_emulator/reset").status_code == 204
        assert httpx.get(f"{emu.base_url}/_emulator/posts").json()["count"] == 0


def test_post_body_and_header_checks():
    with running_emulator() as emu, client_for(emu) as client:
        tokens = connect(emu, client)
        headers = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}", "LinkedIn-Version": "202611"}
        no_restli = httpx.post(f"{emu.base_url}/rest/posts", json={}, headers=headers)
        assert no_restli.status_code == 400
        headers["X-Restli-Protocol-Version"] = "2.0.0"
        bad = httpx.post(f"{emu.base_url}/rest/posts", json={"author": "urn:li:person:EmuMember1"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["message"].startswith("/commentary")
        forced = httpx.post(f"{emu.base_url}/rest/posts", headers=headers | {"X-Emulator-Fault": "server_error"},
                            json={"author": "urn:li:person:EmuMember1", "commentary": "x", "visibility": "PUBLIC",
                                  "distribution": {"feedDistribution": "MAIN_FEED"}, "lifecycleState": "PUBLISHED"})
        assert forced.status_code == 500 and emu.state.summary()["faults_injected"] == {"server_error": 1}
        assert httpx.post(f"{emu.base_url}/_emulator/config", json={"latency_s": "slow"}).status_code == 400
        assert httpx.post(f"{emu.base_url}/_emulator/config", json={"redirect_uris": "x"}).status_code == 400
        no_token = httpx.post(f"{emu.base_url}/rest/posts", json={}, headers=headers | {"Authorization": "Bearer nope"})
        assert no_token.status_code == 401 and no_token.json()["code"] == "INVALID_ACCESS_TOKEN"


def test_emulator_runs_as_a_process():
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # this checkout, whatever is installed in the venv
    env = os.environ | {"PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "resources.linkedin_emulator", "--port", str(port)], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/_emulator/posts", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the emulator process did not start"
                time.sleep(0.1)
        assert answer.json()["count"] == 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "not LinkedIn" in out

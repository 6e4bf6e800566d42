from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from api.devserver import ensure_local_credentials, write_dagster_home
from api.security import authenticate
from resources.settings import PROJECT_ROOT, Settings
from warehouse.db import make_engine
from warehouse.migrate import upgrade

runner = CliRunner()


@pytest.fixture
def kiln_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KILN_HOME", str(home))
    monkeypatch.setenv("KILN_SECRET_KEY", "cli-test-secret-0123456789abcdef0123")
    monkeypatch.delenv("KILN_DATABASE_URL", raising=False)
    return Settings()


def _principal(settings: Settings, token: str):
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            return authenticate(session, token, secret_key=settings.secret_key.get_secret_value())
    finally:
        engine.dispose()


def test_admin_migrate_create_workspace_and_token(kiln_env):
    result = runner.invoke(app, ["admin", "migrate"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["admin", "create-workspace", "Acme Films", "--owner", "Boss@Acme.test"])
    assert result.exit_code == 0, result.output
    assert "workspace: acme-films" in result.output
    owner_token = result.output.strip().splitlines()[-1]
    owner = _principal(kiln_env, owner_token)
    assert owner.role == "owner" and owner.has_scope("jobs:write")

    result = runner.invoke(app, ["admin", "create-workspace", "Acme Films", "--owner", "x@acme.test"])
    assert result.exit_code != 0 and "already exists" in result.output

    result = runner.invoke(app, ["admin", "create-token", "--workspace", "acme-films", "--email", "ed@acme.test",
                                 "--role", "editor", "--name", "uploader", "--expires-days", "7",
                                 "--scope", "jobs:read", "--scope", "jobs:write"])
    assert result.exit_code == 0, result.output
    editor = _principal(kiln_env, result.output.strip().splitlines()[-1])
    assert editor.role == "editor" and editor.workspace_id == owner.workspace_id
    assert editor.has_scope("jobs:write") and not editor.has_scope("artifacts:read")

    result = runner.invoke(app, ["admin", "create-token", "--workspace", "nope", "--email", "ed@acme.test"])
    assert result.exit_code != 0 and "no workspace" in result.output


def test_local_credentials_are_created_once_private_and_reused(kiln_env):
    kiln_env.home.mkdir(parents=True)
    upgrade(kiln_env.resolved_database_url)
    first = ensure_local_credentials(kiln_env)
    path = kiln_env.home / "local-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _principal(kiln_env, first["token"]).role == "owner"
    assert ensure_local_credentials(kiln_env) == first
    # A lost token file gives a fresh token for the same local workspace.
    path.unlink()
    again = ensure_local_credentials(kiln_env)
    assert again["token"] != first["token"] and again["workspace_id"] == first["workspace_id"]


def test_dagster_home_gets_a_dagster_yaml_without_telemetry(kiln_env):
    home = write_dagster_home(kiln_env)
    text = (home / "dagster.yaml").read_text()
    assert "telemetry" in text
    (home / "dagster.yaml").write_text("# mine\n")
    write_dagster_home(kiln_env)
    assert (home / "dagster.yaml").read_text() == "# mine\n", "an existing dagster.yaml is never overwritten"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kiln_run_api_only_serves_prints_a_token_and_stops_on_sigint(tmp_path):
    port = _free_port()
    env = {**os.environ, "KILN_HOME": str(tmp_path / "home"), "KILN_API_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("KILN_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "run", "--no-dagster"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    try:
        token = None
        for line in proc.stdout:  # blocks until the banner (or the process ends)
            output.append(line)
            if "API token:" in line:
                token = line.split("API token:")[1].strip()
            if "Press Ctrl-C" in line:
                break
        assert token, "".join(output)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/workspace", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["slug"] == "local"
        creds = json.loads(Path(tmp_path / "home" / "local-credentials.json").read_text())
        assert creds["token"] == token
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        output.append(proc.stdout.read())
        assert "stopped" in "".join(output)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

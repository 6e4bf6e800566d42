"""``kiln run`` / ``make run``: the whole platform on one machine with the embedded defaults.

1. migrate the SQLite system-of-record under ``.kiln/``;
2. write ``DAGSTER_HOME=.kiln/dagster/dagster.yaml`` (telemetry off) if missing;
3. on first start create workspace ``local`` with owner ``local@kiln.localhost`` and a token,
   kept in ``.kiln/local-credentials.json`` (mode 600) and reused later;
4. start ``dagster dev`` and uvicorn, each in its own process group with default signal
   dispositions (a ``dagster dev`` that inherits SIGINT as ignored ignores SIGTERM too);
5. without LinkedIn credentials (``KILN_LINKEDIN_CLIENT_ID`` unset), start the local LinkedIn emulator and point
   Kiln at it, saying so in the banner;
6. wait until all answer, print URLs, token and a curl example;
7. on Ctrl-C / SIGTERM (or if a child dies) stop every process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from api.provisioning import create_workspace, issue_token
from api.security import AuthenticationFailed, authenticate
from resources.settings import PROJECT_ROOT, Settings
from warehouse.db import make_engine
from warehouse.migrate import upgrade

LOCAL_SLUG = "local"
LOCAL_OWNER = "local@kiln.localhost"
DEFAULT_DAGSTER_YAML = "telemetry:\n  enabled: false\n"
STARTUP_TIMEOUT_S = 180
STOP_GRACE_S = 15


EMULATOR_PORT = 8765


def linkedin_emulator_plan(environ: dict[str, str], api_url: str,
                           port: int = EMULATOR_PORT) -> tuple[list[str], dict[str, str], str] | None:
    """(command, environment for Kiln, banner line) to run the LinkedIn emulator, or None with real credentials."""
    if environ.get("KILN_LINKEDIN_CLIENT_ID"):
        return None
    base = f"http://127.0.0.1:{port}"
    env = {"KILN_LINKEDIN_AUTH_BASE_URL": base, "KILN_LINKEDIN_API_BASE_URL": base,
           "KILN_LINKEDIN_REDIRECT_URI": f"{api_url}/v1/linkedin/callback",
           "KILN_LINKEDIN_API_VERSION": time.strftime("%Y%m", time.gmtime())}
    command = [sys.executable, "-m", "resources.linkedin_emulator", "--port", str(port), "--refresh-tokens"]
    banner = (f"  LinkedIn:     the local EMULATOR (not LinkedIn) at {base}; set KILN_LINKEDIN_CLIENT_ID, "
              "_CLIENT_SECRET and _REDIRECT_URI to talk to LinkedIn")
    return command, env, banner


def write_dagster_home(settings: Settings) -> Path:
    """``.kiln/dagster`` with a dagster.yaml (the repo's local one if present), never overwritten."""
    dagster_home = settings.home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists():
        template = PROJECT_ROOT / "dagster.yaml"
        target.write_text(template.read_text() if template.exists() else DEFAULT_DAGSTER_YAML)
    return dagster_home


def _token_still_valid(settings: Settings, token: str) -> bool:
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            authenticate(session, token, secret_key=settings.secret_key.get_secret_value())
            return True
    except AuthenticationFailed:
        return False
    finally:
        engine.dispose()


def ensure_local_credentials(settings: Settings) -> dict[str, str]:
    """The local workspace's owner token: created on first start, then read back (mode 600)."""
    path = settings.home / "local-credentials.json"
    if path.exists():
        creds = json.loads(path.read_text())
        if _token_still_valid(settings, creds.get("token", "")):
            return creds
    engine = make_engine(settings.resolved_database_url)
    secret_key = settings.secret_key.get_secret_value()
    try:
        try:
            issued = create_workspace(engine, "Local", LOCAL_OWNER, slug=LOCAL_SLUG, secret_key=secret_key,
                                      token_name="kiln run")
        except ValueError:  # the workspace exists but the stored token is gone: issue a new one
            issued = issue_token(engine, LOCAL_SLUG, LOCAL_OWNER, role="owner", name="kiln run",
                                 secret_key=secret_key)
    finally:
        engine.dispose()
    creds = {"workspace_id": str(issued.workspace_id), "workspace": issued.workspace_slug,
             "email": issued.email, "token": issued.token}
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    os.chmod(path, 0o600)
    return creds


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else (shutil.which(name) or name)


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    # start_new_session: own process group, so we can signal the whole tree. Our parent's signal
    # handlers are Python handlers (installed before this), which exec resets to SIG_DFL.
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left in the group (dagster's code server, daemon, ...)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def _wait_until_up(urls: list[str], processes: list[subprocess.Popen], stop_requested) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    pending = list(urls)
    while pending and time.monotonic() < deadline and not stop_requested():
        if any(p.poll() is not None for p in processes):
            return False
        for url in list(pending):
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    pending.remove(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    return not pending


def _first_start_sample(what: str, seed, settings: Settings, api_url: str, token: str) -> str | None:
    """First start only (each sample records itself in ``.kiln/state.json``): create a sample through the API so
    the UI and the API show finished work. A sample must never keep the platform from starting."""
    try:
        return seed(settings.home, api_url, token)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        print(f"kiln run: the sample {what} was not created: {exc}", file=sys.stderr, flush=True)
        return None


def run(*, with_dagster: bool = True, api_port: int = 8000, dagster_port: int = 3000) -> int:
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    dagster_home = write_dagster_home(settings)
    creds = ensure_local_credentials(settings)

    stop = {"requested": False}

    def _request_stop(signum, _frame):
        stop["requested"] = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)

    api_url = f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "KILN_HOME": str(settings.home),
           "KILN_API_BASE_URL": os.environ.get("KILN_API_BASE_URL", api_url), "PYTHONUNBUFFERED": "1"}
    processes: list[subprocess.Popen] = []
    health_urls = [f"{api_url}/healthz"]
    emulator = linkedin_emulator_plan(dict(os.environ), api_url)
    try:
        if emulator is not None:
            processes.append(_start(emulator[0], env))
            env.update(emulator[1])
            health_urls.append(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/posts")
        if with_dagster:
            processes.append(_start([_executable("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                                     "-h", "127.0.0.1", "-p", str(dagster_port)], env))
            health_urls.append(f"http://127.0.0.1:{dagster_port}/server_info")
        processes.append(_start([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(api_port), "--no-access-log"], env))
        if not _wait_until_up(health_urls, processes, lambda: stop["requested"]):
            if not stop["requested"]:
                print("kiln run: a process failed to start; stopping", file=sys.stderr, flush=True)
            return 0 if stop["requested"] else 1
        from api.cli_episodes import seed_sample_series_once
        from api.cli_video import submit_sample_once

        sample_video_id = _first_start_sample("video", submit_sample_once, settings, api_url, creds["token"])
        sample_episode_id = _first_start_sample("series", seed_sample_series_once, settings, api_url, creds["token"])
        lines = [
            "",
            "Kiln is running.",
            f"  API:          {api_url}   (docs: {api_url}/docs)",
        ]
        if with_dagster:
            lines.append(f"  Dagster UI:   http://127.0.0.1:{dagster_port}")
        if emulator is not None:
            lines.append(emulator[2])
        if sample_video_id:
            lines.append(f"  Sample video: {api_url}/v1/videos/{sample_video_id}/notes  (kiln video notes {sample_video_id})")
        if sample_episode_id:
            lines.append(f"  Sample episode: {api_url}/v1/episodes/{sample_episode_id}  (its package_url once ready)")
        lines += [
            f"  Workspace:    {creds['workspace']}  owner {creds['email']}",
            f"  API token:    {creds['token']}",
            f"  (kept in {settings.home / 'local-credentials.json'})",
            "",
            "Try:",
            f"  curl -s -X POST {api_url}/v1/jobs -H 'Authorization: Bearer {creds['token']}' "
            "-H 'Content-Type: application/json' -d '{\"kind\": \"selftest\", \"payload\": {\"message\": \"hello\"}}'",
            "",
            "Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), flush=True)
        while not stop["requested"]:
            if any(p.poll() is not None for p in processes):
                print("kiln run: a process exited; stopping the others", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop(processes)
        print("kiln run: stopped", flush=True)

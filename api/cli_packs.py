"""``kiln packs publish DIR --name N``: publish a prompt/config pack authored in git through the HTTP API.

Reads ``DIR/pack.json``, validates it locally (the same JSON Schema the API applies), records the directory's git
commit and author, and posts ``POST /v1/config-packs/{name}/versions`` (optionally pointing a channel). The API URL
and token come from ``KILN_API_URL`` / ``KILN_TOKEN`` (a service token with ``packs:write``), else from the
credentials ``kiln run`` keeps in ``.kiln/local-credentials.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from pipelines.linkedin.packs import PackInvalid, load_pack
from resources.settings import Settings

packs = typer.Typer(help="LinkedIn prompt/config packs.", no_args_is_help=True)


def _credentials() -> tuple[str, str]:
    url, token = os.environ.get("KILN_API_URL"), os.environ.get("KILN_TOKEN")
    creds_path = Settings().home / "local-credentials.json"
    if (not url or not token) and creds_path.is_file():
        creds = json.loads(creds_path.read_text())
        token, url = token or creds.get("token"), url or creds.get("api_url")
    if not token:
        raise typer.BadParameter("No API token: set KILN_TOKEN (and KILN_API_URL), or start `kiln run` once.")
    return (url or "http://127.0.0.1:8000").rstrip("/"), token


def make_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60.0))


def _git(directory: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def publish_payload(directory: Path, channel: str | None) -> dict[str, Any]:
    """The request body for ``directory``: validated content, git commit and author (when it is a git checkout)."""
    content = load_pack((directory / "pack.json").read_bytes())
    return {"content": content, "git_commit": _git(directory, "rev-parse", "HEAD"),
            "author": _git(directory, "log", "-1", "--format=%an <%ae>"), "channel": channel}


@packs.command("publish")
def publish_command(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder holding pack.json")],
    name: Annotated[str, typer.Option("--name", help="The pack's name (must match its content's name)")],
    channel: Annotated[str | None, typer.Option("--channel", help="Point this channel at the version")] = None,
) -> None:
    try:
        body = publish_payload(directory, channel)
    except PackInvalid as exc:
        typer.echo(f"pack.json is invalid: {exc}", err=True)
        raise typer.Exit(2) from None
    except FileNotFoundError:
        typer.echo(f"{directory / 'pack.json'} does not exist", err=True)
        raise typer.Exit(2) from None
    with make_client(*_credentials()) as client:
        response = client.post(f"/v1/config-packs/{name}/versions", json=body)
    answer = response.json()
    if response.status_code >= 400:
        typer.echo(f"HTTP {response.status_code} {answer.get('code')}: {answer.get('detail')}", err=True)
        raise typer.Exit(1)
    state = "published" if response.status_code == 201 else "already published"
    typer.echo(f"{name} version {answer['version']} {state} (sha256 {answer['content_sha256']})"
               + (f", channel {channel}" if channel else ""))

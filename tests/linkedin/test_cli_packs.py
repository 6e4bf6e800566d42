"""``kiln packs publish DIR --name N`` through the API: validated locally, git commit and author recorded."""

from __future__ import annotations

import json
import subprocess

from typer.testing import CliRunner

from api import cli_packs
from api.cli import app
from tests.support.linkedin_product import PACK, li  # noqa: F401 - fixture


def test_publish_a_pack_from_a_git_checkout(li, tmp_path, monkeypatch):
    owner = li.tenant()
    service = li.member(owner, "editor", scopes=["packs:write"])
    folder = tmp_path / "packs" / "default"
    folder.mkdir(parents=True)
    (folder / "pack.json").write_text(json.dumps(PACK))
    for args in (["init", "-q"], ["-c", "user.name=GenAI", "-c", "user.email=genai@example.test", "add", "."],
                 ["-c", "user.name=GenAI", "-c", "user.email=genai@example.test", "commit", "-qm", "pack"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True)
    commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    li.client.headers.update(service.headers)
    monkeypatch.setattr(cli_packs, "make_client", lambda url, token: li.client)
    monkeypatch.setenv("KILN_TOKEN", service.token)

    result = CliRunner().invoke(app, ["packs", "publish", str(folder), "--name", "default", "--channel", "production"])
    assert result.exit_code == 0, result.output
    assert "default version 1 published" in result.output
    version = li.client.get("/v1/config-packs/default/versions/1").json()
    assert version["git_commit"] == commit and version["author"] == "GenAI <genai@example.test>"
    assert li.client.get("/v1/config-packs/default/channels/production").json()["version"] == 1

    (folder / "pack.json").write_text(json.dumps(PACK | {"style": {"max_characters": 9000}}))
    bad = CliRunner().invoke(app, ["packs", "publish", str(folder), "--name", "default"])
    assert bad.exit_code == 2 and "$.style.max_characters" in bad.output

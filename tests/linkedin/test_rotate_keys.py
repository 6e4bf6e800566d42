"""``kiln admin rotate-keys``: every token is re-wrapped under the newest key and still decrypts on its row."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from api.cli import app
from resources.linkedin_tokens import ACCESS, REFRESH, associated, fresh_cipher, unseal
from tests.support.linkedin_product import li  # noqa: F401 - fixture
from warehouse import linkedin as store
from warehouse.db import system_session
from warehouse.linkedin_models import LinkedInAccount


def _tokens(li) -> dict:
    cipher = fresh_cipher(li.api.settings)
    out = {}
    with system_session(li.api.system) as s:
        for account in s.scalars(select(LinkedInAccount)):
            for prefix, purpose in (("access_token", ACCESS), ("refresh_token", REFRESH)):
                sealed = store.sealed(account, prefix)
                ad = associated(account.workspace_id, account.id, purpose)
                out[(account.id, prefix)] = (sealed.key_id, unseal(cipher, sealed, ad).get_secret_value())
    return out


def test_rotation_rewraps_every_token_and_keeps_it_readable(li, monkeypatch):
    owner = li.tenant()
    li.connect(owner, member="A")
    li.connect(li.tenant(), member="B")
    before = _tokens(li)
    monkeypatch.setenv("KILN_KEYRING_PATH", str(li.api.settings.keyring_path))
    monkeypatch.setenv("KILN_HOME", str(li.api.settings.home))
    result = CliRunner().invoke(app, ["admin", "rotate-keys", "--new-key", "--database-url", li.db_url])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 4 token(s)" in result.output
    after = _tokens(li)
    new_key = result.output.split("new key: ")[1].split()[0]
    assert {key for key, _ in after.values()} == {new_key}
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    for _, token in after.values():
        assert token not in result.output
    again = CliRunner().invoke(app, ["admin", "rotate-keys", "--database-url", li.db_url])
    assert again.exit_code == 0 and "re-wrapped 0 token(s)" in again.output

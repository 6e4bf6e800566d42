"""The ``kiln`` command line: ``kiln admin ...`` for operators and ``kiln run`` for developers.

Admin commands talk to the database directly and need a role that spans tenants (SQLite, or a
``kiln_system`` member on PostgreSQL): pass ``--database-url`` or set ``KILN_ADMIN_DATABASE_URL``
when ``KILN_DATABASE_URL`` is the API's row-level-security role.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from api.cli_packs import packs as packs_cli
from api.cli_video import video as video_cli
from api.provisioning import create_workspace, issue_token
from api.security import ROLE_RANK
from resources.settings import Settings
from warehouse.db import make_engine

app = typer.Typer(help="Kiln: uploads in, finished artifacts out.", no_args_is_help=True)
admin = typer.Typer(help="Operator commands (database, workspaces, tokens).", no_args_is_help=True)
app.add_typer(admin, name="admin")
app.add_typer(video_cli, name="video")  # kiln video add | notes
app.add_typer(packs_cli, name="packs")  # kiln packs publish (LinkedIn)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="KILN_ADMIN_DATABASE_URL",
                 help="Database URL with cross-tenant rights (default: KILN_DATABASE_URL or the embedded SQLite)"),
]


def _settings() -> Settings:
    return Settings()  # read the environment now, not a cached copy


def _admin_url(settings: Settings, database_url: str | None) -> str:
    url = database_url or settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return url


@admin.command("migrate")
def migrate_command(database_url: DatabaseUrl = None) -> None:
    """Apply every database migration (idempotent)."""
    from warehouse.migrate import upgrade

    settings = _settings()
    upgrade(_admin_url(settings, database_url))
    typer.echo("database is at the latest migration")


@admin.command("create-workspace")
def create_workspace_command(
    name: Annotated[str, typer.Argument(help="Display name of the workspace")],
    owner: Annotated[str, typer.Option("--owner", help="Owner's email (created if new)")],
    slug: Annotated[str | None, typer.Option(help="URL-safe identifier (default: from the name)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a workspace with an owner and print the owner's API token (shown once)."""
    settings = _settings()
    engine = make_engine(_admin_url(settings, database_url))
    try:
        issued = create_workspace(engine, name, owner, slug=slug, secret_key=settings.secret_key.get_secret_value())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"workspace: {issued.workspace_slug} ({issued.workspace_id})")
    typer.echo(f"owner:     {issued.email} ({issued.user_id})")
    typer.echo("token (shown once, store it now):")
    typer.echo(issued.token)


@admin.command("create-token")
def create_token_command(
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug")],
    email: Annotated[str, typer.Option("--email", help="User's email (added as a member if needed)")],
    role: Annotated[str | None, typer.Option(help="Role for a new member, or a new role: owner|admin|editor|viewer")] = None,
    name: Annotated[str, typer.Option(help="A label for the token")] = "cli token",
    scope: Annotated[list[str] | None, typer.Option("--scope", help="Repeatable; default '*'")] = None,
    expires_days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue an API token for a user of a workspace and print it (shown once)."""
    if role is not None and role not in ROLE_RANK:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLE_RANK)}")
    settings = _settings()
    engine = make_engine(_admin_url(settings, database_url))
    try:
        issued = issue_token(engine, workspace, email, role=role, name=name, scopes=scope or None,
                             expires_days=expires_days, secret_key=settings.secret_key.get_secret_value())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"token for {issued.email} ({issued.role}) in {issued.workspace_slug} (shown once):")
    typer.echo(issued.token)


@admin.command("rotate-keys")
def rotate_keys_command(
    new_key: Annotated[bool, typer.Option("--new-key", help="Local keyring: add a new newest key first")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-wrap every stored LinkedIn token's data key under the newest key (tokens are never decrypted)."""
    from resources.linkedin_tokens import fresh_cipher, rewrap_account
    from resources.secrets_envelope import LocalKeyring
    from warehouse import linkedin as linkedin_store
    from warehouse.db import system_session

    settings = _settings()
    if new_key:
        if settings.key_provider != "local":
            raise typer.BadParameter("--new-key applies to the local keyring; with KMS configure a new KILN_KMS_KEY_ID")
        typer.echo(f"new key: {LocalKeyring(settings.resolved_keyring_path).rotate()}")
    cipher = fresh_cipher(settings)
    engine = make_engine(_admin_url(settings, database_url))
    rewrapped, after = 0, None
    try:
        while True:
            with system_session(engine) as session:
                batch = linkedin_store.accounts_with_tokens(session, after=after, limit=200)
                for account in batch:
                    rewrapped += rewrap_account(cipher, account)
            if not batch:
                break
            after = batch[-1].id
    finally:
        engine.dispose()
    typer.echo(f"re-wrapped {rewrapped} token(s) under {cipher.provider.newest_key_id()}")


@app.command("run")
def run_command(
    no_dagster: Annotated[bool, typer.Option("--no-dagster", help="Start only the API")] = False,
    api_port: Annotated[int, typer.Option(envvar="KILN_API_PORT")] = 8000,
    dagster_port: Annotated[int, typer.Option(envvar="KILN_DAGSTER_PORT")] = 3000,
) -> None:
    """Start Dagster (webserver + daemon) and the API on the embedded defaults; Ctrl-C stops both."""
    from api.devserver import run

    raise typer.Exit(run(with_dagster=not no_dagster, api_port=api_port, dagster_port=dagster_port))


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()

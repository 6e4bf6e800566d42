"""Shared fixtures: a migrated database on SQLite and, where reachable, PostgreSQL.

PostgreSQL tests need ``KILN_TEST_POSTGRES_URL`` (a role that may CREATE DATABASE; `.ci/run`
provisions it). Without it they are skipped with a loud reason, except when ``CI`` or
``KILN_REQUIRE_POSTGRES`` is set: then a missing PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from warehouse.db import make_engine, normalize_url, system_session
from warehouse.migrate import upgrade
from warehouse.models import AppUser, Membership, Workspace

POSTGRES_URL_ENV = "KILN_TEST_POSTGRES_URL"


def postgres_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("KILN_REQUIRE_POSTGRES"))


@dataclass(frozen=True)
class PostgresDatabase:
    owner_url: str  # migrations; owns the tables
    app_url: str  # the API's role: row-level security applies, no BYPASSRLS
    worker_url: str  # Dagster's role (kiln_system): cross-tenant platform work
    name: str


def _with_user(url: str, user: str, password: str, database: str) -> str:
    return make_url(url).set(username=user, password=password, database=database).render_as_string(hide_password=False)


class _PostgresServer:
    """Creates test databases as copies of one migrated template (fast, and isolated per test)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = normalize_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.password = os.environ.get("KILN_TEST_POSTGRES_ROLE_PASSWORD", "kiln")
        self.template = f"kiln_tmpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def create(self, name: str, template: str | None = None) -> PostgresDatabase:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        owner_url = make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)
        return PostgresDatabase(
            owner_url=owner_url,
            app_url=_with_user(owner_url, "kiln_api", self.password, name),
            worker_url=_with_user(owner_url, "kiln_worker", self.password, name),
            name=name,
        )

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_PostgresServer]:
    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if not admin_url:
        if postgres_required():
            pytest.fail(f"{POSTGRES_URL_ENV} is not set but CI requires the PostgreSQL half of the suite")
        pytest.skip(f"PostgreSQL tests not run: set {POSTGRES_URL_ENV} (see .ci/run)")
    server = _PostgresServer(admin_url)
    try:
        template = server.create(server.template)
    except Exception as exc:  # noqa: BLE001 - turn any connection failure into a clear message
        if postgres_required():
            pytest.fail(f"PostgreSQL at {POSTGRES_URL_ENV} is not reachable: {exc}")
        pytest.skip(f"PostgreSQL tests not run: {exc}")
    upgrade(template.owner_url)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_database(postgres_server) -> PostgresDatabase:
    """One migrated database shared by the session (for module-scoped fixtures)."""
    return postgres_server.create(f"kiln_test_{uuid.uuid4().hex[:10]}", template=postgres_server.template)


@pytest.fixture
def fresh_postgres_database(postgres_server) -> Iterator[PostgresDatabase]:
    """A migrated database of this test's own: no rows left behind by other tests."""
    db = postgres_server.create(f"kiln_test_{uuid.uuid4().hex[:10]}", template=postgres_server.template)
    yield db
    postgres_server.drop(db.name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "kiln.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path, _sqlite_template) -> str:
    """A migrated SQLite database of this test's own (a copy of one migrated file)."""
    path = tmp_path / "kiln.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A migrated database URL with cross-tenant (system) access, on each backend."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("fresh_postgres_database").worker_url


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@dataclass(frozen=True)
class Tenant:
    workspace_id: uuid.UUID
    user_id: uuid.UUID


@pytest.fixture
def make_tenant(engine):
    """Create a workspace with one member; returns ids."""

    def _make(role: str = "owner", email: str | None = None) -> Tenant:
        ws_id, user_id = uuid.uuid4(), uuid.uuid4()
        with system_session(engine) as s:
            s.add(Workspace(id=ws_id, name=f"ws {ws_id.hex[:6]}", slug=f"ws-{ws_id.hex[:12]}"))
            s.add(AppUser(id=user_id, email=email or f"{user_id.hex[:12]}@example.test"))
            s.flush()
            s.add(Membership(workspace_id=ws_id, user_id=user_id, role=role))
        return Tenant(ws_id, user_id)

    return _make

"""Shared fixtures for the API tests (imported by tests/test_api_*.py; holds no tests itself).

The API runs with the application's own database role: on PostgreSQL that is ``kiln_api``
(row-level security applies), while seeding uses the worker role like Dagster code would.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from api.main import create_app
from api.security import create_api_token
from resources.objectstore_local import LocalObjectStore
from resources.settings import Settings
from warehouse import jobs as job_machine
from warehouse.artifacts import store_artifact
from warehouse.db import make_engine, system_session
from warehouse.models import AppUser, Membership, Workspace

SECRET = "test-secret-key-with-at-least-32-characters!"


@dataclass
class Seeded:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    token: str
    headers: dict[str, str]
    role: str
    token_id: uuid.UUID | None = None


@dataclass
class ApiEnv:
    app: object
    client: TestClient
    settings: Settings
    store: LocalObjectStore
    system: Engine
    log: io.StringIO
    _count: list[int] = field(default_factory=lambda: [0])

    def tenant(self, role: str = "owner", scopes: list[str] | None = None) -> Seeded:
        ws_id, user_id = uuid.uuid4(), uuid.uuid4()
        with system_session(self.system) as s:
            s.add(Workspace(id=ws_id, name=f"ws {ws_id.hex[:6]}", slug=f"ws-{ws_id.hex[:12]}"))
            s.add(AppUser(id=user_id, email=f"{user_id.hex[:12]}@example.test"))
            s.flush()
            s.add(Membership(workspace_id=ws_id, user_id=user_id, role=role))
            s.flush()
            row, token = create_api_token(s, ws_id, user_id, "test", scopes, None, secret_key=SECRET)
        return Seeded(ws_id, user_id, token, {"Authorization": f"Bearer {token}"}, role, row.id)

    def member(self, tenant: Seeded, role: str, scopes: list[str] | None = None) -> Seeded:
        """Another user of ``tenant``'s workspace, with its own token."""
        user_id = uuid.uuid4()
        with system_session(self.system) as s:
            s.add(AppUser(id=user_id, email=f"{user_id.hex[:12]}@example.test"))
            s.flush()
            s.add(Membership(workspace_id=tenant.workspace_id, user_id=user_id, role=role))
            s.flush()
            row, token = create_api_token(s, tenant.workspace_id, user_id, "member", scopes, None, secret_key=SECRET)
        return Seeded(tenant.workspace_id, user_id, token, {"Authorization": f"Bearer {token}"}, role, row.id)

    def job(self, tenant: Seeded, **payload) -> uuid.UUID:
        with system_session(self.system) as s:
            return job_machine.submit_job(
                s, workspace_id=tenant.workspace_id, kind="selftest", payload={"message": "hi", **payload}
            ).job.id

    def artifact(self, tenant: Seeded, data: bytes = b"0123456789abcdef", *, filename: str = "result.txt",
                 content_type: str = "text/plain", job_id: uuid.UUID | None = None) -> uuid.UUID:
        job_id = job_id or self.job(tenant)
        with system_session(self.system) as s:
            return store_artifact(
                s, self.store, workspace_id=tenant.workspace_id, kind="output", subject_id=job_id,
                name="result.bin", chunks=[data], filename=filename, content_type=content_type, job_id=job_id,
            ).id


def api_urls(request: pytest.FixtureRequest, db_url: str) -> str:
    if db_url.startswith("sqlite"):
        return db_url
    return request.getfixturevalue("fresh_postgres_database").app_url


@pytest.fixture
def api(request, db_url, tmp_path) -> Iterator[ApiEnv]:
    app_url = api_urls(request, db_url)
    settings = Settings(
        env="test", home=tmp_path / "home", secret_key=SECRET, database_url=app_url,
        objects_dir=tmp_path / "objects", api_base_url="http://testserver", metrics_database_url=db_url,
    )
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    log = io.StringIO()
    app = create_app(settings, store=store, configure_logs=False)
    from api.observability import configure_logging

    configure_logging(settings, stream=log)
    system = make_engine(db_url)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield ApiEnv(app, client, settings, store, system, log)
    system.dispose()
    app.state.engine.dispose()


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs (to show a list page's query count is flat)."""
    statements: list[str] = []

    def _record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def path_of(url: str) -> str:
    """Signed links are absolute (api_base_url); the test client wants the path."""
    return url.removeprefix("http://testserver")

"""Row-level security on PostgreSQL: the API's role sees one workspace, whatever SQL it runs.

Every query here is raw SQL without a ``workspace_id`` filter, so only the database's policies
stand between workspace A's session and workspace B's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from warehouse import jobs
from warehouse.all_models import Base  # every product's tables too
from warehouse.db import make_engine, session_factory, set_tenant, system_session, tenant_session, utcnow
from warehouse.models import (
    ApiToken,
    AppUser,
    Artifact,
    AuditLog,
    Invitation,
    LineageEdge,
    Membership,
    TENANT_TABLES,
    UsageCounter,
    Workspace,
)

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class SeededTenant:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    token_prefix: str
    email: str


@dataclass(frozen=True)
class Engines:
    app: Engine
    worker: Engine
    owner: Engine


@pytest.fixture(scope="module")
def engines(postgres_database) -> Iterator[Engines]:
    bundle = Engines(
        app=make_engine(postgres_database.app_url),
        worker=make_engine(postgres_database.worker_url),
        owner=make_engine(postgres_database.owner_url),
    )
    yield bundle
    for engine in (bundle.app, bundle.worker, bundle.owner):
        engine.dispose()


def _seed_tenant(worker: Engine) -> SeededTenant:
    """One row in every tenant table, written through the cross-tenant worker role."""
    ws_id, user_id = uuid.uuid4(), uuid.uuid4()
    prefix, email = uuid.uuid4().hex[:12], f"{uuid.uuid4().hex[:10]}@example.test"
    with system_session(worker) as s:
        s.add(Workspace(id=ws_id, name="ws", slug=f"ws-{ws_id.hex[:12]}"))
        s.add(AppUser(id=user_id, email=email))
        s.flush()
        s.add(Membership(workspace_id=ws_id, user_id=user_id, role="owner"))
        s.flush()
        s.add(ApiToken(workspace_id=ws_id, user_id=user_id, name="t", prefix=prefix, secret_hash="h" * 64, scopes=["jobs:read"]))
        job = jobs.submit_job(s, workspace_id=ws_id, kind="rls-probe", payload={"n": 1}).job  # job + job_event
        parent, child = uuid.uuid4(), uuid.uuid4()
        for artifact_id in (parent, child):
            s.add(
                Artifact(
                    id=artifact_id,
                    workspace_id=ws_id,
                    kind="output",
                    storage_key=f"ws/{ws_id}/output/{job.id}/{artifact_id}/f.txt",
                    sha256="0" * 64,
                    size_bytes=1,
                    filename="f.txt",
                    job_id=job.id,
                    expires_at=utcnow() + timedelta(days=1),
                )
            )
        s.flush()
        s.add(LineageEdge(workspace_id=ws_id, parent_artifact_id=parent, child_artifact_id=child))
        s.add(AuditLog(workspace_id=ws_id, action="seed", target_type="workspace"))
        s.add(UsageCounter(workspace_id=ws_id, day="2026-01-01", metric="jobs_submitted", value=1))
        s.add(Invitation(workspace_id=ws_id, email=f"invited-{email}", role="viewer", token_hash=ws_id.hex * 2,
                         expires_at=utcnow() + timedelta(days=1)))
    return SeededTenant(ws_id, user_id, prefix, email)


@pytest.fixture(scope="module")
def tenants(engines) -> tuple[SeededTenant, SeededTenant]:
    return _seed_tenant(engines.worker), _seed_tenant(engines.worker)


SCOPED_TABLES = ("workspace", "app_user", *TENANT_TABLES)


def _rows_by_workspace(session, table: str) -> dict[uuid.UUID, int]:
    if table == "workspace":
        sql = "SELECT id AS ws, count(*) FROM workspace GROUP BY id"
    elif table == "app_user":
        sql = "SELECT m.workspace_id AS ws, count(*) FROM app_user u JOIN membership m ON m.user_id = u.id GROUP BY m.workspace_id"
    else:
        sql = f"SELECT workspace_id AS ws, count(*) FROM {table} GROUP BY workspace_id"  # noqa: S608 - fixed names
    return {uuid.UUID(str(ws)): n for ws, n in session.execute(text(sql))}


@pytest.mark.parametrize("table", SCOPED_TABLES)
def test_app_role_sees_only_its_workspace(engines, tenants, table):
    a, b = tenants
    with tenant_session(engines.app, a.workspace_id) as s:
        visible = _rows_by_workspace(s, table)
        unfiltered_count = s.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
    assert visible.get(a.workspace_id, 0) >= 1, f"{table}: workspace A's own rows must be visible"
    assert set(visible) == {a.workspace_id}, f"{table}: rows of other workspaces leaked: {visible}"
    if table != "app_user":
        assert unfiltered_count == visible[a.workspace_id]
    with system_session(engines.worker) as s:
        assert _rows_by_workspace(s, table).get(b.workspace_id, 0) >= 1, "B has rows the app role could have seen"


def test_workspace_scope_survives_the_end_of_a_transaction(engines, tenants):
    """Upload routes commit before streaming; the session's next transaction is scoped again, to the same workspace."""
    a, _ = tenants
    with session_factory(engines.app)() as s:
        set_tenant(s, a.workspace_id)
        before = _rows_by_workspace(s, "job")
        s.commit()  # SET LOCAL ends here
        after = _rows_by_workspace(s, "job")
        s.commit()
    assert set(before) == set(after) == {a.workspace_id}
    assert before == after


@pytest.mark.parametrize("table", SCOPED_TABLES)
def test_app_role_without_workspace_sees_nothing(engines, tenants, table):
    with session_factory(engines.app)() as s, s.begin():
        assert s.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0  # noqa: S608


def test_app_role_cannot_write_into_another_workspace(engines, tenants):
    a, b = tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        with tenant_session(engines.app, a.workspace_id) as s:
            s.execute(
                text("INSERT INTO audit_log (workspace_id, action, target_type, detail, created_at) VALUES (:ws, 'x', 'y', '{}', now())"),
                {"ws": b.workspace_id},
            )
    with pytest.raises(DBAPIError, match="row-level security"):
        with tenant_session(engines.app, a.workspace_id) as s:
            s.execute(text("UPDATE usage_counter SET workspace_id = :b WHERE workspace_id = :a"), {"a": a.workspace_id, "b": b.workspace_id})
    with tenant_session(engines.app, a.workspace_id) as s:
        assert s.execute(text("UPDATE job SET progress = 50 WHERE workspace_id = :b"), {"b": b.workspace_id}).rowcount == 0
        assert s.execute(text("DELETE FROM artifact WHERE workspace_id = :b"), {"b": b.workspace_id}).rowcount == 0
        assert s.execute(text("DELETE FROM workspace WHERE id = :b"), {"b": b.workspace_id}).rowcount == 0
    with system_session(engines.worker) as s:
        assert s.execute(text("SELECT count(*) FROM artifact WHERE workspace_id = :b"), {"b": b.workspace_id}).scalar_one() == 2


def test_job_event_and_audit_log_are_append_only_for_the_app_role(engines, tenants):
    a, _ = tenants
    for statement in ("UPDATE job_event SET event = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="permission denied"):
            with tenant_session(engines.app, a.workspace_id) as s:
                s.execute(text(statement))
    with tenant_session(engines.app, a.workspace_id) as s:
        s.add(AuditLog(workspace_id=a.workspace_id, action="append", target_type="job"))


def test_app_role_is_neither_superuser_nor_owner_nor_bypassing(engines):
    with engines.owner.connect() as conn:
        role = conn.execute(
            text("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = 'kiln_api'")
        ).one()
        assert tuple(role) == (False, False, False)
        # No role kiln_api inherits from may bypass RLS either.
        assert not conn.execute(
            text("SELECT bool_or(rolsuper OR rolbypassrls) FROM pg_roles WHERE pg_has_role('kiln_api', oid, 'USAGE')")
        ).scalar_one()
        owners = conn.execute(text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")).all()
        assert owners and all(not _owned_by_app(conn, owner) for _, owner in owners)


def _owned_by_app(conn, owner: str) -> bool:
    return conn.execute(text("SELECT pg_has_role('kiln_api', :o, 'USAGE')"), {"o": owner}).scalar_one()


def test_every_model_table_has_rls_enabled_and_forced(engines):
    with engines.owner.connect() as conn:
        flags = {
            name: (enabled, forced)
            for name, enabled, forced in conn.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
                    "AND c.relname <> 'alembic_version'"
                )
            )
        }
    assert set(flags) == set(Base.metadata.tables), "a table without RLS was added (see migration 0002's docstring)"
    assert {name for name, pair in flags.items() if pair != (True, True)} == set()
    assert set(TENANT_TABLES) | {"workspace", "app_user"} <= set(flags)


def test_token_lookup_function_works_before_the_workspace_is_known(engines, tenants):
    _, b = tenants
    with session_factory(engines.app)() as s, s.begin():
        assert s.execute(text("SELECT count(*) FROM api_token")).scalar_one() == 0, "RLS hides tokens without a workspace"
        row = s.execute(text("SELECT * FROM kiln_lookup_token(:p)"), {"p": b.token_prefix}).one()
        assert (row.workspace_id, row.user_id, row.scopes) == (b.workspace_id, b.user_id, ["jobs:read"])
        assert s.execute(text("SELECT count(*) FROM kiln_lookup_token('no-such-prefix')")).scalar_one() == 0
        assert s.execute(text("SELECT kiln_lookup_user_id(:e)"), {"e": b.email}).scalar_one() == b.user_id
        assert s.execute(text("SELECT count(*) FROM invitation")).scalar_one() == 0, "RLS hides invitations"
        found = s.execute(text("SELECT * FROM kiln_lookup_invitation(:h)"), {"h": b.workspace_id.hex * 2}).one()
        assert found.workspace_id == b.workspace_id  # only the id and workspace: never the email or role
        assert set(found._fields) == {"id", "workspace_id"}
    with engines.owner.connect() as conn:
        public_grants = conn.execute(
            text(
                "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) acl "
                "WHERE p.proname IN ('kiln_lookup_token', 'kiln_lookup_user_id', 'kiln_lookup_invitation') "
                "AND acl.grantee = 0"
            )
        ).scalar_one()
        assert public_grants == 0, "PUBLIC must not execute the SECURITY DEFINER functions"


def test_app_role_can_create_a_user_and_see_it_once_a_member(engines, tenants):
    a, b = tenants
    new_user = uuid.uuid4()
    with tenant_session(engines.app, a.workspace_id) as s:
        s.add(AppUser(id=new_user, email=f"{new_user.hex[:10]}@example.test"))
        s.flush()
        assert s.execute(text("SELECT count(*) FROM app_user WHERE id = :u"), {"u": new_user}).scalar_one() == 0
        s.add(Membership(workspace_id=a.workspace_id, user_id=new_user, role="viewer"))
        s.flush()
        assert s.execute(text("SELECT count(*) FROM app_user WHERE id = :u"), {"u": new_user}).scalar_one() == 1
    with tenant_session(engines.app, b.workspace_id) as s:
        assert s.execute(text("SELECT count(*) FROM app_user WHERE id = :u"), {"u": new_user}).scalar_one() == 0


def test_worker_role_sees_every_workspace(engines, tenants):
    a, b = tenants
    with system_session(engines.worker) as s:
        for table in TENANT_TABLES:
            seen = set(_rows_by_workspace(s, table))
            assert {a.workspace_id, b.workspace_id} <= seen, table

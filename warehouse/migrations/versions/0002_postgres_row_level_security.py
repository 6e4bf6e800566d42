"""PostgreSQL hardening: row-level security, role grants, token lookup (a no-op on SQLite).

Revision ID: 0002
Revises: 0001

Roles. Two NOLOGIN group roles carry the privileges; login roles are made members of them:

* ``kiln_app`` - the API. Every tenant table has RLS ENABLEd and FORCEd with the policy
  ``tenant_isolation``: a row is visible and writable only when its ``workspace_id`` equals
  ``current_setting('kiln.workspace_id')``, which ``warehouse.db.tenant_session`` sets with
  ``SET LOCAL`` per transaction. With no workspace set the API sees nothing. ``job_event`` and
  ``audit_log`` are append-only for it (SELECT, INSERT).
* ``kiln_system`` - Dagster sensors, runs, retention, lineage: platform work across tenants
  (``system_access`` policy, ``USING (true)``). The migrating role must be a member too: FORCE
  makes RLS apply to the table owner, and the SECURITY DEFINER function below runs as it.

Group roles are cluster-wide, not per database, so they are normally provisioned once by an
administrator (``.ci/postgres-setup.sh``, or the platform's database operator). The migration
creates them only when they are missing *and* the migrating role has CREATEROLE; otherwise it
stops with a clear error instead of half-applying security. Downgrade drops policies, grants and
the function but never the roles: other databases in the cluster may use them.

``kiln_lookup_token(prefix)`` is SECURITY DEFINER because token authentication happens before
the workspace is known: RLS would hide every ``api_token`` row from ``kiln_app``. It returns only
the one row with that prefix, with a pinned ``search_path`` so callers cannot shadow objects.
``kiln_lookup_user_id(email)`` serves the same purpose for adding an existing user (a member of
another workspace) as a member: ``app_user`` rows are visible to the API only through a
membership of the current workspace.

Any later migration that adds a table must grant it and enable RLS like this one does
(``warehouse.rls.enable_tenant_rls`` does it; ``tests/platform/test_postgres_rls.py`` checks that every
table has RLS forced).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "kiln_app"
SYSTEM_ROLE = "kiln_system"

# Kept literal (not imported from warehouse.models) so this migration keeps meaning what it
# meant when written, even after the models change.
TENANT_TABLES = (
    "membership",
    "api_token",
    "job",
    "job_event",
    "artifact",
    "lineage_edge",
    "audit_log",
    "usage_counter",
)
APPEND_ONLY_FOR_APP = ("job_event", "audit_log")
ALL_TABLES = ("workspace", "app_user", *TENANT_TABLES)

CURRENT_WORKSPACE = "nullif(current_setting('kiln.workspace_id', true), '')::uuid"


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _ensure_group_roles() -> None:
    bind = op.get_bind()
    existing = set(
        bind.execute(
            text("SELECT rolname FROM pg_roles WHERE rolname IN (:a, :s)"), {"a": APP_ROLE, "s": SYSTEM_ROLE}
        ).scalars()
    )
    missing = [r for r in (APP_ROLE, SYSTEM_ROLE) if r not in existing]
    if not missing:
        return
    can_create = bind.execute(text("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    if not can_create:
        raise RuntimeError(
            f"PostgreSQL roles {', '.join(missing)} are missing and the migrating role cannot create them "
            "(no CREATEROLE). Create them once per cluster as an administrator: "
            "CREATE ROLE kiln_app NOLOGIN; CREATE ROLE kiln_system NOLOGIN; GRANT kiln_system TO <migrating role>; "
            "(.ci/postgres-setup.sh does this for local and CI clusters)."
        )
    for role in missing:
        op.execute(f"CREATE ROLE {role} NOLOGIN NOBYPASSRLS")


def _require_system_membership() -> None:
    member = op.get_bind().execute(
        text("SELECT pg_has_role(current_user, :r, 'USAGE')"), {"r": SYSTEM_ROLE}
    ).scalar()
    if not member:
        op.execute(f"GRANT {SYSTEM_ROLE} TO current_user")  # works when we have CREATEROLE / ADMIN OPTION


def upgrade() -> None:
    if not _is_postgres():
        return  # SQLite has no roles; the API's explicit workspace filters are the only guard there.
    _ensure_group_roles()
    _require_system_membership()

    for table in ALL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY system_access ON {table} TO {SYSTEM_ROLE} USING (true) WITH CHECK (true)"
        )
        privileges = "SELECT, INSERT" if table in APPEND_ONLY_FOR_APP else "SELECT, INSERT, UPDATE, DELETE"
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}")

    for table in TENANT_TABLES:
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            f"USING (workspace_id = {CURRENT_WORKSPACE}) WITH CHECK (workspace_id = {CURRENT_WORKSPACE})"
        )
    op.execute(
        f"CREATE POLICY tenant_isolation ON workspace TO {APP_ROLE} "
        f"USING (id = {CURRENT_WORKSPACE}) WITH CHECK (id = {CURRENT_WORKSPACE})"
    )
    # Users are global; the API sees those that are members of the current workspace, and may
    # create users when it adds members (the membership row, scoped by its own policy, follows).
    member_of_current = (
        "EXISTS (SELECT 1 FROM membership m WHERE m.user_id = app_user.id "
        f"AND m.workspace_id = {CURRENT_WORKSPACE})"
    )
    op.execute(f"CREATE POLICY tenant_members_read ON app_user FOR SELECT TO {APP_ROLE} USING ({member_of_current})")
    op.execute(f"CREATE POLICY tenant_members_create ON app_user FOR INSERT TO {APP_ROLE} WITH CHECK (true)")
    op.execute(
        f"CREATE POLICY tenant_members_update ON app_user FOR UPDATE TO {APP_ROLE} "
        f"USING ({member_of_current}) WITH CHECK (true)"
    )

    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}, {SYSTEM_ROLE}")
    # /readyz and workers may check the schema revision.
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}, {SYSTEM_ROLE}")

    op.execute(
        """
        CREATE FUNCTION kiln_lookup_token(p_prefix text)
        RETURNS TABLE (id uuid, workspace_id uuid, user_id uuid, secret_hash text, scopes json,
                       expires_at timestamptz, revoked_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public
        AS $$
            SELECT t.id, t.workspace_id, t.user_id, t.secret_hash::text, t.scopes, t.expires_at, t.revoked_at
              FROM public.api_token AS t
             WHERE t.prefix = p_prefix
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION kiln_lookup_user_id(p_email text)
        RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public
        AS $$
            SELECT u.id FROM public.app_user AS u WHERE u.email = p_email
        $$
        """
    )
    for signature in ("kiln_lookup_token(text)", "kiln_lookup_user_id(text)"):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}, {SYSTEM_ROLE}")


def downgrade() -> None:
    if not _is_postgres():
        return
    op.execute("DROP FUNCTION IF EXISTS kiln_lookup_user_id(text)")
    op.execute("DROP FUNCTION IF EXISTS kiln_lookup_token(text)")
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}, {SYSTEM_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}, {SYSTEM_ROLE}")
    for policy in ("tenant_members_read", "tenant_members_create", "tenant_members_update"):
        op.execute(f"DROP POLICY IF EXISTS {policy} ON app_user")
    for table in ALL_TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}, {SYSTEM_ROLE}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

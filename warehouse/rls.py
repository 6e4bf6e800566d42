"""Row-level security for product tables, for migrations after 0002.

Every tenant table a product adds must be protected exactly like the platform's (0002): RLS
enabled and forced, ``tenant_isolation`` for the API's ``kiln_app`` role on
``kiln.workspace_id``, ``system_access`` for ``kiln_system``, and the grants. Call these from the
product's migration; they do nothing on SQLite. ``tests/platform/test_postgres_rls.py`` checks every table.
"""

from __future__ import annotations

APP_ROLE = "kiln_app"
SYSTEM_ROLE = "kiln_system"
CURRENT_WORKSPACE = "nullif(current_setting('kiln.workspace_id', true), '')::uuid"


def enable_tenant_rls(op, table: str, *, append_only_for_app: bool = False) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY system_access ON {table} TO {SYSTEM_ROLE} USING (true) WITH CHECK (true)")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
        f"USING (workspace_id = {CURRENT_WORKSPACE}) WITH CHECK (workspace_id = {CURRENT_WORKSPACE})"
    )
    privileges = "SELECT, INSERT" if append_only_for_app else "SELECT, INSERT, UPDATE, DELETE"
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SYSTEM_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}, {SYSTEM_ROLE}")


def disable_tenant_rls(op, table: str) -> None:
    """The downgrade twin; run it before dropping the table."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
    op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}, {SYSTEM_ROLE}")

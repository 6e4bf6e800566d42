"""Membership invitations: the ``invitation`` table and its SECURITY DEFINER lookup.

Revision ID: 0005
Revises: 0004

Adding a member by email no longer creates or reveals a user: it records an invitation (the email
as typed, the role, the HMAC of a single-use acceptance token, an expiry, who invited). Accepting
it (``POST /v1/invitations/accept``) creates the membership. ``uq_invitation_pending_email`` is a
partial unique index: one pending invitation per (workspace, email), so two concurrent invitations
of one address make one row. Tenant-scoped with row-level security like every other tenant table
(``warehouse.rls``).

Acceptance happens before the workspace is known (the caller holds only the token), and RLS hides
every invitation from the API role until ``kiln.workspace_id`` is set; like ``kiln_lookup_token``
(0002), ``kiln_lookup_invitation(token_hash)`` returns just the one matching row's id and workspace,
with a pinned ``search_path``.
"""

from alembic import op
import sqlalchemy as sa

from warehouse.rls import APP_ROLE, SYSTEM_ROLE, disable_tenant_rls, enable_tenant_rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = "accepted_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "invitation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('owner', 'admin', 'editor', 'viewer')", name=op.f("ck_invitation_role_valid")),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], name=op.f("fk_invitation_workspace_id_workspace"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitation_token_hash")),
        sa.UniqueConstraint("workspace_id", "id", name=op.f("uq_invitation_workspace_id_id")),
    )
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.create_index("ix_invitation_workspace_created", ["workspace_id", "created_at", "id"], unique=False)
        batch_op.create_index("uq_invitation_pending_email", ["workspace_id", "email"], unique=True,
                              postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    enable_tenant_rls(op, "invitation")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION kiln_lookup_invitation(p_token_hash text)
            RETURNS TABLE (id uuid, workspace_id uuid)
            LANGUAGE sql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                SELECT i.id, i.workspace_id FROM public.invitation AS i WHERE i.token_hash = p_token_hash
            $$
            """
        )
        op.execute("REVOKE ALL ON FUNCTION kiln_lookup_invitation(text) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION kiln_lookup_invitation(text) TO {APP_ROLE}, {SYSTEM_ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS kiln_lookup_invitation(text)")
    disable_tenant_rls(op, "invitation")
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.drop_index("uq_invitation_pending_email")
        batch_op.drop_index("ix_invitation_workspace_created")
    op.drop_table("invitation")

"""LinkedIn publishing: accounts, OAuth states, personas, config packs, drafts, schedules, post attempts.

Revision ID: 0006_linkedin
Revises: 0005

Tenant-scoped with composite ``(workspace_id, id)`` foreign keys and row-level security on PostgreSQL
(``warehouse.rls``), CHECK constraints on every status. ``uq_schedule_live_draft`` is a partial unique
index: one live schedule per draft; ``ix_schedule_due`` a partial index over the rows the scheduler scans.
``post_attempt`` is unique on ``(schedule_id, attempt)`` and on ``post_urn``. Tokens are stored only as
envelope ciphertexts with their wrapped data key and key id (docs/linkedin.md).

The OAuth callback arrives before the workspace is known (the state authenticates it), and RLS hides every
``oauth_state`` row from the API role until ``kiln.workspace_id`` is set; like ``kiln_lookup_invitation``
(0005), ``kiln_lookup_oauth_state(state_hash)`` returns just the matching row's id and workspace.
"""
from alembic import op
import sqlalchemy as sa

from warehouse.rls import APP_ROLE, SYSTEM_ROLE, disable_tenant_rls, enable_tenant_rls

LINKEDIN_TABLES = ("linkedin_account", "oauth_state", "persona", "persona_version", "config_pack",
                   "config_pack_version", "config_pack_channel", "config_pack_channel_history", "draft",
                   "schedule", "post_attempt")


revision = '0006_linkedin'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('config_pack',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_config_pack_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_pack')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_config_pack_workspace_id_id')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_config_pack_workspace_id_name'))
    )
    op.create_table('linkedin_account',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('member_urn', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('picture_url', sa.String(length=2048), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('key_provider', sa.String(length=32), nullable=True),
    sa.Column('access_token_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('access_token_wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('access_token_key_id', sa.String(length=255), nullable=True),
    sa.Column('access_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_token_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('refresh_token_wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('refresh_token_key_id', sa.String(length=255), nullable=True),
    sa.Column('refresh_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cooldown_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('connected_by', sa.Uuid(), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status = 'disconnected' OR access_token_ciphertext IS NOT NULL", name=op.f('ck_linkedin_account_connected_has_token')),
    sa.CheckConstraint("status IN ('connected', 'needs_reauth', 'disconnected')", name=op.f('ck_linkedin_account_status_valid')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_linkedin_account_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_linkedin_account')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_linkedin_account_workspace_id_id')),
    sa.UniqueConstraint('workspace_id', 'member_urn', name=op.f('uq_linkedin_account_workspace_id_member_urn'))
    )
    op.create_table('oauth_state',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('redirect_uri', sa.String(length=2048), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(state_hash) = 64', name=op.f('ck_oauth_state_hash_length')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_oauth_state_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_state')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_oauth_state_state_hash')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_oauth_state_workspace_id_id'))
    )
    op.create_table('persona',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('latest_version >= 1', name=op.f('ck_persona_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_persona_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persona')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_persona_workspace_id_id'))
    )
    with op.batch_alter_table('persona', schema=None) as batch_op:
        batch_op.create_index('ix_persona_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('config_pack_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('pack_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('git_commit', sa.String(length=64), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(content_sha256) = 64', name=op.f('ck_config_pack_version_sha256_length')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_config_pack_version_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'pack_id'], ['config_pack.workspace_id', 'config_pack.id'], name=op.f('fk_config_pack_version_workspace_id_pack_id_config_pack'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_pack_version')),
    sa.UniqueConstraint('pack_id', 'content_sha256', name=op.f('uq_config_pack_version_pack_id_content_sha256')),
    sa.UniqueConstraint('pack_id', 'version', name=op.f('uq_config_pack_version_pack_id_version')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_config_pack_version_workspace_id_id'))
    )
    op.create_table('persona_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('persona_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_persona_version_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'persona_id'], ['persona.workspace_id', 'persona.id'], name=op.f('fk_persona_version_workspace_id_persona_id_persona'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persona_version')),
    sa.UniqueConstraint('persona_id', 'version', name=op.f('uq_persona_version_persona_id_version')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_persona_version_workspace_id_id'))
    )
    op.create_table('config_pack_channel',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('pack_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'pack_id'], ['config_pack.workspace_id', 'config_pack.id'], name=op.f('fk_config_pack_channel_workspace_id_pack_id_config_pack'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'version_id'], ['config_pack_version.workspace_id', 'config_pack_version.id'], name=op.f('fk_config_pack_channel_workspace_id_version_id_config_pack_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_pack_channel')),
    sa.UniqueConstraint('pack_id', 'channel', name=op.f('uq_config_pack_channel_pack_id_channel')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_config_pack_channel_workspace_id_id'))
    )
    op.create_table('config_pack_channel_history',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('pack_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('from_version_id', sa.Uuid(), nullable=True),
    sa.Column('to_version_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('publish', 'move', 'rollback')", name=op.f('ck_config_pack_channel_history_action_valid')),
    sa.ForeignKeyConstraint(['workspace_id', 'pack_id'], ['config_pack.workspace_id', 'config_pack.id'], name=op.f('fk_config_pack_channel_history_workspace_id_pack_id_config_pack'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'to_version_id'], ['config_pack_version.workspace_id', 'config_pack_version.id'], name=op.f('fk_config_pack_channel_history_workspace_id_to_version_id_config_pack_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_pack_channel_history'))
    )
    with op.batch_alter_table('config_pack_channel_history', schema=None) as batch_op:
        batch_op.create_index('ix_config_pack_channel_history_pack', ['pack_id', 'channel', 'created_at'], unique=False)

    op.create_table('draft',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('persona_version_id', sa.Uuid(), nullable=True),
    sa.Column('pack_version_id', sa.Uuid(), nullable=True),
    sa.Column('generation_job_id', sa.Uuid(), nullable=True),
    sa.Column('offline', sa.Boolean(), nullable=False),
    sa.Column('approved_sha256', sa.String(length=64), nullable=True),
    sa.Column('approved_by', sa.Uuid(), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('post_urn', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('user', 'service', 'generated')", name=op.f('ck_draft_source_valid')),
    sa.CheckConstraint("status IN ('draft', 'in_review', 'approved', 'rejected', 'scheduled', 'publishing', 'published', 'failed', 'canceled')", name=op.f('ck_draft_status_valid')),
    sa.CheckConstraint("status NOT IN ('approved', 'scheduled', 'publishing', 'published') OR approved_sha256 IS NOT NULL", name=op.f('ck_draft_approval_recorded')),
    sa.ForeignKeyConstraint(['workspace_id', 'pack_version_id'], ['config_pack_version.workspace_id', 'config_pack_version.id'], name=op.f('fk_draft_workspace_id_pack_version_id_config_pack_version')),
    sa.ForeignKeyConstraint(['workspace_id', 'persona_version_id'], ['persona_version.workspace_id', 'persona_version.id'], name=op.f('fk_draft_workspace_id_persona_version_id_persona_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draft')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_draft_workspace_id_id'))
    )
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.create_index('ix_draft_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('schedule',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('draft_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('publish_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('backoffs', sa.Integer(), nullable=False),
    sa.Column('post_urn', sa.String(length=128), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('scheduled', 'claimed', 'blocked_reauth', 'published', 'failed', 'needs_review', 'canceled', 'paused')", name=op.f('ck_schedule_status_valid')),
    sa.CheckConstraint('claims >= 0 AND backoffs >= 0', name=op.f('ck_schedule_counts_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'account_id'], ['linkedin_account.workspace_id', 'linkedin_account.id'], name=op.f('fk_schedule_workspace_id_account_id_linkedin_account')),
    sa.ForeignKeyConstraint(['workspace_id', 'draft_id'], ['draft.workspace_id', 'draft.id'], name=op.f('fk_schedule_workspace_id_draft_id_draft'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_schedule_workspace_id_id'))
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index('ix_schedule_due', ['status', 'next_attempt_at'], unique=False, postgresql_where=sa.text("status IN ('scheduled', 'claimed')"), sqlite_where=sa.text("status IN ('scheduled', 'claimed')"))
        batch_op.create_index('uq_schedule_live_draft', ['draft_id'], unique=True, postgresql_where=sa.text("status IN ('scheduled', 'claimed', 'blocked_reauth', 'paused', 'needs_review')"), sqlite_where=sa.text("status IN ('scheduled', 'claimed', 'blocked_reauth', 'paused', 'needs_review')"))

    op.create_table('post_attempt',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('schedule_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('reconciling', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('api_version', sa.String(length=16), nullable=True),
    sa.Column('post_urn', sa.String(length=128), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('sending', 'published', 'retry', 'ambiguous', 'backoff', 'refresh', 'needs_reauth', 'failed')", name=op.f('ck_post_attempt_status_valid')),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_post_attempt_attempt_positive')),
    sa.CheckConstraint('length(fingerprint) = 64', name=op.f('ck_post_attempt_fingerprint_length')),
    sa.ForeignKeyConstraint(['workspace_id', 'schedule_id'], ['schedule.workspace_id', 'schedule.id'], name=op.f('fk_post_attempt_workspace_id_schedule_id_schedule'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_post_attempt')),
    sa.UniqueConstraint('post_urn', name=op.f('uq_post_attempt_post_urn')),
    sa.UniqueConstraint('schedule_id', 'attempt', name=op.f('uq_post_attempt_schedule_id_attempt')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_post_attempt_workspace_id_id'))
    )
    with op.batch_alter_table('post_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_post_attempt_account_day', ['account_id', 'created_at'], unique=False)


    for table in LINKEDIN_TABLES:
        enable_tenant_rls(op, table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION kiln_lookup_oauth_state(p_state_hash text)
            RETURNS TABLE (id uuid, workspace_id uuid)
            LANGUAGE sql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                SELECT s.id, s.workspace_id FROM public.oauth_state AS s WHERE s.state_hash = p_state_hash
            $$
            """
        )
        op.execute("REVOKE ALL ON FUNCTION kiln_lookup_oauth_state(text) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION kiln_lookup_oauth_state(text) TO {APP_ROLE}, {SYSTEM_ROLE}")

def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS kiln_lookup_oauth_state(text)")
    for table in reversed(LINKEDIN_TABLES):
        disable_tenant_rls(op, table)
    with op.batch_alter_table('post_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_post_attempt_account_day')

    op.drop_table('post_attempt')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index('uq_schedule_live_draft', postgresql_where=sa.text("status IN ('scheduled', 'claimed', 'blocked_reauth', 'paused', 'needs_review')"), sqlite_where=sa.text("status IN ('scheduled', 'claimed', 'blocked_reauth', 'paused', 'needs_review')"))
        batch_op.drop_index('ix_schedule_due', postgresql_where=sa.text("status IN ('scheduled', 'claimed')"), sqlite_where=sa.text("status IN ('scheduled', 'claimed')"))

    op.drop_table('schedule')
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.drop_index('ix_draft_workspace_created')

    op.drop_table('draft')
    with op.batch_alter_table('config_pack_channel_history', schema=None) as batch_op:
        batch_op.drop_index('ix_config_pack_channel_history_pack')

    op.drop_table('config_pack_channel_history')
    op.drop_table('config_pack_channel')
    op.drop_table('persona_version')
    op.drop_table('config_pack_version')
    with op.batch_alter_table('persona', schema=None) as batch_op:
        batch_op.drop_index('ix_persona_workspace_created')

    op.drop_table('persona')
    op.drop_table('oauth_state')
    op.drop_table('linkedin_account')
    op.drop_table('config_pack')

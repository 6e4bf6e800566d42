"""Platform schema: tenancy, tokens, jobs and their events, artifacts, lineage, audit, usage.

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 08:42:25.177907
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_user',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('is_service', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('email', name=op.f('uq_app_user_email'))
    )
    op.create_table('workspace',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace')),
    sa.UniqueConstraint('slug', name=op.f('uq_workspace_slug'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_audit_log_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_workspace_created', ['workspace_id', 'created_at'], unique=False)

    op.create_table('job',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.Uuid(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), nullable=False),
    sa.Column('max_attempts', sa.SmallInteger(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('progress', sa.SmallInteger(), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('dagster_run_id', sa.String(length=64), nullable=True),
    sa.Column('partition_key', sa.String(length=128), nullable=True),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'retrying', 'failed', 'canceled')", name=op.f('ck_job_status_valid')),
    sa.CheckConstraint('attempt >= 0 AND attempt <= max_attempts', name=op.f('ck_job_attempt_range')),
    sa.CheckConstraint('max_attempts >= 1', name=op.f('ck_job_max_attempts_positive')),
    sa.CheckConstraint('progress >= 0 AND progress <= 100', name=op.f('ck_job_progress_range')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_job_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_job_workspace_id_id')),
    sa.UniqueConstraint('workspace_id', 'kind', 'idempotency_key', name=op.f('uq_job_workspace_id_kind_idempotency_key'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_dagster_run_id', ['dagster_run_id'], unique=False)
        batch_op.create_index('ix_job_due', ['kind', 'next_attempt_at'], unique=False, postgresql_where=sa.text("status IN ('queued', 'retrying')"), sqlite_where=sa.text("status IN ('queued', 'retrying')"))
        batch_op.create_index('ix_job_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('membership',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'admin', 'editor', 'viewer')", name=op.f('ck_membership_role_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_membership_user_id_app_user'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_membership_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership')),
    sa.UniqueConstraint('workspace_id', 'user_id', name=op.f('uq_membership_workspace_id_user_id'))
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index('ix_membership_user_id', ['user_id'], unique=False)

    op.create_table('usage_counter',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('value >= 0', name=op.f('ck_usage_counter_value_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_usage_counter_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_counter')),
    sa.UniqueConstraint('workspace_id', 'day', 'metric', name=op.f('uq_usage_counter_workspace_id_day_metric'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'user_id'], ['membership.workspace_id', 'membership.user_id'], name=op.f('fk_api_token_workspace_id_user_id_membership'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_token_prefix')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_api_token_workspace_id_id'))
    )
    op.create_table('artifact',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('storage_key', sa.String(length=512), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('asset_key', sa.String(length=255), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('available', 'deleted')", name=op.f('ck_artifact_status_valid')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_artifact_sha256_length')),
    sa.CheckConstraint('size_bytes >= 0', name=op.f('ck_artifact_size_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_artifact_workspace_id_job_id_job')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_artifact_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifact')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_artifact_storage_key')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_artifact_workspace_id_id'))
    )
    with op.batch_alter_table('artifact', schema=None) as batch_op:
        batch_op.create_index('ix_artifact_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_artifact_job', ['workspace_id', 'job_id'], unique=False)
        batch_op.create_index('ix_artifact_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_artifact_workspace_sha256', ['workspace_id', 'sha256'], unique=False)

    op.create_table('job_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('attempt', sa.SmallInteger(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_job_event_seq_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_job_event_workspace_id_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_event')),
    sa.UniqueConstraint('job_id', 'seq', name=op.f('uq_job_event_job_id_seq'))
    )
    with op.batch_alter_table('job_event', schema=None) as batch_op:
        batch_op.create_index('ix_job_event_workspace_created', ['workspace_id', 'created_at'], unique=False)

    op.create_table('lineage_edge',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('parent_artifact_id', sa.Uuid(), nullable=False),
    sa.Column('child_artifact_id', sa.Uuid(), nullable=False),
    sa.Column('asset_key', sa.String(length=255), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('parent_artifact_id <> child_artifact_id', name=op.f('ck_lineage_edge_no_self_edge')),
    sa.ForeignKeyConstraint(['workspace_id', 'child_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_lineage_edge_workspace_id_child_artifact_id_artifact'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'parent_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_lineage_edge_workspace_id_parent_artifact_id_artifact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lineage_edge')),
    sa.UniqueConstraint('parent_artifact_id', 'child_artifact_id', name=op.f('uq_lineage_edge_parent_artifact_id_child_artifact_id'))
    )
    with op.batch_alter_table('lineage_edge', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_edge_child', ['child_artifact_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('lineage_edge', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_edge_child')

    op.drop_table('lineage_edge')
    with op.batch_alter_table('job_event', schema=None) as batch_op:
        batch_op.drop_index('ix_job_event_workspace_created')

    op.drop_table('job_event')
    with op.batch_alter_table('artifact', schema=None) as batch_op:
        batch_op.drop_index('ix_artifact_workspace_sha256')
        batch_op.drop_index('ix_artifact_workspace_created')
        batch_op.drop_index('ix_artifact_job')
        batch_op.drop_index('ix_artifact_expires_at')

    op.drop_table('artifact')
    op.drop_table('api_token')
    op.drop_table('usage_counter')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index('ix_membership_user_id')

    op.drop_table('membership')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_workspace_created')
        batch_op.drop_index('ix_job_due', postgresql_where=sa.text("status IN ('queued', 'retrying')"), sqlite_where=sa.text("status IN ('queued', 'retrying')"))
        batch_op.drop_index('ix_job_dagster_run_id')

    op.drop_table('job')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_workspace_created')

    op.drop_table('audit_log')
    op.drop_table('workspace')
    op.drop_table('app_user')

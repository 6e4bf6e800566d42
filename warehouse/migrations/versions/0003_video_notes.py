"""Video notes: ``video_asset`` and ``highlight`` (tenant-scoped, row-level security on PostgreSQL).

Revision ID: 0003_video_notes
Revises: 0002

Composite ``(workspace_id, id)`` foreign keys tie highlights to their video, job, screenshot and
clip artifacts within one workspace. ``CHECK (end_ms > start_ms AND start_ms >= 0)`` keeps every
highlight a real time range; ``ix_highlight_video_start`` serves "the highlights of a video in
time order". ``(workspace_id, sha256)`` is unique: the same bytes uploaded twice are one video.
"""

from alembic import op
import sqlalchemy as sa

from warehouse.rls import disable_tenant_rls, enable_tenant_rls

revision = "0003_video_notes"
down_revision = "0002"
branch_labels = None
depends_on = None

VIDEO_TABLES = ("video_asset", "highlight")


def upgrade() -> None:
    op.create_table('video_asset',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('input_artifact_id', sa.Uuid(), nullable=False),
    sa.Column('latest_job_id', sa.Uuid(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=True),
    sa.Column('media', sa.JSON(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('duration_ms IS NULL OR duration_ms >= 0', name=op.f('ck_video_asset_duration_non_negative')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_video_asset_sha256_length')),
    sa.CheckConstraint('size_bytes >= 0', name=op.f('ck_video_asset_size_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'input_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_video_asset_workspace_id_input_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'latest_job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_video_asset_workspace_id_latest_job_id_job')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_video_asset_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_video_asset')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_video_asset_workspace_id_id')),
    sa.UniqueConstraint('workspace_id', 'sha256', name=op.f('uq_video_asset_workspace_id_sha256'))
    )
    with op.batch_alter_table('video_asset', schema=None) as batch_op:
        batch_op.create_index('ix_video_asset_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('highlight',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('rank', sa.SmallInteger(), nullable=False),
    sa.Column('start_ms', sa.Integer(), nullable=False),
    sa.Column('end_ms', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('screenshot_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('screenshot_ms', sa.Integer(), nullable=True),
    sa.Column('clip_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('clip_start_ms', sa.Integer(), nullable=True),
    sa.Column('clip_end_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('clip_end_ms IS NULL OR clip_end_ms > clip_start_ms', name=op.f('ck_highlight_clip_range')),
    sa.CheckConstraint('end_ms > start_ms AND start_ms >= 0', name=op.f('ck_highlight_time_range')),
    sa.CheckConstraint('score >= 0 AND score <= 1', name=op.f('ck_highlight_score_range')),
    sa.ForeignKeyConstraint(['workspace_id', 'clip_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_highlight_workspace_id_clip_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_highlight_workspace_id_job_id_job'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'screenshot_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_highlight_workspace_id_screenshot_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'video_id'], ['video_asset.workspace_id', 'video_asset.id'], name=op.f('fk_highlight_workspace_id_video_id_video_asset'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_highlight')),
    sa.UniqueConstraint('job_id', 'rank', name=op.f('uq_highlight_job_id_rank')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_highlight_workspace_id_id'))
    )
    with op.batch_alter_table('highlight', schema=None) as batch_op:
        batch_op.create_index('ix_highlight_video_start', ['workspace_id', 'video_id', 'start_ms'], unique=False)
    for table in VIDEO_TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(VIDEO_TABLES):
        disable_tenant_rls(op, table)
    with op.batch_alter_table('highlight', schema=None) as batch_op:
        batch_op.drop_index('ix_highlight_video_start')

    op.drop_table('highlight')
    with op.batch_alter_table('video_asset', schema=None) as batch_op:
        batch_op.drop_index('ix_video_asset_workspace_created')

    op.drop_table('video_asset')

"""Episodes: character, character_version, character_image, relationship, series, episode,
episode_character, scene, asset, scene_asset.

Revision ID: 0006_episodes
Revises: 0005

Tenant-scoped with composite ``(workspace_id, id)`` foreign keys; row-level security on PostgreSQL
(``warehouse.rls``), like every product table. Versions are immutable (unique ``(character_id, version)``);
images are content-addressed per workspace (``ix_character_image_workspace_sha256``) with a perceptual hash;
a relationship joins two different characters (``CHECK (a_id <> b_id)``), symmetric pairs canonically
(``directed OR a_id < b_id``), once per pair and type; an episode number is unique per series; a
generation key is unique per workspace (an identical request reuses its asset). See
``warehouse/episodes_models.py``.

Another branch adds ``0006_linkedin`` on ``0005`` too; the merge revision joins the two heads.
"""
from alembic import op
import sqlalchemy as sa

from warehouse.rls import disable_tenant_rls, enable_tenant_rls

EPISODE_TABLES = ("character", "character_version", "character_image", "relationship", "series", "episode",
                  "episode_character", "scene", "asset", "scene_asset")


revision = '0006_episodes'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('character',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('current_version >= 1', name=op.f('ck_character_current_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_character_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_character')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_character_workspace_id_id'))
    )
    with op.batch_alter_table('character', schema=None) as batch_op:
        batch_op.create_index('ix_character_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('style', sa.JSON(), nullable=False),
    sa.Column('cast_ids', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_series_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_series_workspace_id_id'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index('ix_series_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('character_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('character_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(digest) = 64', name=op.f('ck_character_version_digest_length')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_character_version_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'character_id'], ['character.workspace_id', 'character.id'], name=op.f('fk_character_version_workspace_id_character_id_character'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_character_version')),
    sa.UniqueConstraint('character_id', 'version', name=op.f('uq_character_version_character_id_version')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_character_version_workspace_id_id'))
    )
    op.create_table('relationship',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('a_id', sa.Uuid(), nullable=False),
    sa.Column('b_id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=24), nullable=False),
    sa.Column('directed', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('since_episode', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("type IN ('sibling', 'friend', 'rival', 'spouse', 'colleague', 'parent_of', 'mentor_of')", name=op.f('ck_relationship_type_valid')),
    sa.CheckConstraint('a_id <> b_id', name=op.f('ck_relationship_distinct_characters')),
    sa.CheckConstraint('directed OR a_id < b_id', name=op.f('ck_relationship_symmetric_canonical')),
    sa.CheckConstraint('since_episode IS NULL OR since_episode >= 1', name=op.f('ck_relationship_since_episode_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'a_id'], ['character.workspace_id', 'character.id'], name=op.f('fk_relationship_workspace_id_a_id_character'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'b_id'], ['character.workspace_id', 'character.id'], name=op.f('fk_relationship_workspace_id_b_id_character'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relationship')),
    sa.UniqueConstraint('workspace_id', 'a_id', 'b_id', 'type', name=op.f('uq_relationship_workspace_id_a_id_b_id_type')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_relationship_workspace_id_id'))
    )
    with op.batch_alter_table('relationship', schema=None) as batch_op:
        batch_op.create_index('ix_relationship_workspace_b', ['workspace_id', 'b_id'], unique=False)

    op.create_table('asset',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('phash', sa.String(length=16), nullable=True),
    sa.Column('generation_key', sa.String(length=64), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=True),
    sa.Column('cost_micros', sa.BigInteger(), nullable=False),
    sa.Column('artifact_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('background', 'character', 'prop', 'image')", name=op.f('ck_asset_kind_valid')),
    sa.CheckConstraint("source = 'uploaded' OR generation_key IS NOT NULL", name=op.f('ck_asset_generated_has_key')),
    sa.CheckConstraint("source IN ('uploaded', 'generated')", name=op.f('ck_asset_source_valid')),
    sa.CheckConstraint('cost_micros >= 0', name=op.f('ck_asset_cost_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_asset_workspace_id_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_asset_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_asset')),
    sa.UniqueConstraint('workspace_id', 'generation_key', name=op.f('uq_asset_workspace_id_generation_key')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_asset_workspace_id_id'))
    )
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.create_index('ix_asset_workspace_sha256', ['workspace_id', 'sha256'], unique=False)

    op.create_table('character_image',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('character_id', sa.Uuid(), nullable=False),
    sa.Column('artifact_id', sa.Uuid(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('phash', sa.String(length=16), nullable=True),
    sa.Column('view', sa.String(length=24), nullable=False),
    sa.Column('media_type', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("view IN ('front', 'three_quarter', 'side', 'back', 'expression_sheet')", name=op.f('ck_character_image_view_valid')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_character_image_sha256_length')),
    sa.CheckConstraint('width BETWEEN 1 AND 65535 AND height BETWEEN 1 AND 65535', name=op.f('ck_character_image_size_valid')),
    sa.ForeignKeyConstraint(['workspace_id', 'artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_character_image_workspace_id_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'character_id'], ['character.workspace_id', 'character.id'], name=op.f('fk_character_image_workspace_id_character_id_character'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_character_image')),
    sa.UniqueConstraint('character_id', 'sha256', name=op.f('uq_character_image_character_id_sha256')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_character_image_workspace_id_id'))
    )
    with op.batch_alter_table('character_image', schema=None) as batch_op:
        batch_op.create_index('ix_character_image_workspace_phash', ['workspace_id', 'phash'], unique=False)
        batch_op.create_index('ix_character_image_workspace_sha256', ['workspace_id', 'sha256'], unique=False)

    op.create_table('episode',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('series_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('story', sa.Text(), nullable=False),
    sa.Column('cast_ids', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('continuity', sa.JSON(), nullable=True),
    sa.Column('estimate', sa.JSON(), nullable=True),
    sa.Column('package_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('render_job_id', sa.Uuid(), nullable=True),
    sa.Column('animatic_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'ready', 'blocked')", name=op.f('ck_episode_status_valid')),
    sa.CheckConstraint('number >= 1', name=op.f('ck_episode_number_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_episode_workspace_id_job_id_job')),
    sa.ForeignKeyConstraint(['workspace_id', 'animatic_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_episode_workspace_id_animatic_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'render_job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_episode_workspace_id_render_job_id_job')),
    sa.ForeignKeyConstraint(['workspace_id', 'package_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_episode_workspace_id_package_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'series_id'], ['series.workspace_id', 'series.id'], name=op.f('fk_episode_workspace_id_series_id_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_episode')),
    sa.UniqueConstraint('series_id', 'number', name=op.f('uq_episode_series_id_number')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_episode_workspace_id_id'))
    )
    with op.batch_alter_table('episode', schema=None) as batch_op:
        batch_op.create_index('ix_episode_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('episode_character',
    sa.Column('episode_id', sa.Uuid(), nullable=False),
    sa.Column('character_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('character_version_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'character_id'], ['character.workspace_id', 'character.id'], name=op.f('fk_episode_character_workspace_id_character_id_character')),
    sa.ForeignKeyConstraint(['workspace_id', 'character_version_id'], ['character_version.workspace_id', 'character_version.id'], name=op.f('fk_episode_character_workspace_id_character_version_id_character_version')),
    sa.ForeignKeyConstraint(['workspace_id', 'episode_id'], ['episode.workspace_id', 'episode.id'], name=op.f('fk_episode_character_workspace_id_episode_id_episode'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('episode_id', 'character_id', name=op.f('pk_episode_character'))
    )
    op.create_table('scene',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('episode_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('slugline', sa.String(length=300), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.CheckConstraint('duration_ms >= 0', name=op.f('ck_scene_duration_non_negative')),
    sa.CheckConstraint('number >= 1', name=op.f('ck_scene_number_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'episode_id'], ['episode.workspace_id', 'episode.id'], name=op.f('fk_scene_workspace_id_episode_id_episode'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scene')),
    sa.UniqueConstraint('episode_id', 'number', name=op.f('uq_scene_episode_id_number')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_scene_workspace_id_id'))
    )
    op.create_table('scene_asset',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('scene_id', sa.Uuid(), nullable=False),
    sa.Column('item_key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('generation_key', sa.String(length=64), nullable=True),
    sa.Column('cost_micros', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("action IN ('reuse', 'generate')", name=op.f('ck_scene_asset_action_valid')),
    sa.CheckConstraint('cost_micros >= 0', name=op.f('ck_scene_asset_cost_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'asset_id'], ['asset.workspace_id', 'asset.id'], name=op.f('fk_scene_asset_workspace_id_asset_id_asset')),
    sa.ForeignKeyConstraint(['workspace_id', 'scene_id'], ['scene.workspace_id', 'scene.id'], name=op.f('fk_scene_asset_workspace_id_scene_id_scene'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scene_asset')),
    sa.UniqueConstraint('scene_id', 'item_key', name=op.f('uq_scene_asset_scene_id_item_key'))
    )

    for table in EPISODE_TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(EPISODE_TABLES):
        disable_tenant_rls(op, table)
    op.drop_table('scene_asset')
    op.drop_table('scene')
    op.drop_table('episode_character')
    with op.batch_alter_table('episode', schema=None) as batch_op:
        batch_op.drop_index('ix_episode_workspace_created')

    op.drop_table('episode')
    with op.batch_alter_table('character_image', schema=None) as batch_op:
        batch_op.drop_index('ix_character_image_workspace_sha256')
        batch_op.drop_index('ix_character_image_workspace_phash')

    op.drop_table('character_image')
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_index('ix_asset_workspace_sha256')

    op.drop_table('asset')
    with op.batch_alter_table('relationship', schema=None) as batch_op:
        batch_op.drop_index('ix_relationship_workspace_b')

    op.drop_table('relationship')
    op.drop_table('character_version')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index('ix_series_workspace_created')

    op.drop_table('series')
    with op.batch_alter_table('character', schema=None) as batch_op:
        batch_op.drop_index('ix_character_workspace_created')

    op.drop_table('character')

"""Document generation: template, template_version, template_field, bulk_run, bulk_row.

Revision ID: 0003_documents
Revises: 0002

Tenant-scoped with composite ``(workspace_id, id)`` foreign keys; row-level security on
PostgreSQL (``warehouse.rls``). Unique ``(template_id, version)`` and ``(template_id,
content_sha256)``: versions are immutable and content-addressed. Unique ``(template_version_id,
name)`` for fields. Unique ``(bulk_run_id, row_index)``: a row's outcome is recorded once, which
makes resumes idempotent; ``ix_bulk_row_run_status (bulk_run_id, status, row_index)`` serves the
failed-rows listing with keyset pagination.
"""
from alembic import op
import sqlalchemy as sa

from warehouse.rls import disable_tenant_rls, enable_tenant_rls

DOCUMENT_TABLES = ("template", "template_version", "template_field", "bulk_run", "bulk_row")


revision = '0003_documents'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('template',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_template_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_template_workspace_id_id'))
    )
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.create_index('ix_template_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('template_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('template_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_id', sa.Uuid(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('syntax', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('valid', 'invalid')", name=op.f('ck_template_version_status_valid')),
    sa.CheckConstraint('length(content_sha256) = 64', name=op.f('ck_template_version_sha256_length')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_template_version_version_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_template_version_workspace_id_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'template_id'], ['template.workspace_id', 'template.id'], name=op.f('fk_template_version_workspace_id_template_id_template'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_version')),
    sa.UniqueConstraint('template_id', 'content_sha256', name=op.f('uq_template_version_template_id_content_sha256')),
    sa.UniqueConstraint('template_id', 'version', name=op.f('uq_template_version_template_id_version')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_template_version_workspace_id_id'))
    )
    op.create_table('bulk_run',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('template_version_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('input_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('source_url', sa.String(length=2048), nullable=True),
    sa.Column('output_format', sa.String(length=8), nullable=False),
    sa.Column('filename_pattern', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=True),
    sa.Column('succeeded_rows', sa.Integer(), nullable=False),
    sa.Column('failed_rows', sa.Integer(), nullable=False),
    sa.Column('zip_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('report_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("output_format IN ('docx', 'pdf', 'both')", name=op.f('ck_bulk_run_format_valid')),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'partially_succeeded', 'failed')", name=op.f('ck_bulk_run_status_valid')),
    sa.CheckConstraint('succeeded_rows >= 0 AND failed_rows >= 0', name=op.f('ck_bulk_run_counts_non_negative')),
    sa.ForeignKeyConstraint(['workspace_id', 'input_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_bulk_run_workspace_id_input_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'job_id'], ['job.workspace_id', 'job.id'], name=op.f('fk_bulk_run_workspace_id_job_id_job')),
    sa.ForeignKeyConstraint(['workspace_id', 'report_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_bulk_run_workspace_id_report_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'template_version_id'], ['template_version.workspace_id', 'template_version.id'], name=op.f('fk_bulk_run_workspace_id_template_version_id_template_version')),
    sa.ForeignKeyConstraint(['workspace_id', 'zip_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_bulk_run_workspace_id_zip_artifact_id_artifact')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_run')),
    sa.UniqueConstraint('workspace_id', 'id', name=op.f('uq_bulk_run_workspace_id_id'))
    )
    with op.batch_alter_table('bulk_run', schema=None) as batch_op:
        batch_op.create_index('ix_bulk_run_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)

    op.create_table('template_field',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('template_version_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('locations', sa.JSON(), nullable=False),
    sa.Column('children', sa.JSON(), nullable=False),
    sa.CheckConstraint("kind IN ('value', 'loop', 'condition', 'image')", name=op.f('ck_template_field_kind_valid')),
    sa.ForeignKeyConstraint(['workspace_id', 'template_version_id'], ['template_version.workspace_id', 'template_version.id'], name=op.f('fk_template_field_workspace_id_template_version_id_template_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_field')),
    sa.UniqueConstraint('template_version_id', 'name', name=op.f('uq_template_field_template_version_id_name'))
    )
    op.create_table('bulk_row',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('bulk_run_id', sa.Uuid(), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('docx_filename', sa.String(length=255), nullable=True),
    sa.Column('pdf_filename', sa.String(length=255), nullable=True),
    sa.Column('docx_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('pdf_artifact_id', sa.Uuid(), nullable=True),
    sa.Column('docx_sha256', sa.String(length=64), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('succeeded', 'failed')", name=op.f('ck_bulk_row_status_valid')),
    sa.CheckConstraint('row_index >= 1', name=op.f('ck_bulk_row_row_index_positive')),
    sa.ForeignKeyConstraint(['workspace_id', 'bulk_run_id'], ['bulk_run.workspace_id', 'bulk_run.id'], name=op.f('fk_bulk_row_workspace_id_bulk_run_id_bulk_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'docx_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_bulk_row_workspace_id_docx_artifact_id_artifact')),
    sa.ForeignKeyConstraint(['workspace_id', 'pdf_artifact_id'], ['artifact.workspace_id', 'artifact.id'], name=op.f('fk_bulk_row_workspace_id_pdf_artifact_id_artifact')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_row')),
    sa.UniqueConstraint('bulk_run_id', 'row_index', name=op.f('uq_bulk_row_bulk_run_id_row_index'))
    )
    with op.batch_alter_table('bulk_row', schema=None) as batch_op:
        batch_op.create_index('ix_bulk_row_run_status', ['bulk_run_id', 'status', 'row_index'], unique=False)

    for table in DOCUMENT_TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(DOCUMENT_TABLES):
        disable_tenant_rls(op, table)
    with op.batch_alter_table('bulk_row', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_row_run_status')

    op.drop_table('bulk_row')
    op.drop_table('template_field')
    with op.batch_alter_table('bulk_run', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_run_workspace_created')

    op.drop_table('bulk_run')
    op.drop_table('template_version')
    with op.batch_alter_table('template', schema=None) as batch_op:
        batch_op.drop_index('ix_template_workspace_created')

    op.drop_table('template')

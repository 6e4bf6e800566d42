"""Index jobs by the product row they work on; merge the two product heads.

Revision ID: 0004
Revises: 0003_video_notes, 0003_documents

``job.subject_id`` names the video or bulk run a job works on. Retention asks, per expired
artifact, whether another unfinished job works on the same subject, and the product routes look
up a subject's jobs: ``ix_job_subject (workspace_id, subject_id)`` serves both. This revision also
joins the two sibling product revisions into one head.
"""

from alembic import op

revision = "0004"
down_revision = ("0003_video_notes", "0003_documents")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_subject", "job", ["workspace_id", "subject_id"])


def downgrade() -> None:
    op.drop_index("ix_job_subject", table_name="job")

"""Join the LinkedIn and Episodes product revisions into one head.

Revision ID: 0007
Revises: 0006_linkedin, 0006_episodes

The two products were built side by side, each on 0005; neither depends on the other's tables, so this revision
changes nothing but the history (one head again, so `kiln admin migrate` and `alembic upgrade head` stay simple).
"""

revision = "0007"
down_revision = ("0006_linkedin", "0006_episodes")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

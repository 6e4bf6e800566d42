"""Import every model module so ``Base.metadata`` holds the whole schema, and name the tables under
row-level security in one place.

Alembic's env, the schema reference in docs/architecture.md and the schema tests import this
module; each product with tables adds its model module (and its tenant tables) here.
"""

from sqlalchemy import Table

from warehouse.documents import DOCUMENT_TABLES  # document generation tables
from warehouse.episodes_models import EPISODE_TABLES  # episodes: characters, series, episodes, scenes, assets
from warehouse.linkedin_models import LINKEDIN_TABLES  # LinkedIn publishing
from warehouse.models import TENANT_TABLES, Base  # noqa: F401  (platform tables)
from warehouse.video_notes import VIDEO_TABLES  # video notes: video_asset, highlight

# Every table whose rows belong to one workspace and which row-level security guards on PostgreSQL: the
# platform's (migration 0002) and the products' (their migrations call warehouse.rls.enable_tenant_rls).
RLS_TABLES: tuple[str, ...] = (*TENANT_TABLES, *VIDEO_TABLES, *DOCUMENT_TABLES, *LINKEDIN_TABLES, *EPISODE_TABLES)


def has_workspace_column(table: Table) -> bool:
    """A tenant-owned table: it carries ``workspace_id`` (so it must be in ``RLS_TABLES``)."""
    return "workspace_id" in table.c


def tenancy_label(table: Table) -> str:
    """How docs/architecture.md labels a table, from the model and ``RLS_TABLES`` (drift shows up here)."""
    if table.name in RLS_TABLES:
        return "tenant-scoped (row-level security on PostgreSQL)"
    if has_workspace_column(table):
        return "tenant-scoped, WITHOUT row-level security"
    return "global"

"""Import every model module so ``Base.metadata`` holds the whole schema.

Alembic's env, the schema reference in docs/architecture.md and the schema tests import this
module; each product with tables adds its model module here.
"""

from warehouse.models import Base  # noqa: F401  (platform tables)
import warehouse.video_notes  # noqa: E402,F401  (video notes: video_asset, highlight)
import warehouse.documents  # noqa: F401,E402  (document generation tables)

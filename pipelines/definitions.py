"""The Kiln code location: the ONE ``Definitions`` object that workspace.yaml loads.

Each product exposes its own ``defs`` (``assets/<product>/defs.py``), and so does the platform
(``assets/maintenance/defs.py``, ``sensors/run_status.py``); they are merged here, the only place that
knows them all, for the products ``pipelines/products.py`` lists, and get their resources from one place,
``default_resources()`` (embedded defaults, or production backends through ``KILN_*`` settings). The
modules are imported, not their ``defs`` objects, so this module holds exactly one ``Definitions``
(``dagster definitions validate -m pipelines.definitions`` needs that).
"""

from collections.abc import Iterable

import dagster as dg

import assets.documents.defs as documents
import assets.episodes.defs as episodes
import assets.linkedin.defs as linkedin
import assets.maintenance.defs as maintenance
import assets.selftest.defs as selftest
import assets.video_notes.defs as video_notes
import sensors.run_status as run_status
from pipelines.card import ProductCard
from pipelines.products import PRODUCTS
from resources.dagster_resources import default_resources

# Product card name -> the module whose ``defs`` holds the product's assets, jobs and sensors.
PRODUCT_MODULES = {"selftest": selftest, "video_notes": video_notes, "documents": documents, "episodes": episodes,
                   "linkedin": linkedin}
PLATFORM_MODULES = (maintenance, run_status)


def build_defs(products: Iterable[ProductCard] = PRODUCTS) -> dg.Definitions:
    """The code location for ``products`` (a product missing from the list has no assets, jobs or sensors)."""
    return dg.Definitions.merge(
        *(PRODUCT_MODULES[card.name].defs for card in products),
        *(module.defs for module in PLATFORM_MODULES),
        # In-process for every job that does not choose: a backfill launched from the asset graph runs
        # Dagster's implicit asset job, and a subprocess per step would load the whisper model per step.
        dg.Definitions(resources=default_resources(), executor=dg.in_process_executor),
    )


defs = build_defs()

"""The Kiln code location: the ONE ``Definitions`` object that workspace.yaml loads.

Each product exposes its own ``defs`` (``assets/<product>/defs.py``), and so does the platform
(``assets/maintenance/defs.py``, ``sensors/run_status.py``); they are merged here, the only place that
knows them all, and get their resources from one place, ``default_resources()`` (embedded defaults, or
production backends through ``KILN_*`` settings). The products' modules are imported, not their ``defs``
objects, so this module holds exactly one ``Definitions`` (``dagster definitions validate -m`` needs that).
"""

import dagster as dg

import assets.documents.defs as documents
import assets.maintenance.defs as maintenance
import assets.selftest.defs as selftest
import assets.video_notes.defs as video_notes
import sensors.run_status as run_status
from resources.dagster_resources import default_resources

defs = dg.Definitions.merge(
    selftest.defs,
    video_notes.defs,
    documents.defs,
    maintenance.defs,
    run_status.defs,
    # In-process for every job that does not choose: a backfill launched from the asset graph runs
    # Dagster's implicit asset job, and a subprocess per step would load the whisper model per step.
    dg.Definitions(resources=default_resources(), executor=dg.in_process_executor),
)

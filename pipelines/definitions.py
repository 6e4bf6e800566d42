"""The Kiln code location: the ONE ``Definitions`` object that workspace.yaml loads.

Each product (and each platform consumer) exposes a small ``defs`` of its own; they are merged
here and get their resources from one place, ``default_resources()`` (embedded defaults, or
production backends through ``KILN_*`` settings).
"""

import dagster as dg

from pipelines.documents_defs import defs as documents_defs
from pipelines.maintenance_defs import defs as maintenance_defs
from pipelines.selftest_defs import defs as selftest_defs
from pipelines.video_notes_defs import defs as video_notes_defs
from resources.dagster_resources import default_resources
from sensors.run_status import defs as run_status_defs

defs = dg.Definitions.merge(
    selftest_defs,
    video_notes_defs,
    documents_defs,
    maintenance_defs,
    run_status_defs,
    # In-process for every job that does not choose: a backfill launched from the asset graph runs
    # Dagster's implicit asset job, and a subprocess per step would load the whisper model per step.
    dg.Definitions(resources=default_resources(), executor=dg.in_process_executor),
)

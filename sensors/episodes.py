"""Dispatch sensor of the Episodes product: due ``episode_package`` jobs -> runs of ``episode_package_job``.

The job's partition key is the episode id: the shared dispatch helper adds it to the ``episodes`` dynamic
partitions and requests one run per job attempt (run key ``<job_id>:<attempt>``).
"""

import dagster as dg

from assets.episodes.assets import EPISODE_ASSETS, episodes_partitions
from pipelines.episodes.product import PACKAGE_KIND
from resources.dagster_resources import DatabaseResource
from sensors.dispatch import dispatch_due_jobs

# In-process: five small steps in a chain (a package is a fraction of a second of work); a subprocess per
# step would cost more than the work.
episode_package_job = dg.define_asset_job(
    "episode_package_job",
    selection=dg.AssetSelection.assets(*EPISODE_ASSETS),
    executor_def=dg.in_process_executor,
    tags={"kiln/kind": PACKAGE_KIND},
)


@dg.sensor(job=episode_package_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def episodes_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    return dispatch_due_jobs(context, database=database, kind=PACKAGE_KIND, partitions_def=episodes_partitions)

"""Dispatch sensors of the Episodes product: due ``episode_package`` jobs -> runs of ``episode_package_job``, due
``episode_render`` jobs -> runs of ``episode_render_job`` (tagged ``kiln/pool=render``).

Both jobs' partition key is the episode id: the shared dispatch helper adds it to the ``episodes`` dynamic
partitions and requests one run per job attempt (run key ``<job_id>:<attempt>``).
"""

import dagster as dg

from assets.episodes.animatic import episode_animatic
from assets.episodes.assets import EPISODE_ASSETS, episodes_partitions
from pipelines.episodes.product import PACKAGE_KIND, RENDER_KIND, RENDER_POOL
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


# The run queue's tag concurrency limit on ``kiln/pool=render`` (dagster.yaml) caps concurrent encodes.
episode_render_job = dg.define_asset_job(
    "episode_render_job",
    selection=dg.AssetSelection.assets(episode_animatic),
    executor_def=dg.in_process_executor,
    tags={"kiln/kind": RENDER_KIND, "kiln/pool": RENDER_POOL},
)


@dg.sensor(job=episode_render_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def episode_render_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    result = dispatch_due_jobs(context, database=database, kind=RENDER_KIND, partitions_def=episodes_partitions)
    # The pool tag on each run (a job's own tags reach the run too; explicit, as the documents sensor does).
    requests = [dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key, tags={**r.tags, "kiln/pool": RENDER_POOL})
                for r in result.run_requests or []]
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=result.dynamic_partitions_requests,
                           skip_reason=result.skip_reason, cursor=result.cursor)

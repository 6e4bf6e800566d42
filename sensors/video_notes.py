"""Dispatch sensor of the video notes product: due ``video_notes`` jobs -> runs of ``video_notes_job``.

The job's partition key is the video id, so the sensor's SensorResult adds it to the ``videos``
dynamic partitions and requests one run per job attempt (run key ``<job_id>:<attempt>``).
"""

import dagster as dg

from assets.video_notes.assets import VIDEO_NOTES_ASSETS, videos_partitions
from resources.dagster_resources import DatabaseResource
from sensors.dispatch import dispatch_due_jobs
from pipelines.video_notes.product import KIND as JOB_KIND

# The in-process executor on purpose: seven small steps, each of which would cost a subprocess (seconds of
# Python start-up and imports, plus reloading the whisper model) under the default multiprocess executor.
# The steps form a chain anyway, so there is little parallelism to lose; measured in docs/benchmarks.md.
video_notes_job = dg.define_asset_job(
    "video_notes_job",
    selection=dg.AssetSelection.assets(*VIDEO_NOTES_ASSETS),
    executor_def=dg.in_process_executor,
    tags={"kiln/kind": JOB_KIND},
)


@dg.sensor(job=video_notes_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def video_notes_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    return dispatch_due_jobs(context, database=database, kind=JOB_KIND, partitions_def=videos_partitions)

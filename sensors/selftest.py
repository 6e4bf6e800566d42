"""Dispatch sensor of the selftest product: due selftest jobs -> runs of ``selftest_job``."""


import dagster as dg

from assets.selftest.assets import selftest_jobs_partitions, selftest_report
from pipelines.selftest.product import KIND
from resources.dagster_resources import DatabaseResource
from sensors.dispatch import dispatch_due_jobs

# One asset, one step: the in-process executor saves the subprocess per step (seconds each) that
# the default multiprocess executor would spend, which dominates a job this small.
selftest_job = dg.define_asset_job(
    "selftest_job", selection=[selftest_report], executor_def=dg.in_process_executor, tags={"kiln/kind": KIND}
)


@dg.sensor(job=selftest_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def selftest_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    return dispatch_due_jobs(context, database=database, kind=KIND, partitions_def=selftest_jobs_partitions)

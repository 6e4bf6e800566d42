"""Definitions of the built-in platform maintenance (merged into pipelines/definitions.py):

- ``retention_job`` + ``retention_schedule`` (daily, 03:17 UTC): delete expired artifacts'
  objects, mark their rows deleted, then drop dynamic partitions nobody needs any more and
  sweep orphaned objects (no artifact row, older than ``KILN_ORPHAN_GRACE_HOURS``).
- ``lineage_warehouse_job`` refreshing the ``lineage_warehouse`` asset, on two triggers:
  ``lineage_schedule`` every 15 minutes (catches API-side changes: submits, cancels, uploads,
  which start no run) and ``lineage_after_run_sensor`` on any run's success (fresh numbers right
  after work finishes). The sensor debounces to one refresh per 5-minute bucket via its run key,
  and skips while a refresh is already queued or running, so a burst of finished runs costs one
  refresh rather than one each.

No `from __future__ import annotations` here: Dagster inspects the real annotations.
"""

from datetime import timedelta

import dagster as dg

from assets.maintenance.lineage import LINEAGE_SINGLETON_TAGS, lineage_warehouse
from pipelines.maintenance.retention import partitions_by_kind
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore
from resources.settings import get_settings
from warehouse.db import utcnow
from warehouse.retention import purge_expired_artifacts, stale_partitions, sweep_orphans

LINEAGE_DEBOUNCE_SECONDS = 300


class PurgeConfig(dg.Config):
    batch_size: int = 500
    max_batches: int | None = None  # None: until nothing expired is left


class PartitionCleanupConfig(dg.Config):
    # Jobs that stored no artifact keep their partition this long after finishing;
    # None: Settings.retention_days_log.
    empty_job_grace_days: int | None = None


class OrphanSweepConfig(dg.Config):
    # Objects without an artifact row are deleted once older than this; None: Settings.orphan_grace_hours.
    grace_hours: int | None = None
    batch_size: int = 1000


@dg.op(out=dg.Out(dg.Nothing))
def purge_expired_artifacts_op(
    context: dg.OpExecutionContext, config: PurgeConfig, database: DatabaseResource, object_store: dg.ResourceParam[ObjectStore]
):
    report = purge_expired_artifacts(
        database.engine(), object_store, batch_size=config.batch_size, max_batches=config.max_batches, log=context.log
    )
    context.add_output_metadata(
        {
            "objects_deleted": report.objects_deleted,
            "bytes_freed": report.bytes_freed,
            "missing_objects": report.missing_objects,
            "rows_marked_deleted": report.rows_marked,
            "batches": report.batches,
            "failed": len(report.failed_artifact_ids),
        }
    )
    if report.failed_artifact_ids:
        # Everything else was purged; fail the run so the leftover shows up in the UI and alerts.
        raise dg.Failure(
            description=f"{len(report.failed_artifact_ids)} expired objects could not be deleted; the next pass retries them",
            metadata={"artifact_ids": dg.MetadataValue.json(report.failed_artifact_ids[:100])},
        )


@dg.op(ins={"after_purge": dg.In(dg.Nothing)})
def remove_stale_partitions_op(
    context: dg.OpExecutionContext, config: PartitionCleanupConfig, database: DatabaseResource
) -> dict:
    grace_days = config.empty_job_grace_days
    if grace_days is None:
        grace_days = get_settings().retention_days_log
    instance = context.instance
    existing = {name: instance.get_dynamic_partitions(name) for name in sorted(set(partitions_by_kind().values()))}
    stale = stale_partitions(database.engine(), existing, now=utcnow(), empty_job_grace=timedelta(days=grace_days))
    removed: dict[str, int] = {}
    for name, keys in stale.items():
        for key in keys:
            instance.delete_dynamic_partition(name, key)
        removed[name] = len(keys)
        context.log.info(f"removed {len(keys)} partitions from {name}")
    context.add_output_metadata(
        {
            "partitions_removed": sum(removed.values()),
            "by_partitions_def": dg.MetadataValue.json(removed),
            "partitions_kept": sum(len(keys) for keys in existing.values()) - sum(removed.values()),
        }
    )
    return removed


@dg.op(ins={"after_purge": dg.In(dg.Nothing)})
def sweep_orphaned_objects_op(
    context: dg.OpExecutionContext, config: OrphanSweepConfig, database: DatabaseResource, object_store: dg.ResourceParam[ObjectStore]
) -> dict:
    grace_hours = config.grace_hours if config.grace_hours is not None else get_settings().orphan_grace_hours
    if grace_hours < 1:
        raise dg.Failure(description="the orphan grace period must be at least one hour")
    report = sweep_orphans(
        database.engine(), object_store, now=utcnow(), grace=timedelta(hours=grace_hours),
        batch=config.batch_size, log=context.log,
    )
    counts = {
        "objects_checked": report.objects_checked,
        "orphans_deleted": report.orphans_deleted,
        "bytes_freed": report.bytes_freed,
        "failed": report.failed,
        "incomplete_writes_removed": report.incomplete_writes_removed,
        "incomplete_bytes_freed": report.incomplete_bytes_freed,
        "incomplete_writes_failed": report.incomplete_writes_failed,
        "batches": report.batches,
        "grace_hours": grace_hours,
    }
    context.log.info(f"orphan sweep: {counts}")
    if report.failed or report.incomplete_writes_failed:
        # The rest was swept; fail the run so the leftovers show up in the UI and alerts (the next pass retries).
        raise dg.Failure(
            description=f"{report.failed + report.incomplete_writes_failed} orphaned objects could not be deleted",
            metadata={**counts, "failed_keys": dg.MetadataValue.json(report.failed_keys)},
        )
    context.add_output_metadata(counts)
    return counts


# Both maintenance jobs run in process: their steps are short, and a subprocess per step would
# cost more (Python start-up and imports) than the work itself.
@dg.job(
    description=(
        "Delete expired artifacts (objects first, rows marked deleted), stale dynamic partitions, "
        "and orphaned objects no artifact row names."
    ),
    executor_def=dg.in_process_executor,
)
def retention_job():
    purged = purge_expired_artifacts_op()
    remove_stale_partitions_op(purged)
    sweep_orphaned_objects_op(purged)


retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

lineage_warehouse_job = dg.define_asset_job(
    "lineage_warehouse_job",
    selection=[lineage_warehouse],
    tags=LINEAGE_SINGLETON_TAGS,
    executor_def=dg.in_process_executor,
)

lineage_schedule = dg.ScheduleDefinition(
    name="lineage_schedule",
    job=lineage_warehouse_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.run_status_sensor(
    name="lineage_after_run_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=lineage_warehouse_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def lineage_after_run_sensor(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    if run.job_name == lineage_warehouse_job.name or set(run.asset_selection or ()) == {lineage_warehouse.key}:
        return dg.SkipReason("a lineage refresh itself finished")
    if context.instance.get_runs(
        filters=dg.RunsFilter(job_name=lineage_warehouse_job.name, statuses=_IN_FLIGHT), limit=1
    ):
        return dg.SkipReason("a lineage refresh is already queued or running")
    bucket = int(utcnow().timestamp() // LINEAGE_DEBOUNCE_SECONDS)
    return dg.RunRequest(run_key=f"lineage:{bucket}")


defs = dg.Definitions(
    assets=[lineage_warehouse],
    jobs=[retention_job, lineage_warehouse_job],
    schedules=[retention_schedule, lineage_schedule],
    sensors=[lineage_after_run_sensor],
)

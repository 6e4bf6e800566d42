"""The lineage warehouse asset: refreshes the DuckDB file from the system of record and Dagster.

No `from __future__ import annotations` here: Dagster inspects the real annotations.
"""

import dagster as dg

from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from warehouse.lineage import sync_lineage, table_counts

# Runs of this job carry the tag so a tag concurrency limit of 1 (deploy/dagster.yaml) can keep
# two syncs from competing for DuckDB's single-writer file lock.
LINEAGE_SINGLETON_TAGS = {"kiln/singleton": "lineage_warehouse"}


class LineageWarehouseConfig(dg.Config):
    duckdb_path: str | None = None  # None: Settings.resolved_warehouse_path (KILN_WAREHOUSE_PATH)


@dg.asset(group_name="platform", kinds={"duckdb"}, op_tags=LINEAGE_SINGLETON_TAGS)
def lineage_warehouse(
    context: dg.AssetExecutionContext, config: LineageWarehouseConfig, database: DatabaseResource
) -> dg.MaterializeResult:
    """DuckDB tables of jobs, job events, artifacts, lineage edges, Dagster runs and
    materializations, with the views throughput_daily, latency_daily, failure_reasons_daily
    and the table macro derived_from(artifact_id). Incremental: each refresh copies what changed."""
    path = config.duckdb_path or str(get_settings().resolved_warehouse_path)
    copied = sync_lineage(database.engine(), path, dagster_instance=context.instance)
    totals = table_counts(path)
    context.log.info(f"lineage warehouse refreshed: {copied}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            **{f"copied_{table}": dg.MetadataValue.int(count) for table, count in copied.items()},
            **{f"rows_{table}": dg.MetadataValue.int(count) for table, count in totals.items()},
        }
    )

"""The DuckDB lineage warehouse schema: tables copied from the system of record and Dagster,
and the analyst views over them. Plain SQL text, no imports beyond the standard library.

Timestamps are stored as DuckDB ``TIMESTAMP`` in UTC (no time zone), so every day boundary
in the views is a UTC day. Free-text user data (job payloads, user filenames) is not copied:
the warehouse is for operational analytics, not for a second copy of tenant content.
"""

from __future__ import annotations

# table -> ordered (column, DuckDB type); the first column is the primary key.
TABLES: dict[str, list[tuple[str, str]]] = {
    "jobs": [
        ("id", "VARCHAR"),
        ("workspace_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("status", "VARCHAR"),
        ("subject_id", "VARCHAR"),
        ("attempt", "INTEGER"),
        ("max_attempts", "INTEGER"),
        ("progress", "INTEGER"),
        ("error_code", "VARCHAR"),
        ("error_message", "VARCHAR"),
        ("dagster_run_id", "VARCHAR"),
        ("partition_key", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
    ],
    "job_events": [
        ("id", "BIGINT"),
        ("workspace_id", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("seq", "INTEGER"),
        ("event", "VARCHAR"),
        ("from_status", "VARCHAR"),
        ("to_status", "VARCHAR"),
        ("attempt", "INTEGER"),
        ("detail", "JSON"),
        ("created_at", "TIMESTAMP"),
    ],
    "artifacts": [
        ("id", "VARCHAR"),
        ("workspace_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("storage_key", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("content_type", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("asset_key", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("expires_at", "TIMESTAMP"),
        ("deleted_at", "TIMESTAMP"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
    ],
    "lineage_edges": [
        ("id", "VARCHAR"),
        ("workspace_id", "VARCHAR"),
        ("parent_artifact_id", "VARCHAR"),
        ("child_artifact_id", "VARCHAR"),
        ("asset_key", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "dagster_runs": [
        ("run_id", "VARCHAR"),
        ("job_name", "VARCHAR"),
        ("status", "VARCHAR"),
        ("partition_key", "VARCHAR"),
        ("kiln_job_id", "VARCHAR"),
        ("workspace_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"),
        ("ended_at", "TIMESTAMP"),
    ],
    "materializations": [
        ("storage_id", "BIGINT"),
        ("run_id", "VARCHAR"),
        ("asset_key", "VARCHAR"),
        ("partition_key", "VARCHAR"),
        ("step_key", "VARCHAR"),
        ("materialized_at", "TIMESTAMP"),
    ],
}


def create_table_sql(table: str) -> str:
    columns = TABLES[table]
    body = ", ".join(f"{name} {kind}" for name, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({columns[0][0]}))"


SYNC_STATE_SQL = """
CREATE TABLE IF NOT EXISTS _sync_state (
    source VARCHAR PRIMARY KEY,
    watermark_ts TIMESTAMP,   -- newest updated_at / created_at copied (UTC)
    watermark_id BIGINT,      -- newest storage id copied (Dagster event log)
    synced_at TIMESTAMP NOT NULL
)
"""

# Jobs are counted on the UTC day they were submitted and on the day they reached a terminal state.
THROUGHPUT_DAILY = """
CREATE OR REPLACE VIEW throughput_daily AS
WITH submitted AS (
    SELECT kind, CAST(created_at AS DATE) AS day, count(*) AS submitted
    FROM jobs GROUP BY ALL
), finished AS (
    SELECT kind, CAST(finished_at AS DATE) AS day,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'canceled') AS canceled
    FROM jobs
    WHERE finished_at IS NOT NULL AND status IN ('succeeded', 'failed', 'canceled')
    GROUP BY ALL
)
SELECT kind, day,
       coalesce(submitted, 0) AS submitted,
       coalesce(succeeded, 0) AS succeeded,
       coalesce(failed, 0) AS failed,
       coalesce(canceled, 0) AS canceled
FROM submitted FULL OUTER JOIN finished USING (kind, day)
ORDER BY day, kind
"""

# Succeeded jobs only, by the UTC day they finished. total_* = submitted -> finished (what a user
# waits, queueing and retries included); run_* = last attempt's start -> finished (work time).
LATENCY_DAILY = """
CREATE OR REPLACE VIEW latency_daily AS
WITH done AS (
    SELECT kind, CAST(finished_at AS DATE) AS day,
           epoch(finished_at - created_at) AS total_s,
           epoch(finished_at - started_at) AS run_s
    FROM jobs
    WHERE status = 'succeeded' AND finished_at IS NOT NULL
)
SELECT kind, day, count(*) AS jobs,
       quantile_cont(total_s, 0.50) AS total_p50_s,
       quantile_cont(total_s, 0.90) AS total_p90_s,
       quantile_cont(total_s, 0.95) AS total_p95_s,
       quantile_cont(total_s, 0.99) AS total_p99_s,
       quantile_cont(run_s, 0.50) AS run_p50_s,
       quantile_cont(run_s, 0.90) AS run_p90_s,
       quantile_cont(run_s, 0.95) AS run_p95_s,
       quantile_cont(run_s, 0.99) AS run_p99_s
FROM done
GROUP BY ALL
ORDER BY day, kind
"""

# Every failed attempt counts (retried ones too); `terminal` counts those that ended the job.
FAILURE_REASONS_DAILY = """
CREATE OR REPLACE VIEW failure_reasons_daily AS
SELECT j.kind, CAST(e.created_at AS DATE) AS day,
       coalesce(e.detail->>'error_code', 'unknown') AS error_code,
       count(*) AS count,
       count(*) FILTER (WHERE e.event = 'failed') AS terminal
FROM job_events e JOIN jobs j ON j.id = e.job_id
WHERE e.event IN ('failed', 'retry_scheduled')
GROUP BY ALL
ORDER BY day, kind, count DESC, error_code
"""

# SELECT * FROM derived_from('<artifact id>'): every artifact made (transitively) from it, with
# its shortest distance. Cycles cannot occur through the API, but the depth bound keeps a bad
# edge from looping forever.
DERIVED_FROM = """
CREATE OR REPLACE MACRO derived_from(root_artifact_id) AS TABLE
WITH RECURSIVE descendants(artifact_id, depth) AS (
    SELECT child_artifact_id, 1 FROM lineage_edges WHERE parent_artifact_id = CAST(root_artifact_id AS VARCHAR)
    UNION
    SELECT e.child_artifact_id, d.depth + 1
    FROM lineage_edges e JOIN descendants d ON e.parent_artifact_id = d.artifact_id
    WHERE d.depth < 64
), nearest AS (
    SELECT artifact_id, min(depth) AS depth FROM descendants GROUP BY artifact_id
)
SELECT n.artifact_id, n.depth, a.kind, a.job_id, a.asset_key, a.status, a.size_bytes, a.created_at
FROM nearest n LEFT JOIN artifacts a ON a.id = n.artifact_id
ORDER BY n.depth, n.artifact_id
"""

VIEWS = (THROUGHPUT_DAILY, LATENCY_DAILY, FAILURE_REASONS_DAILY, DERIVED_FROM)

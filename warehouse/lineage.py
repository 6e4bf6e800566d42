"""The DuckDB lineage warehouse: an incremental copy of the system of record and Dagster's
run and materialization records, with analyst views (see ``pipelines/maintenance/lineage_sql``).

``sync_lineage`` is idempotent and incremental. Each source keeps a watermark in ``_sync_state``:
the newest ``updated_at`` (jobs, artifacts) or ``created_at`` (job events, lineage edges) copied,
and the newest event-log storage id for materializations. Each sync re-reads a short look-back
window before the watermark, because a row committed late by a slow transaction can carry a
timestamp older than rows already copied; rows are upserted by primary key, and the counts
returned are only rows that were new or changed.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Engine, and_, or_, select

from pipelines.maintenance import lineage_sql
from pipelines.run_tags import JOB_ID_TAG, KIND_TAG, WORKSPACE_ID_TAG
from warehouse.db import system_session, utcnow
from warehouse.models import Artifact, Job, JobEvent, LineageEdge

DEFAULT_LOOKBACK = timedelta(minutes=5)
BATCH_SIZE = 2000
_INSERT_ROWS_PER_STATEMENT = 200  # multi-row VALUES: far faster than executemany in DuckDB

# warehouse table -> (model, watermark column, column whose change means "row changed" or None)
_SOURCES = {
    "jobs": (Job, Job.updated_at, "updated_at"),
    "artifacts": (Artifact, Artifact.updated_at, "updated_at"),
    "job_events": (JobEvent, JobEvent.created_at, None),
    "lineage_edges": (LineageEdge, LineageEdge.created_at, None),
}


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


def _cell(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


def connect(duckdb_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating its folder); analysts can use ``read_only=True``."""
    path = Path(duckdb_path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(lineage_sql.SYNC_STATE_SQL)
    for table in lineage_sql.TABLES:
        con.execute(lineage_sql.create_table_sql(table))
    for statement in lineage_sql.VIEWS:
        con.execute(statement)


def _state(con: duckdb.DuckDBPyConnection, source: str) -> tuple[datetime | None, int | None]:
    row = con.execute("SELECT watermark_ts, watermark_id FROM _sync_state WHERE source = ?", [source]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _save_state(con, source: str, *, ts: datetime | None, storage_id: int | None) -> None:
    con.execute(
        "INSERT OR REPLACE INTO _sync_state VALUES (?, ?, ?, ?)", [source, ts, storage_id, _naive_utc(utcnow())]
    )


def _stage_and_upsert(con, table: str, rows: Sequence[Sequence[Any]], change_column: str | None) -> int:
    """Upsert ``rows`` into ``table``; return how many were new or changed."""
    if not rows:
        return 0
    columns = lineage_sql.TABLES[table]
    key = columns[0][0]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staging AS SELECT * FROM {table} LIMIT 0")
    placeholders = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(rows), _INSERT_ROWS_PER_STATEMENT):
        chunk = rows[start : start + _INSERT_ROWS_PER_STATEMENT]
        params = [cell for row in chunk for cell in row]
        con.execute(f"INSERT INTO _staging VALUES {', '.join(placeholders for _ in chunk)}", params)
    unchanged = f"t.{key} = s.{key}" + (f" AND t.{change_column} IS NOT DISTINCT FROM s.{change_column}" if change_column else "")
    changed = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT * FROM _staging) s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {unchanged})"
    ).fetchone()[0]
    con.execute(f"INSERT OR REPLACE INTO {table} SELECT DISTINCT ON ({key}) * FROM _staging")
    con.execute("DROP TABLE _staging")
    return int(changed)


def _source_pages(engine: Engine, table: str, since: datetime | None) -> Iterator[list[list[Any]]]:
    """Keyset pages of (watermark column, id) from the system of record, oldest first."""
    model, mark, _ = _SOURCES[table]
    names = [name for name, _ in lineage_sql.TABLES[table]]
    columns = [getattr(model, name) for name in names]
    last: tuple[Any, Any] | None = None
    while True:
        query = select(*columns).order_by(mark, model.id).limit(BATCH_SIZE)
        if since is not None:
            query = query.where(mark >= since.replace(tzinfo=UTC))
        if last is not None:
            query = query.where(or_(mark > last[0], and_(mark == last[0], model.id > last[1])))
        with system_session(engine) as session:
            rows = session.execute(query).all()
        if not rows:
            return
        mark_index, id_index = names.index(mark.key), names.index("id")
        last = (rows[-1][mark_index], rows[-1][id_index])
        yield [[_cell(value) for value in row] for row in rows]
        if len(rows) < BATCH_SIZE:
            return


def _sync_table(con, engine: Engine, table: str, lookback: timedelta) -> int:
    watermark, _ = _state(con, table)
    since = watermark - lookback if watermark is not None else None
    mark_index = [name for name, _ in lineage_sql.TABLES[table]].index(_SOURCES[table][1].key)
    copied, newest = 0, watermark
    for page in _source_pages(engine, table, since):
        copied += _stage_and_upsert(con, table, page, _SOURCES[table][2])
        page_newest = max(row[mark_index] for row in page)
        newest = page_newest if newest is None else max(newest, page_newest)
    _save_state(con, table, ts=newest, storage_id=None)
    return copied


def _sync_dagster_runs(con, instance, lookback: timedelta) -> int:
    import dagster as dg  # only the Dagster half of the sync needs it

    watermark, _ = _state(con, "dagster_runs")
    after = (watermark - lookback).replace(tzinfo=UTC) if watermark is not None else None
    copied, newest, seen = 0, watermark, set()
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(updated_after=after), order_by="update_timestamp", ascending=True, limit=BATCH_SIZE
        )
        fresh = [r for r in records if r.dagster_run.run_id not in seen]
        if not fresh:
            break
        rows = []
        for record in fresh:
            run = record.dagster_run
            seen.add(run.run_id)
            tags = run.tags or {}
            rows.append(
                [
                    run.run_id,
                    run.job_name,
                    run.status.value,
                    tags.get("dagster/partition"),
                    tags.get(JOB_ID_TAG),
                    tags.get(WORKSPACE_ID_TAG),
                    tags.get(KIND_TAG),
                    _naive_utc(record.create_timestamp),
                    _naive_utc(record.update_timestamp),
                    _from_epoch(record.start_time),
                    _from_epoch(record.end_time),
                ]
            )
        copied += _stage_and_upsert(con, "dagster_runs", rows, "updated_at")
        page_newest = max(row[8] for row in rows)
        newest = page_newest if newest is None else max(newest, page_newest)
        if len(records) < BATCH_SIZE:
            break
        # Ties at the page boundary are re-read (not lost); `seen` drops the duplicates.
        after = records[-1].update_timestamp - timedelta(microseconds=1)
    _save_state(con, "dagster_runs", ts=newest, storage_id=None)
    return copied


def _sync_materializations(con, instance) -> int:
    import dagster as dg

    _, cursor = _state(con, "materializations")
    copied = 0
    while True:
        # fetch_materializations (the suggested replacement) needs one asset key per call; the
        # warehouse wants every asset's materializations after one storage-id cursor.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            records = instance.get_event_records(
                dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=cursor),
                limit=BATCH_SIZE,
                ascending=True,
            )
        if not records:
            break
        rows = []
        for record in records:
            entry = record.event_log_entry
            event = entry.dagster_event
            rows.append(
                [
                    record.storage_id,
                    entry.run_id,
                    event.asset_key.to_user_string() if event and event.asset_key else None,
                    event.partition if event else None,
                    entry.step_key,
                    _from_epoch(entry.timestamp),
                ]
            )
        copied += _stage_and_upsert(con, "materializations", rows, None)
        cursor = records[-1].storage_id
        if len(records) < BATCH_SIZE:
            break
    _save_state(con, "materializations", ts=None, storage_id=cursor)
    return copied


def sync_lineage(
    engine: Engine,
    duckdb_path: str | Path,
    dagster_instance=None,
    *,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> dict[str, int]:
    """Copy what changed since the last sync into the DuckDB file; returns rows new or changed per table.

    Everything is written in one DuckDB transaction, so a failed sync leaves the previous
    state (and its watermarks) intact and the next sync starts over from there.
    """
    con = connect(duckdb_path)
    con.execute("BEGIN")
    try:
        ensure_schema(con)
        counts = {table: _sync_table(con, engine, table, lookback) for table in _SOURCES}
        if dagster_instance is not None:
            counts["dagster_runs"] = _sync_dagster_runs(con, dagster_instance, lookback)
            counts["materializations"] = _sync_materializations(con, dagster_instance)
        con.execute("COMMIT")
        return counts
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def table_counts(duckdb_path: str | Path) -> dict[str, int]:
    """Row counts of every warehouse table (for asset metadata and tests)."""
    con = connect(duckdb_path, read_only=True)
    try:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in lineage_sql.TABLES}
    finally:
        con.close()

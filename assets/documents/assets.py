"""The bulk-run asset: one partition of ``bulk_runs`` per bulk run (the partition key is its id).

Thin: it claims the Kiln job, hands the engine (``assets/documents/bulk.py``) its database
sessions, object store and warm converter, and reports what came out. A re-materialization of a
partition (a crash retry, ``resume``, ``retry-failed``, a backfill) runs the engine again, which
only touches rows that still need work.

No `from __future__ import annotations` here: Dagster inspects the real annotations.
"""

import uuid

import dagster as dg

from assets._job_context import kiln_job
from assets.documents.bulk import BulkEnv, run_bulk
from pipelines.documents.product import KIND, PARTITIONS, BulkRunPayload
from resources.converter import DocumentConverter
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore

bulk_runs_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)


@dg.asset(partitions_def=bulk_runs_partitions, group_name="documents", kinds={"python", "docx", "pdf"})
def bulk_run_outputs(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: dg.ResourceParam[ObjectStore],
    document_converter: dg.ResourceParam[DocumentConverter],
) -> dg.MaterializeResult:
    """Every row of a bulk run filled into DOCX and/or PDF, one streamed ZIP and a per-row report."""
    with kiln_job(context, database, object_store, kind=KIND) as job:
        payload = job.params(BulkRunPayload)  # the card's payload model, as the bulk-run routes wrote it
        bulk_run_id = payload.bulk_run_id
        env = BulkEnv(
            sessions=lambda: database.tenant_session(job.workspace_id),
            store=object_store,
            workspace_id=job.workspace_id,
            job_id=job.job_id,
            converter=document_converter,
            progress=job.progress,
            asset_key=job.asset_key,
            run_id=job.run_id,
            log=context.log,
        )
        result = run_bulk(env, bulk_run_id, payload.mode)
    return dg.MaterializeResult(
        metadata={
            "job_id": str(job.job_id),
            "bulk_run_id": str(bulk_run_id),
            "total_rows": result.total_rows,
            "succeeded_rows": result.succeeded_rows,
            "failed_rows": result.failed_rows,
            "processed_this_run": result.processed_now,
            "zip_artifact_id": str(result.zip_artifact_id),
            "report_artifact_id": str(result.report_artifact_id),
        }
    )

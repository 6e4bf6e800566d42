"""Dispatch sensor of bulk runs: due ``documents_bulk`` jobs -> runs of the bulk-run asset.

Two jobs select the same asset: DOCX-only runs go to ``bulk_docx_job``; runs that need PDF go to
``bulk_pdf_job``, tagged ``kiln/pool=libreoffice`` so the run queue's tag concurrency limit
(dagster.yaml) caps how many LibreOffice-heavy runs execute at once.
"""

import uuid

import dagster as dg

from assets.documents.assets import bulk_run_outputs, bulk_runs_partitions
from pipelines.documents.product import CARD, KIND
from pipelines.run_tags import POOL_TAG
from resources.dagster_resources import DatabaseResource
from sensors.dispatch import dispatch_due_jobs
from warehouse import documents as bulk_store

LIBREOFFICE_POOL = CARD.kind().pool  # "libreoffice"

bulk_docx_job = dg.define_asset_job(
    "bulk_docx_job", selection=[bulk_run_outputs], executor_def=dg.in_process_executor, tags={"kiln/kind": KIND}
)
bulk_pdf_job = dg.define_asset_job(
    "bulk_pdf_job",
    selection=[bulk_run_outputs],
    executor_def=dg.in_process_executor,
    tags={"kiln/kind": KIND, POOL_TAG: LIBREOFFICE_POOL},
)


def _needs_pdf(database: DatabaseResource, partition_keys: list[str]) -> set[str]:
    ids = []
    for key in partition_keys:
        try:
            ids.append(uuid.UUID(key))
        except ValueError:
            continue
    if not ids:
        return set()
    with database.system_session() as session:
        formats = bulk_store.output_formats(session, ids)
    return {str(run_id) for run_id, fmt in formats.items() if fmt != "docx"}


@dg.sensor(jobs=[bulk_docx_job, bulk_pdf_job], minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def bulk_runs_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    # Dispatched without the pool: DOCX-only runs need no LibreOffice; the PDF ones get it back below.
    result = dispatch_due_jobs(context, database=database, kind=KIND, partitions_def=bulk_runs_partitions,
                               job_name=bulk_docx_job.name, pool=None)
    pdf_keys = _needs_pdf(database, [r.partition_key for r in result.run_requests or []])
    requests = [
        dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key, job_name=bulk_pdf_job.name,
                      tags={**r.tags, POOL_TAG: LIBREOFFICE_POOL})
        if r.partition_key in pdf_keys else r
        for r in result.run_requests or []
    ]
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=result.dynamic_partitions_requests,
                           skip_reason=result.skip_reason, cursor=result.cursor)

"""The selftest asset: one partition per selftest job; writes the message and a JSON report.

No `from __future__ import annotations` here: Dagster inspects the real annotations of asset and
sensor functions (the context type, resource parameters)."""

import dagster as dg

from assets._job_context import kiln_job
from pipelines.selftest import SelftestRequest, build_report, render_report
from pipelines.selftest.product import CARD, KIND
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore
from warehouse.db import utcnow

selftest_jobs_partitions = dg.DynamicPartitionsDefinition(name=CARD.kind().partitions)


@dg.asset(partitions_def=selftest_jobs_partitions, group_name="platform", kinds={"python"})
def selftest_report(
    context: dg.AssetExecutionContext, database: DatabaseResource, object_store: dg.ResourceParam[ObjectStore]
) -> dg.MaterializeResult:
    """A JSON report of the job's message (with its SHA-256), derived from the stored message."""
    started_at = utcnow()
    with kiln_job(context, database, object_store, kind=KIND) as job:
        request = SelftestRequest.from_payload(job.payload)
        report = build_report(request, attempt=job.attempt, run_id=job.run_id, started_at=started_at, finished_at=utcnow())
        job.progress(50)
        message = job.store_artifact(
            kind="input", name="message.txt", data=request.message.encode(), content_type="text/plain; charset=utf-8"
        )
        output = job.store_artifact(
            kind="output",
            name="report.json",
            data=render_report(report),
            filename="report.json",
            content_type="application/json",
            parents=[message.id],
        )
        job.progress(90)
    return dg.MaterializeResult(
        metadata={
            "job_id": str(job.job_id),
            "workspace_id": str(job.workspace_id),
            "attempt": job.attempt,
            "artifact_id": str(output.id),
            "sha256": output.sha256,
            "size_bytes": output.size_bytes,
        }
    )

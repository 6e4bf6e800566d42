"""The dispatch contract every product sensor uses: due queued jobs -> partitions + RunRequests.

In one system transaction it requeues retrying jobs whose backoff elapsed, takes the oldest due
queued jobs of one kind (capped per tick) and marks them dispatched. It answers a ``SensorResult``
that adds the jobs' dynamic partitions not yet known to the instance and one ``RunRequest`` per
job whose ``run_key`` is ``<job_id>:<attempt>``: Dagster never launches a run key twice, so a tick
that is evaluated again (the daemon is at-least-once) cannot start a second run for one attempt.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from pipelines.products import all_job_kinds
from pipelines.run_tags import POOL_TAG, tags_for_job
from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from warehouse import jobs
from warehouse.db import utcnow

# The default of ``dispatch_due_jobs(pool=...)``: the pool the job kind's card names.
CARD_POOL = object()


def dispatch_due_jobs(
    context: dg.SensorEvaluationContext,
    *,
    database: DatabaseResource,
    kind: str,
    partitions_def: dg.DynamicPartitionsDefinition,
    job_name: str | None = None,
    max_runs: int | None = None,
    pool: str | None | object = CARD_POOL,
) -> dg.SensorResult:
    """Due queued jobs of ``kind`` -> partitions to add + run requests (run key ``<job>:<attempt>``) + a cursor.

    Runs carry the card's pool (``kiln/pool``) unless ``pool`` says otherwise (None: no pool).
    """
    settings = get_settings()
    if pool is CARD_POOL:
        card_kind = all_job_kinds().get(kind)
        pool = card_kind.pool if card_kind is not None else None
    extra_tags = {POOL_TAG: pool} if isinstance(pool, str) else {}
    max_runs = max_runs or settings.dispatch_max_runs_per_tick
    now = utcnow()
    run_requests: list[dg.RunRequest] = []
    with database.system_session() as session:
        requeued = jobs.requeue_due(session, kind=kind, now=now)
        due = jobs.due_jobs(
            session,
            kind=kind,
            now=now,
            limit=max_runs,
            redispatch_after=timedelta(seconds=settings.redispatch_after_seconds),
        )
        for job in due:
            attempt = job.attempt + 1
            run_requests.append(
                dg.RunRequest(
                    run_key=jobs.run_key(job),
                    partition_key=job.partition_key or str(job.id),
                    job_name=job_name,
                    tags=tags_for_job(
                        job_id=job.id,
                        workspace_id=job.workspace_id,
                        kind=job.kind,
                        attempt=attempt,
                        request_id=job.request_id,
                    ) | extra_tags,
                )
            )
        jobs.mark_dispatched(session, [job.id for job in due], now=now)

    partition_keys = list(dict.fromkeys(request.partition_key for request in run_requests))
    new_keys = [
        key for key in partition_keys if not context.instance.has_dynamic_partition(partitions_def.name, key)
    ]
    if run_requests or requeued:
        context.log.info(
            "kind=%s dispatched=%d requeued=%d new_partitions=%d", kind, len(run_requests), requeued, len(new_keys)
        )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[partitions_def.build_add_request(new_keys)] if new_keys else [],
        skip_reason=None if run_requests else f"no due {kind} jobs",
        cursor=now.isoformat() if run_requests else context.cursor,
    )

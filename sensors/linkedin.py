"""The LinkedIn scheduler and dispatch: due schedules -> ``linkedin_post`` jobs -> runs in pool ``linkedin``.

Each tick, in one system transaction, claims due schedules (and schedules whose claim went stale: the run
died, so the next run must reconcile) with a conditional update each, and creates one ``linkedin_post`` job
per claim, partition key = schedule id. Then the shared dispatch helper requests the runs; their run key is
``<schedule_id>:<claims>`` (the schedule's run number), so Dagster never starts two runs for one claim even
when a tick is evaluated twice. ``generate_draft_dispatch_sensor`` dispatches ``linkedin_generate_draft``;
``linkedin_token_refresh_schedule`` runs the daily token upkeep (``assets/linkedin/tokens.py``).
"""

import uuid
from datetime import timedelta

import dagster as dg

from assets.linkedin.assets import (
    draft_generations_partitions,
    generated_draft,
    scheduled_post,
    scheduled_posts_partitions,
)
from assets.linkedin.posting import PostingEnv
from assets.linkedin.tokens import refresh_expiring_tokens
from pipelines.linkedin.product import GENERATE_KIND, POOL, POST_KIND
from pipelines.run_tags import JOB_ID_TAG
from resources.dagster_resources import DatabaseResource
from resources.linkedin_tokens import build_cipher, build_client
from resources.settings import get_settings
from sensors.dispatch import dispatch_due_jobs
from warehouse import jobs as job_machine
from warehouse import linkedin_posting as posting
from warehouse.db import utcnow

POOL_TAG = "kiln/pool"

linkedin_post_job = dg.define_asset_job(
    "linkedin_post_job", selection=[scheduled_post], executor_def=dg.in_process_executor,
    tags={"kiln/kind": POST_KIND, POOL_TAG: POOL})
linkedin_generate_job = dg.define_asset_job(
    "linkedin_generate_job", selection=[generated_draft], executor_def=dg.in_process_executor,
    tags={"kiln/kind": GENERATE_KIND})


def claim_and_queue(database: DatabaseResource) -> int:
    """Claim due schedules and queue one job per claim, atomically; returns how many."""
    settings = get_settings()
    with database.system_session() as session:
        claims = posting.claim_due(session, now=utcnow(), limit=settings.linkedin_claims_per_tick,
                                   claim_timeout=timedelta(seconds=settings.linkedin_claim_timeout_seconds))
        for claim in claims:
            job_machine.submit_job(
                session, workspace_id=claim.workspace_id, kind=POST_KIND, max_attempts=1,
                payload={"schedule_id": str(claim.schedule_id), "claims": claim.claims, "reclaimed": claim.reclaimed},
                subject_id=claim.schedule_id, partition_key=str(claim.schedule_id))
    return len(claims)


@dg.sensor(jobs=[linkedin_post_job], minimum_interval_seconds=get_settings().linkedin_scheduler_interval_seconds,
           default_status=dg.DefaultSensorStatus.RUNNING)
def linkedin_scheduler_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    claimed = claim_and_queue(database)
    result = dispatch_due_jobs(context, database=database, kind=POST_KIND, partitions_def=scheduled_posts_partitions,
                               job_name=linkedin_post_job.name)
    requests = list(result.run_requests or [])
    with database.system_session() as session:
        run_numbers = posting.claims_of_jobs(session, [uuid.UUID(r.tags[JOB_ID_TAG]) for r in requests])
    requests = [
        dg.RunRequest(run_key=f"{r.partition_key}:{run_numbers[uuid.UUID(r.tags[JOB_ID_TAG])]}",
                      partition_key=r.partition_key, job_name=r.job_name, tags={**r.tags, POOL_TAG: POOL})
        for r in requests
    ]
    if claimed:
        context.log.info("linkedin schedules claimed=%d", claimed)
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=result.dynamic_partitions_requests,
                           skip_reason=result.skip_reason, cursor=result.cursor)


@dg.sensor(job=linkedin_generate_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def generate_draft_dispatch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    return dispatch_due_jobs(context, database=database, kind=GENERATE_KIND,
                             partitions_def=draft_generations_partitions)


@dg.op
def refresh_linkedin_tokens_op(context: dg.OpExecutionContext, database: DatabaseResource) -> dict:
    settings = get_settings()
    with build_client(settings) as client:
        env = PostingEnv(tenant=database.tenant_session, system=database.system_session, client=client,
                         cipher=build_cipher(settings), settings=settings)
        outcomes = refresh_expiring_tokens(env)
    context.add_output_metadata({k: int(v) for k, v in outcomes.items()})
    return outcomes


@dg.job(executor_def=dg.in_process_executor)
def linkedin_token_refresh_job():
    """Daily: refresh access tokens expiring soon; accounts without a refresh token become needs_reauth."""
    refresh_linkedin_tokens_op()


linkedin_token_refresh_schedule = dg.ScheduleDefinition(
    job=linkedin_token_refresh_job, cron_schedule="23 4 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING)

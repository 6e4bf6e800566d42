"""The LinkedIn assets, thin: claim the Kiln job, hand the engine its sessions and clients, report.

``scheduled_post`` (partitions ``scheduled_posts``, key = schedule id): publish one claimed schedule
(``assets/linkedin/posting.py``). ``generated_draft`` (partitions ``draft_generations``, key = job id): write
one draft (``assets/linkedin/generate.py``) and keep its generation record as an ``output`` artifact.

No `from __future__ import annotations` here: Dagster inspects the real annotations.
"""

import json

import dagster as dg

from assets._job_context import kiln_job
from assets.linkedin.generate import generate
from assets.linkedin.posting import PostingEnv, post_schedule
from pipelines.linkedin.product import (
    GENERATE_KIND,
    GENERATE_PARTITIONS,
    POST_KIND,
    POST_PARTITIONS,
    GenerateDraftPayload,
    PostPayload,
)
from resources.dagster_resources import DatabaseResource
from resources.linkedin_tokens import build_cipher, build_client
from resources.llm import LLM
from resources.objectstore import ObjectStore
from resources.settings import get_settings

scheduled_posts_partitions = dg.DynamicPartitionsDefinition(name=POST_PARTITIONS)
draft_generations_partitions = dg.DynamicPartitionsDefinition(name=GENERATE_PARTITIONS)


@dg.asset(partitions_def=scheduled_posts_partitions, group_name="linkedin", kinds={"python"})
def scheduled_post(context: dg.AssetExecutionContext, database: DatabaseResource,
                   object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """One scheduled LinkedIn post, sent at most once (the outcome is on the schedule and its attempts)."""
    settings = get_settings()
    with kiln_job(context, database, object_store, kind=POST_KIND) as job:
        payload = job.params(PostPayload)
        with build_client(settings) as client:
            env = PostingEnv(tenant=database.tenant_session, system=database.system_session, client=client,
                             cipher=build_cipher(settings), settings=settings)
            status = post_schedule(env, job.workspace_id, payload.schedule_id, payload.claims)
    return dg.MaterializeResult(metadata={"job_id": str(job.job_id), "schedule_id": str(payload.schedule_id),
                                          "run_number": payload.claims, "schedule_status": status})


@dg.asset(partitions_def=draft_generations_partitions, group_name="linkedin", kinds={"python"})
def generated_draft(context: dg.AssetExecutionContext, database: DatabaseResource,
                    object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """A LinkedIn draft written from a persona, a topic and a config pack channel."""
    with kiln_job(context, database, object_store, kind=GENERATE_KIND) as job:
        job.params(GenerateDraftPayload)  # a payload the card's model refuses fails the job as invalid_payload
        record = generate(database.tenant_session, job.workspace_id, job.job_id, job.payload, LLM().chat_model())
        if not record.get("reused"):
            job.store_artifact(kind="output", name="generation.json", data=json.dumps(record, indent=2).encode(),
                               filename="generation.json", content_type="application/json")
    return dg.MaterializeResult(metadata={"job_id": str(job.job_id), "draft_id": record["draft_id"],
                                          "generator": record.get("generator", "reused")})


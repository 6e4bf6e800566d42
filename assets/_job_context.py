"""The thin helper every product asset runs its work inside: one Kiln job per materialization.

    with kiln_job(context, database, object_store, kind="video_notes") as job:
        ...domain logic on job.payload...
        job.progress(40)
        artifact = job.store_artifact(kind="output", name="summary.md", data=text.encode())

On entry it finds the job (from the run's ``kiln/*`` tags, or, for a run started by hand or by a
backfill, from the partition key: an active job is reused, a finished one is re-submitted as a new
job and the run is tagged, so the run-status sensors track it too) and claims it (queued ->
running; idempotent for the same run). A ``KilnError`` raised inside becomes a ``dg.Failure``
whose metadata carries the error code and whether a retry may help; the run-status sensor reads
that metadata to choose between ``retrying`` and ``failed``. For the step's duration ``job_id``,
``workspace_id``, ``run_id``, ``kind`` and ``attempt`` are bound into structlog's context, so every
Kiln log line the step emits carries them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import dagster as dg
import structlog
from pydantic import BaseModel, ValidationError

from resources.logs import configure_dagster_logging
from pipelines.errors import KilnError, PermanentError
from pipelines.run_tags import ERROR_CODE_KEY, JOB_ID_TAG, RETRYABLE_KEY, attempt_from_tags, tags_for_job
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore
from resources.settings import get_settings
from warehouse import artifacts, jobs
from warehouse.models import Artifact, Job

_log = structlog.get_logger("kiln.job")

PayloadT = TypeVar("PayloadT", bound=BaseModel)


class JobCanceled(PermanentError):
    code = "canceled"
    title = "The job was canceled"


class JobNotClaimable(PermanentError):
    code = "job_not_claimable"
    title = "This run cannot work on the job"


class InvalidPayload(PermanentError):
    code = "invalid_payload"
    title = "The job's payload does not match its kind's payload model"


@dataclass
class JobHandle:
    """What an asset may do for its job: read it, report progress, store artifacts."""

    database: DatabaseResource
    store: ObjectStore
    job_id: uuid.UUID
    workspace_id: uuid.UUID
    kind: str
    attempt: int
    payload: dict[str, Any]
    subject_id: uuid.UUID | None
    partition_key: str | None
    run_id: str
    asset_key: str
    log: Any = field(repr=False, default=None)

    def params(self, model: type[PayloadT]) -> PayloadT:
        """The payload read with its kind's card model (``JobKind.payload_model``), the one the route wrote it with.

        A payload the model refuses (a row edited by hand, a model changed under queued jobs) fails the job
        permanently, naming the field, instead of an asset guessing at a missing key."""
        try:
            return model.model_validate(self.payload)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(map(str, error["loc"])) or "payload"
            raise InvalidPayload(f"The job's payload is not a valid {model.__name__}: {where}: {error['msg']}.") from None

    def progress(self, percent: int) -> None:
        """Move progress forward (0-100); stops the work if the job was canceled meanwhile."""
        with self.database.tenant_session(self.workspace_id) as session:
            if jobs.set_progress(session, self.job_id, percent):
                return
        self.raise_if_canceled()

    def raise_if_canceled(self) -> None:
        with self.database.tenant_session(self.workspace_id) as session:
            status = jobs.status_of(session, self.job_id, self.workspace_id)
        if status == "canceled":
            raise JobCanceled("The job was canceled while it ran.")

    def store_artifact(
        self,
        *,
        kind: str,
        name: str,
        data: bytes | None = None,
        chunks: Iterable[bytes] | None = None,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        ttl: timedelta | None = None,
        parents: Sequence[uuid.UUID] = (),
        max_bytes: int | None = None,
    ) -> Artifact:
        """Store bytes as an artifact of this job (TTL from the kind's retention unless given).

        ``parents`` records lineage edges from those artifacts to the new one.
        """
        if (data is None) == (chunks is None):
            raise ValueError("pass exactly one of data= or chunks=")
        if ttl is None:
            ttl = get_settings().retention_ttl(kind)
        with self.database.tenant_session(self.workspace_id) as session:
            artifact = artifacts.store_artifact(
                session,
                self.store,
                workspace_id=self.workspace_id,
                kind=kind,
                subject_id=self.subject_id or self.job_id,
                name=name,
                chunks=[data] if data is not None else chunks,
                filename=filename,
                content_type=content_type,
                job_id=self.job_id,
                asset_key=self.asset_key,
                run_id=self.run_id,
                ttl=ttl,
                max_bytes=max_bytes,
            )
            if parents:
                artifacts.add_lineage(
                    session,
                    workspace_id=self.workspace_id,
                    parents=list(parents),
                    child=artifact.id,
                    asset_key=self.asset_key,
                    run_id=self.run_id,
                )
        return artifact


def failure_for(error: KilnError) -> dg.Failure:
    return dg.Failure(
        description=error.message,
        metadata={ERROR_CODE_KEY: error.code, RETRYABLE_KEY: bool(error.retryable)},
        allow_retries=False,  # Kiln's state machine retries, with backoff, through a new run
    )


def _find_job(context: dg.AssetExecutionContext, database: DatabaseResource, kind: str) -> tuple[uuid.UUID, int | None]:
    tags = context.run.tags
    if JOB_ID_TAG in tags:
        return uuid.UUID(tags[JOB_ID_TAG]), attempt_from_tags(tags)
    if not context.has_partition_key:
        raise JobNotClaimable("This asset runs for a Kiln job: materialize one partition, or submit a job.")
    with database.system_session() as session:
        job = jobs.newest_for_partition(session, kind, context.partition_key)
        if job is None:
            raise JobNotClaimable(f"No {kind} job exists for partition {context.partition_key!r}.")
        if job.status in jobs.TERMINAL_STATUSES:
            # A backfill or a manual re-materialization reprocesses the subject as a new job.
            job = jobs.submit_job(
                session,
                workspace_id=job.workspace_id,
                kind=kind,
                payload=dict(job.payload),
                max_attempts=job.max_attempts,
                subject_id=job.subject_id,
                partition_key=job.partition_key,
            ).job
        tags_to_add = tags_for_job(job_id=job.id, workspace_id=job.workspace_id, kind=kind, attempt=job.attempt + 1)
        attempt = job.attempt + 1
    context.instance.add_run_tags(context.run.run_id, tags_to_add)
    return job.id, attempt


def _claim(context: dg.AssetExecutionContext, database: DatabaseResource, store: ObjectStore, kind: str) -> JobHandle:
    job_id, attempt = _find_job(context, database, kind)
    with database.system_session() as session:
        claimed = jobs.claim_job(session, job_id, run_id=context.run.run_id, attempt=attempt)
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotClaimable("The job no longer exists.")
        status = job.status
        handle = JobHandle(
            database=database,
            store=store,
            job_id=job.id,
            workspace_id=job.workspace_id,
            kind=job.kind,
            attempt=job.attempt,
            payload=dict(job.payload or {}),
            subject_id=job.subject_id,
            partition_key=job.partition_key,
            run_id=context.run.run_id,
            asset_key=context.asset_key.to_user_string(),
            log=context.log,
        )
    if not claimed:
        if status == "canceled":
            raise JobCanceled("The job was canceled before it started.")
        raise JobNotClaimable(f"The job is {status} and is not this run's to work on.")
    return handle


@contextmanager
def kiln_job(
    context: dg.AssetExecutionContext, database: DatabaseResource, store: ObjectStore, *, kind: str
) -> Iterator[JobHandle]:
    # Kiln lines of this step carry the ids that join them to the API's lines and the job's runs.
    configure_dagster_logging(get_settings())
    with structlog.contextvars.bound_contextvars(run_id=context.run.run_id, kind=kind):
        try:
            handle = _claim(context, database, store, kind)
        except KilnError as error:
            _log.warning("job_not_started", error_code=error.code, error=error.message)
            raise failure_for(error) from error
        ids = {"job_id": str(handle.job_id), "workspace_id": str(handle.workspace_id), "attempt": handle.attempt}
        with structlog.contextvars.bound_contextvars(**ids):
            context.log.info(
                "kiln job %s (kind %s, workspace %s, attempt %d) run %s",
                handle.job_id, handle.kind, handle.workspace_id, handle.attempt, handle.run_id,
            )
            _log.info("job_step_started", asset_key=handle.asset_key, partition_key=handle.partition_key)
            try:
                yield handle
            except KilnError as error:
                _log.warning("job_step_failed", error_code=error.code, retryable=bool(error.retryable))
                raise failure_for(error) from error
            except Exception as exc:
                _log.error("job_step_failed", error_type=type(exc).__name__)
                raise
            _log.info("job_step_finished")

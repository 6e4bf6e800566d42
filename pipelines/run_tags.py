"""The Dagster run tags that tie a run to a Kiln job (the dispatch contract).

The dispatch sensor writes them on every RunRequest; the asset helper and the run-status sensors
read them back. Dagster tag values are strings.
"""

from __future__ import annotations

from collections.abc import Mapping

JOB_ID_TAG = "kiln/job_id"
WORKSPACE_ID_TAG = "kiln/workspace_id"
KIND_TAG = "kiln/kind"
ATTEMPT_TAG = "kiln/attempt"
REQUEST_ID_TAG = "kiln/request_id"
# The run-queue pool a run waits in (``tag_concurrency_limits`` in dagster.yaml and deploy/dagster.yaml). The dispatch
# helper sets it from the job kind's card (``JobKind.pool``); a sensor may route a run elsewhere (DOCX-only bulk runs).
POOL_TAG = "kiln/pool"
# Dagster's own per-run override of the instance's `run_retries.max_retries`. A Kiln job's attempts
# are counted, backed off and capped by Kiln's state machine (a lost worker becomes `worker_lost`,
# retryable); an automatic Dagster re-execution on top would be an unaccounted attempt that finds
# the job not claimable. Runs without a Kiln job (retention, lineage) keep the instance's retries.
DAGSTER_MAX_RETRIES_TAG = "dagster/max_retries"

# Metadata keys of the dg.Failure an asset raises for a KilnError (read by the run-status sensor).
ERROR_CODE_KEY = "kiln_error_code"
RETRYABLE_KEY = "kiln_retryable"


def tags_for_job(*, job_id: object, workspace_id: object, kind: str, attempt: int, request_id: str | None = None) -> dict[str, str]:
    tags = {
        JOB_ID_TAG: str(job_id),
        WORKSPACE_ID_TAG: str(workspace_id),
        KIND_TAG: kind,
        ATTEMPT_TAG: str(attempt),
        DAGSTER_MAX_RETRIES_TAG: "0",
    }
    if request_id:
        tags[REQUEST_ID_TAG] = request_id
    return tags


def attempt_from_tags(tags: Mapping[str, str]) -> int | None:
    value = tags.get(ATTEMPT_TAG)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

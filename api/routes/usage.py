"""``GET /v1/usage``: today's usage counters of the caller's workspace and the limits that apply."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import DbSession, SettingsDep, WorkspaceReader
from api.problems import problem_responses
from warehouse.db import utcnow
from warehouse.usage import UPLOAD_BYTES, active_jobs_by_kind, next_day_start, usage_day, usage_of_day

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=problem_responses(401, 403, 429))


class LimitsOut(BaseModel):
    """The limits in force (null: that limit is off)."""

    upload_bytes_per_day: int | None = Field(description="Upload request bytes per workspace per UTC day")
    concurrent_jobs_per_kind: int | None = Field(description="Queued + running + retrying jobs of one kind")
    requests_per_minute: int | None = Field(description="Requests per API token per minute, per API process")
    requests_burst_per_second: int | None = Field(description="Requests per API token in any second, per process")
    concurrent_uploads_per_token: int | None = Field(description="Uploads in flight per token, per API process")
    concurrent_uploads_per_workspace: int | None = Field(description="Uploads in flight per workspace, per process")


class UsageOut(BaseModel):
    day: str = Field(description="The UTC day the counters belong to (YYYY-MM-DD)")
    resets_at: datetime = Field(description="When the daily counters start again from zero (next UTC midnight)")
    counters: dict[str, int] = Field(description="Today's counters by metric (upload_bytes, ...)")
    upload_bytes_remaining: int | None = Field(description="Upload bytes left today (null: no daily quota)")
    active_jobs: dict[str, int] = Field(description="Queued, running or retrying jobs by kind")
    limits: LimitsOut


def _on(value: int) -> int | None:
    return value or None


@router.get("", response_model=UsageOut)
def get_usage(principal: WorkspaceReader, session: DbSession, settings: SettingsDep) -> UsageOut:
    now = utcnow()
    day = usage_day(now)
    counters = {UPLOAD_BYTES: 0, **usage_of_day(session, principal.workspace_id, day=day)}
    quota = settings.quota_upload_bytes_per_day
    return UsageOut(
        day=day, resets_at=next_day_start(now), counters=counters,
        upload_bytes_remaining=max(0, quota - counters[UPLOAD_BYTES]) if quota else None,
        active_jobs=active_jobs_by_kind(session, principal.workspace_id),
        limits=LimitsOut(
            upload_bytes_per_day=_on(quota),
            concurrent_jobs_per_kind=_on(settings.quota_concurrent_jobs_per_kind),
            requests_per_minute=_on(settings.rate_limit_requests_per_minute),
            requests_burst_per_second=_on(settings.rate_limit_burst),
            concurrent_uploads_per_token=_on(settings.max_concurrent_uploads_per_token),
            concurrent_uploads_per_workspace=_on(settings.max_concurrent_uploads_per_workspace),
        ),
    )

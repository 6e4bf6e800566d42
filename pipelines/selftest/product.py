"""The selftest card: the platform's built-in job kind, which exercises dispatch, retries and artifacts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipelines.card import JobKind, ProductCard

KIND = "selftest"


class SelftestPayload(BaseModel):
    """The built-in test kind: echo ``message`` into an artifact, failing on purpose if asked."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    fail_times: int = Field(default=0, ge=0, le=20, description="Fail retryably this many times first")
    fail_permanently: bool = Field(default=False, description="Fail with a permanent error")


CARD = ProductCard(
    name="selftest",
    summary="Platform self-test: writes the message as an artifact",
    job_kinds=(
        JobKind(KIND, partitions="selftest_jobs", payload_model=SelftestPayload,
                description="Platform self-test: writes the message as an artifact"),
    ),
    artifact_ttls={"input": "retention_days_input", "output": "retention_days_output"},
    route_prefix="/v1/jobs",
)

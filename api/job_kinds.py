"""The registry of job kinds the API accepts on ``POST /v1/jobs``.

A product registers its kind once (``register_job_kind("video_notes", VideoNotesPayload)``);
the API validates the payload with that model and uses its ``max_attempts``. ``selftest`` is the
platform's built-in kind: it exercises the whole dispatch, retry and artifact path end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class JobKind:
    name: str
    payload_model: type[BaseModel]
    max_attempts: int | None = None  # None: settings.job_max_attempts
    description: str = ""


_REGISTRY: dict[str, JobKind] = {}


def register_job_kind(
    name: str, payload_model: type[BaseModel], *, max_attempts: int | None = None, description: str = ""
) -> JobKind:
    kind = JobKind(name, payload_model, max_attempts, description)
    existing = _REGISTRY.get(name)
    if existing is not None and existing.payload_model is not payload_model:
        raise ValueError(f"job kind {name!r} is already registered with another payload model")
    _REGISTRY[name] = kind
    return kind


def get_job_kind(name: str) -> JobKind | None:
    return _REGISTRY.get(name)


def job_kinds() -> list[str]:
    return sorted(_REGISTRY)


class SelftestPayload(BaseModel):
    """The built-in test kind: echo ``message`` into an artifact, failing on purpose if asked."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    fail_times: int = Field(default=0, ge=0, le=20, description="Fail retryably this many times first")
    fail_permanently: bool = Field(default=False, description="Fail with a permanent error")


register_job_kind("selftest", SelftestPayload, description="Platform self-test: writes the message as an artifact")

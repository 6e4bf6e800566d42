"""The registry of job kinds the API accepts on ``POST /v1/jobs``.

A product registers its kind once (``register_job_kind("my_kind", MyPayload)``); the API validates the
payload with that model and uses its ``max_attempts``. A kind whose jobs need the product's own route (an
upload, a subject row, its partition key) registers with ``submit_via_jobs_api=False, product_route="POST
/v1/videos"``: ``POST /v1/jobs`` then answers 422 ``use_product_route`` naming that route. ``selftest`` is the
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
    # False: the kind needs its product's own route (an upload, a subject row, its own partition key), and
    # ``POST /v1/jobs`` answers 422 ``use_product_route`` naming ``product_route`` instead of queueing a job
    # no sensor could run correctly.
    submit_via_jobs_api: bool = True
    product_route: str | None = None


_REGISTRY: dict[str, JobKind] = {}


def register_job_kind(
    name: str,
    payload_model: type[BaseModel],
    *,
    max_attempts: int | None = None,
    description: str = "",
    submit_via_jobs_api: bool = True,
    product_route: str | None = None,
) -> JobKind:
    if not submit_via_jobs_api and not product_route:
        raise ValueError(f"job kind {name!r} is not submitted via /v1/jobs: name the route that submits it")
    kind = JobKind(name, payload_model, max_attempts, description, submit_via_jobs_api, product_route)
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

"""The job kinds the API accepts on ``POST /v1/jobs``, read from the product cards (``pipelines/products.py``).

The API validates a payload with its kind's model and uses its ``max_attempts``. A kind whose jobs need the
product's own route (an upload, a subject row, its partition key) says ``submit_via_jobs_api=False`` on its
card: ``POST /v1/jobs`` then answers 422 ``use_product_route`` naming that route. ``selftest`` is the
platform's built-in kind: it exercises the whole dispatch, retry and artifact path end to end.
"""

from __future__ import annotations

from pipelines import products
from pipelines.card import JobKind

__all__ = ["JobKind", "get_job_kind", "job_kinds"]


def get_job_kind(name: str) -> JobKind | None:
    return products.all_job_kinds().get(name)


def job_kinds() -> list[str]:
    return sorted(products.all_job_kinds())

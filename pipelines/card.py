"""The shape of a product card (``pipelines/<product>/product.py``), plain Python.

A card names what the rest of the code must agree on for one product: its job kinds (each with the
dynamic partitions its runs use, its payload model, ``max_attempts`` and pool), the artifact kinds it
stores with the setting that holds their TTL, and the product's route prefix. ``pipelines/products.py``
lists the cards; that list is the only registry (the API's job-kind checks, the dispatch sensors,
retention's partition pruning and the generated docs read it). No Dagster, FastAPI or database import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

POOLS = ("gpu", "libreoffice", "linkedin", "render")


@dataclass(frozen=True)
class JobKind:
    """One kind of job: what ``job.kind`` holds, how its runs are partitioned and where it queues."""

    name: str
    partitions: str  # the DynamicPartitionsDefinition its runs add their partition keys to
    payload_model: type[BaseModel]
    description: str = ""
    max_attempts: int | None = None  # None: settings.job_max_attempts
    pool: str | None = None  # the run-queue pool (``kiln/pool`` tag) its heavy runs go to; None: no pool
    # False: the kind needs its product's own route (an upload, a subject row, its own partition key), and
    # ``POST /v1/jobs`` answers 422 ``use_product_route`` naming ``product_route`` instead of queueing a job
    # no sensor could run correctly.
    submit_via_jobs_api: bool = True
    product_route: str | None = None

    def __post_init__(self) -> None:
        if not self.submit_via_jobs_api and not self.product_route:
            raise ValueError(f"job kind {self.name!r} is not submitted via /v1/jobs: name the route that submits it")
        if self.pool is not None and self.pool not in POOLS:
            raise ValueError(f"job kind {self.name!r}: unknown pool {self.pool!r} (known: {', '.join(POOLS)})")


@dataclass(frozen=True)
class ProductCard:
    """One product: its job kinds, artifact kinds (-> the ``Settings`` field holding their TTL in days)
    and the prefix of its HTTP routes (None: the product has no routes of its own)."""

    name: str
    job_kinds: tuple[JobKind, ...]
    artifact_ttls: Mapping[str, str] = field(default_factory=dict)
    route_prefix: str | None = None
    summary: str = ""

    def kind(self, name: str | None = None) -> JobKind:
        """The job kind called ``name`` (default: the product's only kind)."""
        if name is None:
            if len(self.job_kinds) != 1:
                raise ValueError(f"product {self.name!r} has {len(self.job_kinds)} job kinds: name one")
            return self.job_kinds[0]
        for kind in self.job_kinds:
            if kind.name == name:
                return kind
        raise KeyError(name)

"""The list of product cards: the only registry of products.

The API's job-kind checks (``api/job_kinds.py``), the dispatch sensors, retention's partition pruning
and the generated docs all read ``PRODUCTS``; nothing registers itself at import time. Adding a product
means adding its card here (and its defs to ``pipelines/definitions.py``); removing it here removes it
everywhere that reads the list.
"""

from __future__ import annotations

from pipelines.card import JobKind, ProductCard
from pipelines.documents.product import CARD as DOCUMENTS
from pipelines.episodes.product import CARD as EPISODES
from pipelines.linkedin.product import CARD as LINKEDIN
from pipelines.selftest.product import CARD as SELFTEST
from pipelines.video_notes.product import CARD as VIDEO_NOTES

PRODUCTS: tuple[ProductCard, ...] = (SELFTEST, VIDEO_NOTES, DOCUMENTS, LINKEDIN, EPISODES)


def all_job_kinds(products: tuple[ProductCard, ...] | None = None) -> dict[str, JobKind]:
    """Job kind name -> its card entry, over every listed product."""
    kinds: dict[str, JobKind] = {}
    for product in PRODUCTS if products is None else products:
        for kind in product.job_kinds:
            if kind.name in kinds:
                raise ValueError(f"job kind {kind.name!r} is named by two product cards")
            kinds[kind.name] = kind
    return kinds


def partitions_by_kind(products: tuple[ProductCard, ...] | None = None) -> dict[str, str]:
    """Job kind -> the dynamic partitions definition its runs use (retention prunes these)."""
    return {name: kind.partitions for name, kind in all_job_kinds(products).items()}


def product_of_kind(name: str) -> ProductCard | None:
    for product in PRODUCTS:
        if any(kind.name == name for kind in product.job_kinds):
            return product
    return None

"""The document generation card: DOCX templates filled from field values or a spreadsheet of rows.

Template analysis and single fills are synchronous in the API; only bulk runs are jobs.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipelines.card import JobKind, ProductCard

KIND = "documents_bulk"
PARTITIONS = "bulk_runs"  # partition key: the bulk run's id
POOL = "libreoffice"  # PDF runs queue in this pool (one warm LibreOffice per run worker)


class BulkRunPayload(BaseModel):
    """The ``documents_bulk`` job payload, written by the bulk-run routes (start, resume, retry-failed)."""

    model_config = ConfigDict(extra="forbid")

    bulk_run_id: uuid.UUID
    mode: Literal["run", "resume", "retry_failed"] = "run"


CARD = ProductCard(
    name="documents",
    summary="Document generation: fill a DOCX template for every row of a spreadsheet",
    job_kinds=(
        JobKind(KIND, partitions=PARTITIONS, payload_model=BulkRunPayload, pool=POOL,
                description="Document generation: a bulk run (ZIP of filled DOCX/PDF plus a per-row report)",
                submit_via_jobs_api=False, product_route="POST /v1/templates/{id}/bulk-runs"),
    ),
    artifact_ttls={"input": "retention_days_input", "intermediate": "retention_days_intermediate",
                   "output": "retention_days_output", "archive": "retention_days_archive"},
    route_prefix="/v1/templates",
)

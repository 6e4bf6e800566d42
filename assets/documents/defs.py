"""Definitions of the Document generation product (merged into pipelines/definitions.py)."""

import dagster as dg

from assets.documents.assets import bulk_run_outputs
from resources.dagster_resources import document_converter
from sensors.documents import bulk_docx_job, bulk_pdf_job, bulk_runs_dispatch_sensor

defs = dg.Definitions(
    assets=[bulk_run_outputs],
    jobs=[bulk_docx_job, bulk_pdf_job],
    sensors=[bulk_runs_dispatch_sensor],
    # One converter per run worker: its own LibreOffice profile, warm across the run's batches.
    resources={"document_converter": document_converter},
)

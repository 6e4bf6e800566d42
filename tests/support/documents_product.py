"""Helpers for the Document generation product tests: templates, CSVs, and one daemon cycle."""

from __future__ import annotations

import io
import zipfile

import dagster as dg

from assets.documents.assets import bulk_run_outputs
from resources.converter import DocumentConverter
from sensors.documents import bulk_docx_job, bulk_pdf_job, bulk_runs_dispatch_sensor
from tests.support.corpus import PUBLIC
from tests.support.dagster_runs import add_requested_partitions, report_run_to_sensors

CSV_DIR = PUBLIC / "csv"
DOCX_DIR = PUBLIC / "docx"


def docx_with_paragraphs(paragraphs: list[list[str]], base: str = "preserve_spaces_tpl.docx") -> bytes:
    """A corpus template whose body is replaced by these paragraphs (each a list of runs)."""
    body = "".join(
        "<w:p>" + "".join(f'<w:r><w:t xml:space="preserve">{t}</w:t></w:r>' for t in runs) + "</w:p>"
        for runs in paragraphs)
    xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           f"<w:body>{body}</w:body></w:document>")
    out = io.BytesIO()
    with zipfile.ZipFile(DOCX_DIR / base) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, xml if info.filename == "word/document.xml" else src.read(info))
    return out.getvalue()


def name_email_template() -> bytes:
    """Fits mailmerge_database_with_BOM.csv: {{ name }} and {{ email }}, the tag split across runs."""
    return docx_with_paragraphs([["Dear {{ na", "me }},"], ["We will write to {{ email }}."]])


def country_template() -> bytes:
    """Fits country-codes.csv (249 rows): the English short name and the ISO code."""
    return docx_with_paragraphs([["Country: ${official_name_en}"], ["ISO code: ${ISO3166-1-Alpha-2}"]])


def docx_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("word/document.xml").decode("utf-8")


def run_bulk_cycle(instance, resources: dict, *, converter: DocumentConverter | None = None):
    """One daemon cycle for bulk runs: sensor tick, the requested run(s) in process, run-status sensors."""
    tick = bulk_runs_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    add_requested_partitions(instance, tick)
    results = []
    all_resources = {**resources, "document_converter": converter or DocumentConverter()}
    defs = dg.Definitions(assets=[bulk_run_outputs], jobs=[bulk_docx_job, bulk_pdf_job], resources=all_resources)
    for run_request in tick.run_requests:
        job_def = defs.resolve_job_def(run_request.job_name)
        result = job_def.execute_in_process(partition_key=run_request.partition_key, tags=run_request.tags,
                                            instance=instance, raise_on_error=False)
        report_run_to_sensors(instance, result, resources)
        results.append((run_request, result))
    return results


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    """A real workbook (openpyxl) with ``rows`` on its first sheet."""
    from openpyxl import Workbook

    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

"""Checking a bulk run's form and spreadsheet at submit, before anything is kept (api/routes/bulk_runs.py).

The spreadsheet is read in a worker thread (the caller's ``anyio.to_thread``), without a database
connection, within bounds: its size (``KILN_MAX_UPLOAD_BYTES``), its rows (``KILN_DOCUMENTS_MAX_ROWS``,
422 ``too_many_rows``) and its time (``KILN_DOCUMENTS_PARSE_SECONDS``, 422 ``parse_budget_exceeded``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.problems import ApiProblem
from api.schemas import has_control_chars
from api.uploads import StreamedUpload
from pipelines.documents.tabular import check_columns, count_rows, iter_rows, pattern_fields
from resources.settings import Settings
from warehouse.documents import TemplateField, TemplateVersion

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_PATTERN = "row-{row}"


def check_spreadsheet(store, settings: Settings, upload: StreamedUpload, required: list[str], pattern: str) -> str:
    """Check the header against the template and count the rows (422 ``too_many_rows``), within
    ``documents_parse_seconds``; answers the upload's content type, told by its bytes. Runs in a
    worker thread and touches no database connection: it reads a file of up to ``max_upload_bytes``."""
    with tempfile.TemporaryDirectory(prefix="kiln-rows-") as tmp:
        path = Path(tmp, "rows")  # a server-made name: the reader tells CSV from XLSX by content
        store.download_to(upload.key, str(path))
        columns, rows = iter_rows(path)  # XLSX: bounded expansion first (422 xlsx_zip_bomb)
        try:
            check_columns(columns, required)
        except BaseException:
            rows.close()
            raise
        count_rows(rows, settings.documents_max_rows, settings.documents_parse_seconds)
        with open(path, "rb") as fh:
            is_xlsx = fh.read(4) == b"PK\x03\x04"
    unknown = [f for f in pattern_fields(pattern) if f != "row" and f not in columns]
    if unknown:
        raise ApiProblem(422, "invalid_filename_pattern",
                         f"filename_pattern names columns the spreadsheet lacks: {', '.join(unknown)}.",
                         missing=unknown)
    return XLSX_TYPE if is_xlsx else "text/csv"


def required_fields(session: Session, version: TemplateVersion) -> list[str]:
    return list(session.scalars(select(TemplateField.name).where(
        TemplateField.workspace_id == version.workspace_id, TemplateField.template_version_id == version.id,
        TemplateField.required.is_(True))))


def form_options(fields: dict[str, str], upload: StreamedUpload | None) -> tuple[str, str, str | None]:
    """(format, filename_pattern, source_url) from the form, checked before any parsing."""
    fmt = fields.get("format", "docx")
    if fmt not in ("docx", "pdf", "both"):
        raise ApiProblem(422, "invalid_format", "format must be docx, pdf or both.")
    pattern = (fields.get("filename_pattern") or DEFAULT_PATTERN).strip()[:255]
    source_url = (fields.get("source_url") or "").strip() or None
    if has_control_chars(pattern) or (source_url and has_control_chars(source_url)):
        raise ApiProblem(422, "invalid_filename_pattern" if has_control_chars(pattern) else "invalid_source_url",
                         "filename_pattern and source_url must not hold control characters (such as NUL).")
    if upload is None and source_url is None:
        raise ApiProblem(422, "missing_file", "Send the spreadsheet in the 'file' field, or a 'source_url'.")
    if upload is not None and source_url is not None:
        raise ApiProblem(422, "ambiguous_input", "Send either a file or a source_url, not both.")
    return fmt, pattern, source_url

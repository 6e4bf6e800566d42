"""Outputs of a bulk run: the per-row report CSV and the streamed ZIP, always rebuilt from every
recorded row so both describe the whole run (first attempt, resume or retry alike)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from assets.documents.bulk_rows import BulkEnv
from pipelines.documents.archive import zip_chunks
from pipelines.documents.tabular import ReportWriter
from resources.objectstore import file_chunks
from warehouse.artifacts import store_artifact
from warehouse.documents import rows_in_order, succeeded_row_files


def _succeeded_files(env: BulkEnv, bulk_run_id: uuid.UUID) -> list[tuple[int, str, str, str]]:
    """(row, extension, name in the ZIP, storage key) of every succeeded row's files, in row order."""
    with env.sessions() as s:
        rows = succeeded_row_files(s, env.workspace_id, bulk_run_id)
    files = []
    for index, docx_name, docx_key, pdf_name, pdf_key in rows:
        if docx_name:
            files.append((index, "docx", docx_name, docx_key))
        if pdf_name:
            files.append((index, "pdf", pdf_name, pdf_key))
    return files


def _zip_entries(env: BulkEnv, files: list[tuple[int, str, str, str]], scratch: Path) -> Iterator[tuple[Path, str]]:
    """Files rendered by this run come from scratch; earlier attempts' files are fetched one at a time
    (``zip_chunks`` streams each entry before asking for the next, so one scratch file serves all)."""
    fetched = scratch / "fetched"
    for index, extension, name, key in files:
        local = scratch / f"{index:07d}.{extension}"
        if not local.exists():
            env.store.download_to(key, str(fetched))
            local = fetched
        yield local, name


def _report_rows(env: BulkEnv, bulk_run_id: uuid.UUID, fmt: str, out: Path) -> None:
    extra = ["pdf_filename", "pdf_sha256"] if fmt == "both" else []
    with env.sessions() as s, open(out, "w", encoding="utf-8", newline="") as fh:
        writer = ReportWriter(fh, extra_columns=extra)
        for r in rows_in_order(s, bulk_run_id):
            primary_name = r.pdf_filename if fmt == "pdf" else r.docx_filename
            primary_sha = r.pdf_sha256 if fmt == "pdf" else r.docx_sha256
            writer.write(r.row_index, r.status, r.error_code or "", r.error_message or "", primary_name or "",
                         primary_sha or "", extra={"pdf_filename": r.pdf_filename or "", "pdf_sha256": r.pdf_sha256 or ""})


def write_outputs(env: BulkEnv, bulk_run_id: uuid.UUID, fmt: str, input_artifact_id: uuid.UUID,
                   scratch: Path) -> tuple[uuid.UUID, uuid.UUID]:
    report_path = scratch / "report.csv"
    _report_rows(env, bulk_run_id, fmt, report_path)
    files = _succeeded_files(env, bulk_run_id)
    common = dict(workspace_id=env.workspace_id, subject_id=bulk_run_id, job_id=env.job_id,
                  asset_key=env.asset_key, run_id=env.run_id)
    with env.sessions() as s:
        report = store_artifact(s, env.store, kind="output", name="report.csv", chunks=file_chunks(report_path),
                                filename="report.csv", content_type="text/csv; charset=utf-8",
                                ttl=env.settings.retention_ttl("output"), **common)
        archive = store_artifact(s, env.store, kind="archive", name="documents.zip",
                                 chunks=zip_chunks(_zip_entries(env, files, scratch)),
                                 filename="documents.zip", content_type="application/zip",
                                 ttl=env.settings.retention_ttl("archive"), **common)
        _lineage(s, env, input_artifact_id, report.id, archive.id)
        return archive.id, report.id


def _lineage(session, env: BulkEnv, input_artifact_id: uuid.UUID, *children: uuid.UUID) -> None:
    from warehouse.artifacts import add_lineage

    for child in children:
        add_lineage(session, workspace_id=env.workspace_id, parents=[input_artifact_id], child=child,
                    asset_key=env.asset_key, run_id=env.run_id)


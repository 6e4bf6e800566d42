"""Dagster resources for the system-of-record database, the document converter, and the default resource set.

The boundaries themselves are plain classes (``resources/objectstore*.py``, ``resources/converter.py``) that
the API uses without loading Dagster; assets ask for them as ``dg.ResourceParam[...]``.

``DatabaseResource`` leaves ``url`` unset by default and resolves it from ``KILN_DATABASE_URL`` at
run time, so a database password never lands in Dagster's resource config (shown in the UI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from resources.settings import Settings, get_settings
from warehouse import db


class DatabaseResource(dg.ConfigurableResource):
    """The system-of-record database (SQLite file or PostgreSQL) for sensors and assets."""

    url: str | None = None  # None: KILN_DATABASE_URL, or the embedded SQLite file under KILN_HOME

    def resolved_url(self) -> str:
        return self.url or get_settings().resolved_database_url

    def engine(self) -> Engine:
        # engine_for caches one engine (and its pool) per URL for the life of the process.
        return db.engine_for(self.resolved_url())

    @contextmanager
    def system_session(self) -> Iterator[Session]:
        """One cross-tenant transaction (dispatch, run-status mapping, retention)."""
        with db.system_session(self.engine()) as session:
            yield session

    @contextmanager
    def tenant_session(self, workspace_id: uuid.UUID | str) -> Iterator[Session]:
        """One transaction scoped to a workspace (row-level security on PostgreSQL)."""
        with db.tenant_session(self.engine(), workspace_id) as session:
            yield session


@dg.resource(description="DOCX -> PDF converter: one LibreOffice profile per run, removed when the run ends")
def document_converter(_context: dg.InitResourceContext) -> Iterator[Any]:
    from resources.converter_pool import ConverterPool, converter_count

    # One LibreOffice per core (KILN_DOCUMENTS_PDF_CONVERTERS), each its own profile: a bulk PDF
    # run converts its batch's parts concurrently.
    converter = ConverterPool(converter_count(get_settings().documents_pdf_converters))
    try:
        yield converter
    finally:
        converter.close()


def default_resources(settings: Settings | None = None) -> dict[str, Any]:
    """The resources every Kiln asset and sensor may ask for, built from settings.

    Without ``settings`` the database URL is resolved lazily from the environment (see above).
    """
    from resources.objectstore_factory import build_object_store

    if settings is None:
        return {"database": DatabaseResource(), "object_store": build_object_store(get_settings())}
    return {
        "database": DatabaseResource(url=settings.resolved_database_url),
        "object_store": build_object_store(settings),
    }

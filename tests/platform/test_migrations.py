"""Migrations are reversible and produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from warehouse.db import make_engine, normalize_url
from warehouse.migrate import downgrade, upgrade
from warehouse.all_models import Base  # every product's tables too
from warehouse.models import TENANT_TABLES

from tests.conftest import POSTGRES_URL_ENV


@pytest.fixture
def scratch_sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'migrations.db'}"


@pytest.fixture
def scratch_postgres_url(postgres_database) -> Iterator[str]:
    """An empty database of its own: the round trip drops every table, so never the shared one."""
    admin_url = normalize_url(os.environ[POSTGRES_URL_ENV])
    name = f"kiln_migr_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def scratch_url(request) -> str:
    return request.getfixturevalue(f"scratch_{request.param}_url")


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(scratch_url):
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(Base.metadata.tables)
    downgrade(scratch_url, "base")
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(Base.metadata.tables)
    assert _schema_differences(scratch_url) == []


def test_each_revision_steps_down_and_up(scratch_url):
    upgrade(scratch_url)
    downgrade(scratch_url, "0001")
    upgrade(scratch_url, "0002")
    downgrade(scratch_url, "0001")
    upgrade(scratch_url)
    assert _schema_differences(scratch_url) == []


def test_migrated_schema_matches_the_models(scratch_url):
    upgrade(scratch_url)
    assert _schema_differences(scratch_url) == []


@pytest.mark.postgres
def test_row_level_security_comes_and_goes_with_revision_0002(scratch_postgres_url):
    def forced_tables() -> set[str]:
        engine = make_engine(scratch_postgres_url)
        try:
            with engine.connect() as conn:
                return set(
                    conn.execute(text("SELECT relname FROM pg_class WHERE relforcerowsecurity AND relkind = 'r'")).scalars()
                )
        finally:
            engine.dispose()

    platform_tables = {"workspace", "app_user", *TENANT_TABLES}
    upgrade(scratch_postgres_url)
    assert forced_tables() == set(Base.metadata.tables)
    downgrade(scratch_postgres_url, "0001")
    assert forced_tables() & platform_tables == set()
    upgrade(scratch_postgres_url)
    assert forced_tables() == set(Base.metadata.tables)

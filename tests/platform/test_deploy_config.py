"""The Dagster instance files load, validate against Dagster's own schema, and instantiate.

The production file is instantiated for real against PostgreSQL (dagster-postgres creates its
tables) and a one-asset run is executed on it, which is what catches a wrong driver scheme.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL_ENV
from warehouse.db import normalize_url

ROOT = Path(__file__).resolve().parents[2]
LOCAL_FILE = ROOT / "dagster.yaml"
DEPLOY_FILE = ROOT / "deploy" / "dagster.yaml"
POOLS = {"gpu", "libreoffice", "linkedin", "render"}


def _limits(coordinator: QueuedRunCoordinator) -> list[dict]:
    return list(coordinator.inst_data.config_dict["tag_concurrency_limits"])


def _assert_concurrency_contract(limits: list[dict]) -> None:
    pools = {limit["value"] for limit in limits if limit["key"] == "kiln/pool"}
    assert pools == POOLS
    per_workspace = [limit for limit in limits if limit["key"] == "kiln/workspace_id"]
    assert per_workspace and per_workspace[0]["value"] == {"applyLimitPerUniqueValue": True}
    assert all(limit["limit"] >= 1 for limit in limits)


@pytest.mark.parametrize("path", [LOCAL_FILE, DEPLOY_FILE], ids=["local", "deploy"])
def test_instance_file_passes_dagsters_schema(path, monkeypatch):
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_COMPUTE_LOG_BUCKET"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_PREFIX", "compute-logs")
    config, custom_class = dagster_instance_config(str(path.parent))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"]["enabled"] is True
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_local_instance_instantiates_with_sqlite_storage_under_dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(LOCAL_FILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance_from(home) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert 1 <= coordinator.inst_data.config_dict["max_concurrent_runs"] <= 8
        _assert_concurrency_contract(_limits(coordinator))
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
    assert any(home.rglob("*.db")), "storage files live under DAGSTER_HOME"


def DagsterInstance_from(home: Path) -> dg.DagsterInstance:  # noqa: N802 - reads like the constructor it wraps
    return dg.DagsterInstance.from_config(str(home))


@pytest.fixture
def dagster_postgres_env(postgres_database, monkeypatch) -> Iterator[None]:
    """A database of its own for Dagster's storage, and the env vars deploy/dagster.yaml reads."""
    admin_url = make_url(normalize_url(os.environ[POSTGRES_URL_ENV]))
    name = f"kiln_dagster_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    env = {
        "DAGSTER_PG_USERNAME": admin_url.username,
        "DAGSTER_PG_PASSWORD": admin_url.password or "",
        "DAGSTER_PG_HOST": admin_url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(admin_url.port or 5432),
        "DAGSTER_PG_DB": name,
        "DAGSTER_COMPUTE_LOG_BUCKET": "kiln-compute-logs",
        "DAGSTER_COMPUTE_LOG_PREFIX": "dagster/compute",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dg.asset
def deploy_config_probe() -> int:
    return 1


@pytest.mark.postgres
def test_production_instance_runs_on_postgres_storage(dagster_postgres_env, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_FILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance_from(home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        _assert_concurrency_contract(_limits(coordinator))
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert not instance.run_retries_retry_on_asset_or_op_failure, "crashes only; Kiln retries asset errors"

        # An in-process run writes its events through dagster-postgres (NOTIFY included). Compute
        # logs are captured only by run workers, so S3 is not touched here.
        result = dg.materialize([deploy_config_probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success

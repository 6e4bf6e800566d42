"""The whole code location loads, as `dagster definitions validate` and the webserver load it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[2]


def test_workspace_yaml_validates_with_the_dagster_cli(tmp_path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "KILN_HOME": str(tmp_path / "kiln")}
    env.pop("KILN_DATABASE_URL", None)
    cli = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(cli), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Validation successful for code location kiln" in output


def test_definitions_hold_the_platform_jobs_sensors_and_resources():
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("selftest_job").partitions_def.name == "selftest_jobs"
    for job_name in ("retention_job", "lineage_warehouse_job"):
        assert defs.resolve_job_def(job_name) is not None, "maintenance definitions are merged in"
    sensor_names = {sensor.name for sensor in defs.sensors}
    assert {"selftest_dispatch_sensor", "kiln_run_started", "kiln_run_succeeded", "kiln_run_failed", "kiln_run_canceled"} <= sensor_names
    for name in sensor_names & {"selftest_dispatch_sensor", "kiln_run_failed"}:
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert {"database", "object_store"} <= set(defs.resources)


def test_database_url_is_not_baked_into_resource_config():
    from pipelines.definitions import defs

    assert defs.resources["database"].url is None, "resolved from KILN_DATABASE_URL at run time, never shown in the UI"

"""Shared helpers of the tests that play the Dagster daemon by hand (no tests here).

A daemon cycle in a test is: tick a dispatch sensor, add the partitions it asks for, execute the
requested run in process with the request's tags, then ``report_run_to_sensors`` hands the run's
start and outcome events to Kiln's run-status sensors exactly as the daemon would.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster import DagsterEventType

from resources.settings import get_settings
from sensors import run_status


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries are due at once (``KILN_RETRY_BASE_SECONDS=0``), so a test can run the next attempt."""
    monkeypatch.setenv("KILN_RETRY_BASE_SECONDS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def add_requested_partitions(instance: dg.DagsterInstance, tick) -> None:
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def report_run_to_sensors(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, resources: dict) -> None:
    """Run-started, then run-succeeded or run-failed, for one finished in-process run."""
    run = instance.get_run_by_id(result.run_id)
    start = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_START)
    events = [(run_status.kiln_run_started, start)]
    if result.success:
        events.append((run_status.kiln_run_succeeded, result.get_run_success_event()))
    else:
        events.append((run_status.kiln_run_failed, result.get_run_failure_event()))
    for sensor, event in events:
        sensor(dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=event,
                                                  dagster_instance=instance, dagster_run=run, resources=resources))

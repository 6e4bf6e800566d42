"""Video notes under a real crash: the run worker is SIGKILLed mid-transcription, then the job resumes.

The worker is its own process (``tests/support/video_kill_worker.py``) sharing the SQLite database, the object
directory and the Dagster instance with the test; its transcriber signals that it has started and then
hangs, so the kill lands inside the transcript step. The test then plays the daemon: run monitoring marks
the lost run failed, the run-status sensors turn that into a retryable ``worker_lost``, and the next
dispatched attempt (in process, real whisper) reuses what attempt 1 had already stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType, DagsterRunStatus
from sqlalchemy import select

from pipelines.run_tags import JOB_ID_TAG
from resources.dagster_resources import DatabaseResource
from resources.llm import LLM
from sensors import run_status
from sensors.video_notes import video_notes_dispatch_sensor
from tests.support.corpus import PUBLIC
from tests.support.dagster_runs import add_requested_partitions
from tests.support.api import api  # noqa: F401 - fixture
from tests.support.video_product import (  # noqa: F401
    VideoWorld,
    no_backoff,
    test_transcriber,
    whisper_cache,
)
from warehouse.db import system_session
from warehouse.models import Artifact

REPO = Path(__file__).resolve().parents[2]


def _artifacts(world: VideoWorld, job_id: str) -> dict[str, list[Artifact]]:
    with system_session(world.api.system) as s:
        rows = list(s.scalars(select(Artifact).where(Artifact.job_id == uuid.UUID(job_id))))
        s.expunge_all()
    by_name: dict[str, list[Artifact]] = {}
    for a in rows:
        by_name.setdefault(a.filename, []).append(a)
    return by_name


def _report_lost_run(instance: dg.DagsterInstance, run: dg.DagsterRun, resources: dict) -> None:
    """What the daemon does for a run whose worker died: run monitoring fails it, the sensors see it."""
    instance.report_run_failed(run, message="run worker lost (killed)")
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE

    def event_of(kind: DagsterEventType) -> dg.DagsterEvent:
        (record,) = instance.get_records_for_run(run_id=run.run_id, of_type=kind).records
        return record.event_log_entry.dagster_event

    for sensor, kind in ((run_status.kiln_run_started, DagsterEventType.RUN_START),
                         (run_status.kiln_run_failed, DagsterEventType.RUN_FAILURE)):
        sensor(dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=event_of(kind),
                                                  dagster_instance=instance, dagster_run=failed, resources=resources))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worker_killed_mid_transcription_is_retried_and_reuses_finished_stages(
        api, db_url, test_transcriber, no_backoff, tmp_path, monkeypatch):  # noqa: F811
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "KILN_DATABASE_URL": db_url,
           "KILN_OBJECTS_DIR": api.store.root, "PYTHONPATH": str(REPO)}
    ready = tmp_path / "transcribing"

    resources = {"database": DatabaseResource(url=db_url), "object_store": api.store,
                 "transcriber": test_transcriber, "llm": LLM()}
    with dg.DagsterInstance.get() as instance:  # the instance the worker process shares
        world = VideoWorld(api, instance, resources, api.tenant("owner"))
        r = world.upload(PUBLIC / "audio/jfk.flac")
        assert r.status_code == 202, r.text
        video_id, job_id = r.json()["id"], r.json()["job_id"]

        tick = video_notes_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=world.resources))
        add_requested_partitions(instance, tick)
        (request,) = tick.run_requests
        assert request.partition_key == video_id
        spec = json.dumps({"partition_key": request.partition_key, "tags": request.tags})
        worker = subprocess.Popen([sys.executable, "-m", "tests.support.video_kill_worker", spec, str(ready)],
                                  cwd=REPO, env=env)
        try:
            while not ready.exists() and worker.poll() is None:
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        assert ready.exists(), f"the worker exited ({worker.returncode}) before it began transcribing"
        assert worker.returncode == -signal.SIGKILL

        (lost_run,) = instance.get_runs(filters=dg.RunsFilter(tags={JOB_ID_TAG: job_id}))
        assert lost_run.status == DagsterRunStatus.STARTED, "nobody told Dagster the worker died"
        before = _artifacts(world, job_id)
        assert {"probe.json", "audio.wav"} <= set(before) and "transcript.json" not in before

        _report_lost_run(instance, lost_run, world.resources)
        info = world.get(f"/v1/videos/{video_id}").json()
        assert (info["status"], info["error_code"]) == ("retrying", "worker_lost"), info

        second = world.daemon_cycle()  # requeue (no backoff) -> dispatch attempt 2 -> run it in process
        assert second is not None and second.success
        assert second.run_id != lost_run.run_id

    job = world.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["attempt"]) == ("succeeded", 2), job
    assert world.get(f"/v1/videos/{video_id}").json()["status"] == "succeeded"
    notes = world.get(f"/v1/videos/{video_id}/notes").json()
    assert notes["job_id"] == job_id and notes["segments"], notes
    assert "country" in " ".join(s["text"].lower() for s in notes["segments"])

    after = _artifacts(world, job_id)
    assert all(len(v) == 1 for v in after.values()), "nothing stored twice"
    for name in ("probe.json", "audio.wav"):
        assert after[name][0].id == before[name][0].id, f"{name} was recomputed"
        assert after[name][0].run_id == lost_run.run_id
    assert after["transcript.json"][0].run_id == second.run_id

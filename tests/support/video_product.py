"""Shared helpers of the video notes product tests (imported by tests/test_video_product_*.py; no tests here).

``VideoWorld`` is the whole product on one machine: the real API (``tests.support.api.api``),
a Dagster test instance, and one daemon cycle done by hand exactly as the daemon would: tick the
dispatch sensor, add its partitions, execute the requested run in process with the request's tags,
and hand the run's events to the run-status sensors.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from assets.video_notes.assets import VIDEO_NOTES_ASSETS
from resources.dagster_resources import DatabaseResource
from resources.llm import LLM
from resources.transcriber import Transcriber
from sensors.video_notes import video_notes_dispatch_sensor, video_notes_job
from tests.support.dagster_runs import add_requested_partitions, no_backoff, report_run_to_sensors  # noqa: F401
from tests.support.api import ApiEnv, Seeded, path_of
from warehouse.db import system_session
from warehouse.video_notes import VideoAsset


@pytest.fixture(scope="session")
def whisper_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("whisper-cache")


@pytest.fixture(scope="session")
def test_transcriber(whisper_cache) -> Transcriber:
    """The shipped base model, beam 1 (fast enough for tests; the benchmark uses beam 5)."""
    transcriber = Transcriber(model="base", device="cpu", compute_type="int8", cpu_threads=2, beam_size=1,
                              cache_dir=str(whisper_cache))
    transcriber.load_model()
    return transcriber


@dataclass
class VideoWorld:
    api: ApiEnv
    instance: dg.DagsterInstance
    resources: dict
    tenant: Seeded

    def upload(self, path: Path | None = None, *, data: bytes | None = None, filename: str | None = None,
               headers: dict | None = None, fields: dict | None = None, tenant: Seeded | None = None):
        data = data if data is not None else Path(path).read_bytes()
        name = filename or (Path(path).name if path else "upload.bin")
        return self.api.client.post("/v1/videos", files={"file": (name, data, "application/octet-stream")},
                                    data=fields or {}, headers={**(tenant or self.tenant).headers, **(headers or {})})

    def get(self, url: str, tenant: Seeded | None = None):
        return self.api.client.get(path_of(url), headers=(tenant or self.tenant).headers)

    def daemon_cycle(self, resources: dict | None = None) -> dg.ExecuteInProcessResult | None:
        """One sensor tick and the run it requests (None when nothing was due)."""
        resources = resources or self.resources
        tick = video_notes_dispatch_sensor(dg.build_sensor_context(instance=self.instance, resources=resources))
        add_requested_partitions(self.instance, tick)
        if not tick.run_requests:
            return None
        (run_request,) = tick.run_requests
        job_def = dg.Definitions(assets=VIDEO_NOTES_ASSETS, jobs=[video_notes_job], resources=resources).resolve_job_def(
            "video_notes_job")
        result = job_def.execute_in_process(partition_key=run_request.partition_key, tags=run_request.tags,
                                            instance=self.instance, raise_on_error=False)
        report_run_to_sensors(self.instance, result, resources)
        return result

    def video_row(self, video_id: str) -> VideoAsset:
        with system_session(self.api.system) as s:
            video = s.get(VideoAsset, uuid.UUID(video_id))
            s.expunge(video)
        return video


def make_world(api: ApiEnv, transcriber: Transcriber) -> Iterator[VideoWorld]:
    resources = {
        "database": DatabaseResource(url=api.system.url.render_as_string(hide_password=False)),
        "object_store": api.store,
        "transcriber": transcriber,
        "llm": LLM(),
    }
    with dg.instance_for_test() as instance:
        yield VideoWorld(api, instance, resources, api.tenant("owner"))

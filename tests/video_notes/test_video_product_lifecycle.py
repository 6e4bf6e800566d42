"""Video notes jobs beyond the happy path, through the real API, sensors and in-process runs: silence, a
reprocess started from the partition alone (a Dagster backfill), a refusing language model, and the scratch
files a failed job leaves on the worker."""

from __future__ import annotations

import io
import json
import uuid
import wave
import zipfile

import dagster as dg
import pytest
from sqlalchemy import select

from assets.video_notes.assets import VIDEO_NOTES_ASSETS
from pipelines.run_tags import JOB_ID_TAG
from pipelines.video_notes.scratch import scratch_root
from resources.llm import LLM
from sensors.video_notes import video_notes_job
from tests.support.corpus import PUBLIC
from tests.support.dagster_runs import report_run_to_sensors
from tests.support.api import api  # noqa: F401 - fixture
from tests.support.video_fixtures import ChatEmulator
from tests.support.video_product import make_world, no_backoff, test_transcriber, whisper_cache  # noqa: F401
from warehouse.db import system_session
from warehouse.models import Artifact, Job


@pytest.fixture
def world(api, test_transcriber, no_backoff):  # noqa: F811
    yield from make_world(api, test_transcriber)


def _silent_wav(seconds: float = 3.0) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * int(seconds * 16000))
    return buffer.getvalue()


def _artifacts(world, job_id) -> dict[str, Artifact]:
    with system_session(world.api.system) as s:
        rows = {a.filename: a for a in s.scalars(select(Artifact).where(Artifact.job_id == uuid.UUID(str(job_id))))}
        s.expunge_all()
    return rows


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.event_specific_data.check_name: e.event_specific_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_silent_audio_gets_the_no_speech_summary_and_passing_checks(world):
    r = world.upload(data=_silent_wav(), filename="silence.wav")
    assert r.status_code == 202, r.text
    result = world.daemon_cycle()
    assert result.success
    notes = world.get(f"/v1/videos/{r.json()['id']}/notes").json()
    assert notes["summary_markdown"].startswith("# Video notes\n")
    assert "No speech was detected in the audio." in notes["summary_markdown"]
    assert notes["segments"] == [] and notes["highlights"] == [] and notes["screenshots"] == []
    assert _checks(result) == {"transcript_covers_audio": True, "highlights_inside_duration": True,
                               "summary_cites_real_timestamps": True}
    (summary,) = result.asset_materializations_for_node("video_summary")
    assert summary.metadata["method"].value == "no_speech"
    (transcript,) = result.asset_materializations_for_node("video_transcript")
    assert transcript.metadata["segments"].value == 0 and transcript.metadata["real_time_factor"].value is None
    artifacts = _artifacts(world, r.json()["job_id"])
    with zipfile.ZipFile(io.BytesIO(world.api.store.get_bytes(artifacts["notes.zip"].storage_key))) as bundle:
        assert bundle.namelist() == ["Summary.md"]
        assert bundle.read("Summary.md").decode() == notes["summary_markdown"]


def test_a_partition_materialized_without_kiln_tags_reprocesses_the_video_as_a_new_job(world):
    r = world.upload(PUBLIC / "video/example_no_audio.mp4")
    video_id, first_job = r.json()["id"], r.json()["job_id"]
    assert world.daemon_cycle().success

    # What a backfill over `videos` (or "Materialize" on one partition) launches: the partition, no kiln/* tags.
    job_def = dg.Definitions(assets=VIDEO_NOTES_ASSETS, jobs=[video_notes_job],
                             resources=world.resources).resolve_job_def("video_notes_job")
    assert job_def.executor_def is dg.in_process_executor
    result = job_def.execute_in_process(partition_key=video_id, instance=world.instance, raise_on_error=False)
    assert result.success
    run = world.instance.get_run_by_id(result.run_id)
    second_job = run.tags[JOB_ID_TAG]
    assert second_job != first_job, "a finished job is not reopened: the reprocess is a new tracked job"
    report_run_to_sensors(world.instance, result, world.resources)

    with system_session(world.api.system) as s:
        jobs = {str(j.id): j.status for j in s.scalars(select(Job).where(Job.subject_id == uuid.UUID(video_id)))}
    assert jobs == {first_job: "succeeded", second_job: "succeeded"}
    notes = world.get(f"/v1/videos/{video_id}/notes").json()
    assert notes["job_id"] == second_job and notes["screenshots"]
    assert "screenshots.json" in _artifacts(world, second_job)
    assert world.get(f"/v1/videos/{video_id}").json()["job_id"] == second_job, (
        "the video follows the job a backfill created, so status and the reprocess guard see it")


def test_a_language_model_that_refuses_gives_extractive_notes_that_say_why(world):
    with ChatEmulator(fail_first=[400]) as emulator:
        resources = {**world.resources, "llm": LLM(base_url=emulator.base_url, model="emulated-1", max_retries=0)}
        r = world.upload(PUBLIC / "audio/jfk.flac")
        result = world.daemon_cycle(resources)
    assert result.success and emulator.statuses == [400]
    info = world.get(f"/v1/videos/{r.json()['id']}").json()
    assert info["status"] == "succeeded", info
    notes = world.get(f"/v1/videos/{r.json()['id']}/notes").json()
    assert "Extractive summary" in notes["summary_markdown"]
    assert "`emulated-1` was configured but not used" in notes["summary_markdown"]
    record = json.loads(world.api.store.get_bytes(_artifacts(world, r.json()["job_id"])["summary.json"].storage_key))
    assert record["method"] == "extractive" and record["model"] == "emulated-1"
    assert "HTTP 400" in record["notes"][0]


def test_a_permanently_failed_job_leaves_no_scratch_files(world):
    r = world.upload(data=(PUBLIC / "video/example.mp4").read_bytes()[:400_000], filename="broken.mp4")
    job_id = r.json()["job_id"]
    result = world.daemon_cycle()
    assert not result.success
    assert world.get(f"/v1/videos/{r.json()['id']}").json()["error_code"] == "invalid_media"
    assert not (scratch_root() / job_id).exists(), "the source copy of a failed job stays on the worker"


def test_a_retryable_failure_keeps_scratch_for_the_retry_and_the_last_attempt_removes_it(world):
    original = world.resources["transcriber"]

    class Unreachable(type(original)):
        def transcribe(self, *args, **kwargs):
            raise RuntimeError("the model server went away")

    broken = {**world.resources, "transcriber": Unreachable(**original.model_dump())}
    r = world.upload(PUBLIC / "audio/jfk.flac")
    job_id = r.json()["job_id"]
    folder = scratch_root() / job_id
    with system_session(world.api.system) as s:
        max_attempts = s.get(Job, uuid.UUID(job_id)).max_attempts
    for attempt in range(1, max_attempts + 1):
        assert not world.daemon_cycle(broken).success
        status = world.get(f"/v1/videos/{r.json()['id']}").json()["status"]
        if attempt < max_attempts:
            assert status == "retrying" and (folder / "audio.wav").is_file(), "kept for the next attempt"
    assert status == "failed"
    assert not folder.exists(), "the last attempt's failure removes the job's working files"


def test_a_retryable_failure_of_one_final_stage_keeps_scratch_when_the_other_finishes(world, monkeypatch):
    # Clips fail for a passing reason (retryable) while the summary, the other final stage, runs after them and
    # finishes in the same run: its end-of-stage cleanup must leave the files to the retry.
    from pipelines.errors import RetryableError

    def flaky_cut(*args, **kwargs):
        raise RetryableError("the disk was briefly full")

    monkeypatch.setattr("assets.video_notes.assets.cut_clip", flaky_cut)
    r = world.upload(PUBLIC / "audio/jfk.flac")
    result = world.daemon_cycle()
    assert not result.success
    assert result.is_node_success("video_summary"), "the other final stage finished in the same run"
    assert world.get(f"/v1/videos/{r.json()['id']}").json()["status"] == "retrying"
    assert (scratch_root() / r.json()["job_id"] / "audio.wav").is_file(), "kept for the retry"


def test_a_job_canceled_while_it_transcribes_leaves_no_scratch_files(world):
    original = world.resources["transcriber"]
    r = world.upload(PUBLIC / "audio/jfk.flac")
    job_id = r.json()["job_id"]

    class CanceledMeanwhile(type(original)):
        def transcribe(self, wav, *, on_progress=None):
            assert (scratch_root() / job_id / "audio.wav").is_file()
            canceled = world.api.client.post(f"/v1/jobs/{job_id}/cancel", headers=world.tenant.headers)
            assert canceled.status_code == 200, canceled.text
            on_progress(1.0)  # the next progress write finds the job canceled and stops the work
            raise AssertionError("a canceled job's progress write must stop the step")

    result = world.daemon_cycle({**world.resources, "transcriber": CanceledMeanwhile(**original.model_dump())})
    assert not result.success
    assert world.get(f"/v1/videos/{r.json()['id']}").json()["status"] == "canceled"
    assert not (scratch_root() / job_id).exists()

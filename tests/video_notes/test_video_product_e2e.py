"""Video notes end to end: HTTP upload -> dispatch sensor -> in-process run -> run-status sensors -> notes API.

Real parts throughout: the FastAPI app over the test client, SQLite (and PostgreSQL where configured),
the local object store, Dagster runs, PyAV/OpenCV and the shipped whisper model (beam 1 to stay quick).
"""

import io
import re
import uuid
import zipfile

import av
import jiwer
import pytest
from sqlalchemy import select

from pipelines.errors import RetryableError
from pipelines.video_notes.bundle import linked_screenshots
from pipelines.video_notes.formats import parse_srt, parse_vtt
from pipelines.video_notes.scratch import scratch_root
from pipelines.video_notes.summary import cited_timestamps_exist
from pipelines.video_notes.transcript import Transcript
from tests.support.corpus import PUBLIC, expected
from tests.support.api import api  # noqa: F401 - fixture
from tests.support.video_product import make_world, no_backoff, test_transcriber, whisper_cache  # noqa: F401
from warehouse.db import system_session
from warehouse.models import Artifact, Job, LineageEdge
from warehouse.video_notes import Highlight


@pytest.fixture
def world(api, test_transcriber, no_backoff):  # noqa: F811
    yield from make_world(api, test_transcriber)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def test_example_video_gives_notes_with_working_signed_links(world, tmp_path):
    r = world.upload(PUBLIC / "video/example.mp4")
    assert r.status_code == 202, r.text
    video = r.json()
    assert video["status"] == "queued" and video["progress"] == 0
    assert world.get(f"/v1/videos/{video['id']}/notes").json()["code"] == "notes_not_ready"

    result = world.daemon_cycle()
    assert result.success

    info = world.get(f"/v1/videos/{video['id']}").json()
    assert (info["status"], info["progress"], info["language"]) == ("succeeded", 100, "en")
    assert abs(info["duration_s"] - 42.453) < 0.1
    assert {s["type"] for s in info["streams"]} == {"video", "audio"}

    notes = world.get(f"/v1/videos/{video['id']}/notes").json()
    assert notes["job_id"] == video["job_id"] and notes["language"] == "en"
    assert notes["segments"] and "banana" in " ".join(s["text"].lower() for s in notes["segments"])
    assert notes["summary_markdown"].startswith("# ") and "Extractive summary" in notes["summary_markdown"]
    transcript = Transcript.from_dict(world.get(notes["transcript_json_url"]).json())
    assert cited_timestamps_exist(notes["summary_markdown"], transcript) == []
    assert notes["highlights"], "a 42 s talk has at least one highlight"
    for h in notes["highlights"]:
        assert 0 <= h["start"] < h["end"] <= info["duration_s"] + 0.01 and 0 <= h["score"] <= 1 and h["title"]
        shot = world.get(h["screenshot_url"])
        assert shot.status_code == 200 and shot.content[:3] == b"\xff\xd8\xff", "a JPEG"
        assert shot.headers["x-content-type-options"] == "nosniff"
        clip = world.get(h["clip_url"])
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
        (tmp_path / "clip.mp4").write_bytes(clip.content)
        with av.open(str(tmp_path / "clip.mp4")) as container:
            assert {s.type for s in container.streams} >= {"video", "audio"}
        assert h["clip_start"] <= h["start"] + 0.01
    srt = world.get(notes["srt_url"])
    assert srt.status_code == 200
    cues = parse_srt(srt.text)
    assert cues and all(c.end > c.start for c in cues)
    assert parse_vtt(world.get(notes["vtt_url"]).text)
    assert "banana" in world.get(notes["txt_url"]).text.lower()
    assert world.get(notes["summary_url"]).text == notes["summary_markdown"]
    bundle_download = world.get(notes["bundle_url"])
    assert bundle_download.status_code == 200 and bundle_download.content[:2] == b"PK", "notes.zip through a signed link"

    with system_session(world.api.system) as s:
        job = s.get(Job, uuid.UUID(video["job_id"]))
        rows = list(s.scalars(select(Highlight).where(Highlight.job_id == job.id)))
        assert all(r.clip_artifact_id and r.screenshot_artifact_id for r in rows)
        produced = {a.filename: a for a in s.scalars(select(Artifact).where(Artifact.job_id == job.id))}
        srt_parents = set(s.scalars(select(LineageEdge.parent_artifact_id).where(
            LineageEdge.child_artifact_id == produced["transcript.srt"].id)))
    assert srt_parents == {produced["audio.wav"].id}, "outputs record what they were derived from"
    assert produced["screenshots.json"].kind == "output", "kept as long as the screenshots it lists"
    materialization = world.instance.get_latest_materialization_event(
        __import__("dagster").AssetKey("video_summary"))
    assert materialization.asset_materialization.partition == video["id"]
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) == 3 and all(e.event_specific_data.passed for e in checks)
    assert {e.event_specific_data.check_name for e in checks} == {
        "transcript_covers_audio", "highlights_inside_duration", "summary_cites_real_timestamps"}

    # What the Dagster UI shows for the run.
    (transcribed,) = result.asset_materializations_for_node("video_transcript")
    assert 0 < transcribed.metadata["real_time_factor"].value < 1 and transcribed.metadata["language"].value == "en"
    (screenshots,) = result.asset_materializations_for_node("video_screenshots")
    assert screenshots.metadata["thumbnail"].value.startswith("![thumbnail](data:image/jpeg;base64,")
    (summary,) = result.asset_materializations_for_node("video_summary")
    assert summary.metadata["Summary.md"].value == notes["summary_markdown"]
    assert summary.metadata["method"].value == "extractive"
    assert summary.metadata["unresolved_screenshot_links"].value == "none"

    # notes.zip: Summary.md with the screenshots its relative links point to.
    bundle = zipfile.ZipFile(io.BytesIO(world.api.store.get_bytes(produced["notes.zip"].storage_key)))
    assert bundle.read("Summary.md").decode() == notes["summary_markdown"]
    links = linked_screenshots(notes["summary_markdown"])
    assert links, "the highlights link their screenshots"
    for name in links:
        assert bundle.read(f"screenshots/{name}") == world.api.store.get_bytes(produced[name].storage_key)
    assert produced["notes.zip"].content_type == "application/zip"


def test_jfk_audio_through_the_whole_pipeline_has_low_word_error_rate(world):
    r = world.upload(PUBLIC / "audio/jfk.flac")
    assert r.status_code == 202, r.text
    assert world.daemon_cycle().success
    notes = world.get(f"/v1/videos/{r.json()['id']}/notes").json()
    hypothesis = " ".join(s["text"] for s in notes["segments"])
    wer = jiwer.wer(_normalise(expected()["audio/jfk.flac"]["reference"]), _normalise(hypothesis))
    assert wer <= 0.15, (wer, hypothesis)
    assert notes["screenshots"] == [] and all(h["screenshot_url"] is None for h in notes["highlights"])
    assert all(h["clip_url"] for h in notes["highlights"]), "audio-only sources still get clips"


def test_video_without_audio_gets_screenshots_and_a_no_speech_summary(world):
    r = world.upload(PUBLIC / "video/example_no_audio.mp4")
    assert world.daemon_cycle().success
    notes = world.get(f"/v1/videos/{r.json()['id']}/notes").json()
    assert "no audio track" in notes["summary_markdown"]
    assert notes["segments"] == [] and notes["highlights"] == []
    assert notes["screenshots"] and world.get(notes["screenshots"][0]["screenshot_url"]).content[:3] == b"\xff\xd8\xff"


def test_corrupt_media_fails_the_job_as_invalid_media_and_keeps_the_upload(world):
    data = (PUBLIC / "video/example.mp4").read_bytes()[:400_000]  # truncated: the header promises 42 s
    r = world.upload(data=data, filename="broken.mp4")
    assert r.status_code == 202, r.text
    result = world.daemon_cycle()
    assert not result.success
    info = world.get(f"/v1/videos/{r.json()['id']}").json()
    assert (info["status"], info["error_code"]) == ("failed", "invalid_media")
    assert "truncated" in info["error_message"]
    kept = world.get(info["source_url"])
    assert kept.status_code == 200 and kept.content == data, "the upload is kept for the user"
    assert world.daemon_cycle() is None, "a permanent error is not retried"


def test_a_retry_reuses_finished_stages(world, monkeypatch):
    r = world.upload(PUBLIC / "audio/jfk.flac")
    video_id = r.json()["id"]
    original = world.resources["transcriber"]

    class WorkerLost(type(original)):
        def transcribe(self, *args, **kwargs):
            raise RetryableError("worker lost mid-transcription")

    flaky = {**world.resources, "transcriber": WorkerLost(**original.model_dump())}
    first = world.daemon_cycle(flaky)
    assert not first.success
    info = world.get(f"/v1/videos/{video_id}").json()
    assert info["status"] == "retrying" and info["progress"] == 15

    second = world.daemon_cycle()
    assert second.success
    with system_session(world.api.system) as s:
        rows = list(s.scalars(select(Artifact).where(Artifact.job_id == uuid.UUID(r.json()["job_id"]))))
    by_name: dict[str, list[Artifact]] = {}
    for a in rows:
        by_name.setdefault(a.filename, []).append(a)
    assert all(len(v) == 1 for v in by_name.values()), "nothing stored twice"
    assert {a.run_id for a in by_name["probe.json"] + by_name["audio.wav"]} == {first.run_id}, "not redone"
    assert {a.run_id for a in by_name["transcript.json"]} == {second.run_id}
    assert world.get(f"/v1/videos/{video_id}").json()["status"] == "succeeded"
    assert not (scratch_root() / r.json()["job_id"]).exists(), "a finished job's working files are removed"

"""``kiln video add/notes`` and the first-start sample, through the real API (the HTTP client is the app's test client)."""

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import api.cli_video as cli_video
from api.cli import app
from pipelines.video_notes.formats import parse_srt
from tests.support.corpus import PUBLIC
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.support.video_product import make_world, no_backoff, test_transcriber, whisper_cache  # noqa: F401

runner = CliRunner()


@pytest.fixture
def world(api, test_transcriber, no_backoff, monkeypatch, tmp_path):  # noqa: F811
    for w in make_world(api, test_transcriber):
        monkeypatch.setenv("KILN_TOKEN", w.tenant.token)
        monkeypatch.setenv("KILN_API_URL", "http://testserver")
        monkeypatch.setenv("KILN_HOME", str(tmp_path / "kiln-home"))
        monkeypatch.setattr(cli_video, "make_client", lambda url, token: TestClient(
            api.app, base_url=url, headers={"Authorization": f"Bearer {token}"}))
        yield w


def test_add_with_wait_follows_the_job_and_prints_every_output(world, monkeypatch):
    # While the CLI polls, the "daemon" runs: the first poll's sleep performs one sensor tick and its run.
    monkeypatch.setattr(cli_video.time, "sleep", lambda _s: world.daemon_cycle())
    result = runner.invoke(app, ["video", "add", str(PUBLIC / "audio/jfk.flac"), "--wait"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    video_id = next(line.split()[1] for line in lines if line.startswith("video "))
    srt_url = next(line.split()[1] for line in lines if line.startswith("srt "))
    assert any(line.startswith("summary ") for line in lines) and any("highlight 1" in line for line in lines)
    assert parse_srt(world.get(srt_url).text), "the printed link downloads the subtitles"

    notes = runner.invoke(app, ["video", "notes", video_id])
    assert notes.exit_code == 0 and notes.output.startswith("# ")
    assert "ask not what your country" in notes.output.lower()


def test_add_reports_api_errors_and_missing_token(world, monkeypatch, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    result = runner.invoke(app, ["video", "add", str(bad)])
    assert result.exit_code == 1 and "invalid_media" in result.output
    monkeypatch.delenv("KILN_TOKEN")
    result = runner.invoke(app, ["video", "notes", "00000000-0000-0000-0000-000000000000"])
    assert result.exit_code == 1 and "No API token" in result.output


def test_first_start_submits_the_bundled_sample_once(world, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    video_id = cli_video.submit_sample_once(home, "http://testserver", world.tenant.token)
    assert video_id is not None
    assert json.loads((home / "state.json").read_text())["sample_video_id"] == video_id
    assert cli_video.submit_sample_once(home, "http://testserver", world.tenant.token) is None, "only once"
    info = world.get(f"/v1/videos/{video_id}").json()
    assert info["status"] == "queued" and info["filename"] == "example.mp4"
    assert world.get(info["source_url"]).content == cli_video.SAMPLE_VIDEO.read_bytes()

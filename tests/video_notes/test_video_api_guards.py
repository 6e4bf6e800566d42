"""The video API's guards, without running the pipeline: reprocess vs. an active job (keys, races), a source that
retention removed, screenshots after screenshots.json expired, language codes, the PyAV upload check, cleanup of a
failed upload, and the CLI's upload closing what it opens."""

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import av
import httpx
import pytest
from sqlalchemy import func, select, update

import api.routes.videos as videos_route
from api import cli_video, video_input
from resources.objectstore_local import LocalObjectStore
from tests.support.corpus import PUBLIC
from tests.support.api import api, path_of  # noqa: F401 - fixture
from warehouse import jobs as job_machine
from warehouse import video_notes as video_rows
from warehouse.artifacts import store_artifact
from warehouse.db import system_session
from warehouse.models import Artifact, Job
from warehouse.video_notes import Highlight, VideoAsset

NO_AUDIO = PUBLIC / "video/example_no_audio.mp4"
EXAMPLE = PUBLIC / "video/example.mp4"


def _upload(api, tenant, data: bytes, *, headers=None, fields=None):  # noqa: F811
    return api.client.post("/v1/videos", files={"file": ("v.mp4", data, "video/mp4")}, data=fields or {},
                           headers={**tenant.headers, **(headers or {})})


def _stored_files(api) -> list[Path]:  # noqa: F811
    return [p for p in Path(api.store.root).rglob("*") if p.is_file()]


def _jobs_of(api, video_id: str) -> list[Job]:  # noqa: F811
    with system_session(api.system) as s:
        return list(s.scalars(select(Job).where(Job.subject_id == uuid.UUID(video_id)).order_by(Job.created_at)))


def _finish(api, job_id: str, status: str = "succeeded") -> None:  # noqa: F811
    with system_session(api.system) as s:
        s.get(Job, uuid.UUID(job_id)).status = status


def _expire_source(api, video_id: str) -> None:  # noqa: F811
    """What retention does to an expired upload: the object goes, the row says deleted."""
    with system_session(api.system) as s:
        source = s.get(Artifact, s.get(VideoAsset, uuid.UUID(video_id)).input_artifact_id)
        api.store.delete(source.storage_key)
        source.status = "deleted"


# -- reprocess while a job is active --------------------------------------------------------------------------
def test_a_fresh_idempotency_key_does_not_start_a_second_job_while_one_is_active(api):  # noqa: F811
    owner = api.tenant()
    video = _upload(api, owner, NO_AUDIO.read_bytes()).json()
    r = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers={**owner.headers, "Idempotency-Key": "k1"})
    assert r.status_code == 409 and r.json()["code"] == "video_busy" and r.json()["job_id"] == video["job_id"]
    assert [j.status for j in _jobs_of(api, video["id"])] == ["queued"]

    _finish(api, video["job_id"], "failed")
    first = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers={**owner.headers, "Idempotency-Key": "k2"})
    assert first.status_code == 202
    # The retry of that request replays it although its own job is active now; a new key is refused.
    replay = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers={**owner.headers, "Idempotency-Key": "k2"})
    assert replay.status_code == 200 and replay.json()["job_id"] == first.json()["job_id"]
    other = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers={**owner.headers, "Idempotency-Key": "k3"})
    assert other.status_code == 409 and other.json()["code"] == "video_busy"
    assert [j.status for j in _jobs_of(api, video["id"])] == ["failed", "queued"]

    elsewhere = _upload(api, owner, NO_AUDIO.read_bytes() + b"\0").json()
    _finish(api, elsewhere["job_id"], "failed")
    reused = api.client.post(f"/v1/videos/{elsewhere['id']}/reprocess", headers={**owner.headers, "Idempotency-Key": "k2"})
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_conflict"


def test_a_reprocess_that_loses_a_race_to_another_answers_video_busy(api, monkeypatch):  # noqa: F811
    """Another request queues a job between this one's check and its submit: the submit must not go through."""
    owner = api.tenant()
    video = _upload(api, owner, NO_AUDIO.read_bytes()).json()
    _finish(api, video["job_id"], "failed")
    newest_job, competitor = video_rows.newest_job, []

    def stale_read_then_competitor(session, workspace_id, video_id):
        seen = newest_job(session, workspace_id, video_id)
        if not competitor:  # the check has read; now the other request commits its job
            with system_session(api.system) as s:
                job = job_machine.submit_job(s, workspace_id=workspace_id, kind="video_notes",
                                             payload={"video_id": str(video_id)}, subject_id=video_id,
                                             partition_key=str(video_id)).job
                s.execute(update(VideoAsset).where(VideoAsset.id == video_id).values(latest_job_id=job.id))
                competitor.append(str(job.id))
        return seen

    monkeypatch.setattr(video_rows, "newest_job", stale_read_then_competitor)
    r = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=owner.headers)
    assert r.status_code == 409 and r.json()["code"] == "video_busy" and r.json()["job_id"] == competitor[0]
    assert [j.status for j in _jobs_of(api, video["id"])] == ["failed", "queued"], "only the competitor's job"
    assert api.client.get(f"/v1/videos/{video['id']}", headers=owner.headers).json()["job_id"] == competitor[0]


# -- the uploaded file after retention ---------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["retention", "object_lost"])
def test_reupload_after_the_source_is_gone_restores_it_so_reprocess_works(api, how):  # noqa: F811
    owner = api.tenant()
    data = NO_AUDIO.read_bytes()
    video = _upload(api, owner, data).json()
    _finish(api, video["job_id"])
    if how == "retention":
        _expire_source(api, video["id"])
    else:  # the row still says available, the store lost the object
        with system_session(api.system) as s:
            api.store.delete(s.get(Artifact, s.get(VideoAsset, uuid.UUID(video["id"])).input_artifact_id).storage_key)

    refused = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=owner.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "source_expired"
    assert "upload" in refused.json()["detail"].lower()
    assert len(_jobs_of(api, video["id"])) == 1, "no job that could only fail"

    again = _upload(api, owner, data)
    assert again.status_code == 200 and again.json()["id"] == video["id"]
    assert again.json()["source_url"] is not None
    assert api.client.get(path_of(again.json()["source_url"])).content == data
    assert len(_stored_files(api)) == 1
    with system_session(api.system) as s:
        source = s.get(Artifact, s.get(VideoAsset, uuid.UUID(video["id"])).input_artifact_id)
        assert source.kind == "input" and source.status == "available" and source.expires_at is not None

    r = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=owner.headers)
    assert r.status_code == 202 and r.json()["job_id"] != video["job_id"]
    third = _upload(api, owner, data)  # the source is back: a plain duplicate again
    assert third.status_code == 200 and len(_stored_files(api)) == 1


# -- /notes screenshots -----------------------------------------------------------------------------------------
def _made_notes(api, owner) -> tuple[str, dict[str, uuid.UUID]]:  # noqa: F811
    """A video whose job succeeded, with what the pipeline stores for its screenshots (no pipeline run)."""
    video = _upload(api, owner, NO_AUDIO.read_bytes()).json()
    job_id, video_id = uuid.UUID(video["job_id"]), uuid.UUID(video["id"])
    ids: dict[str, uuid.UUID] = {}
    with system_session(api.system) as s:
        def put(name: str, data: bytes, kind: str, content_type: str) -> uuid.UUID:
            return store_artifact(s, api.store, workspace_id=owner.workspace_id, kind=kind, subject_id=video_id,
                                  name=name, chunks=[data], content_type=content_type, job_id=job_id).id

        put("transcript.json", json.dumps({"language": "en", "segments": []}).encode(), "output", "application/json")
        for name in ("shot_00001000.jpg", "shot_00004000.jpg"):
            ids[name] = put(name, b"\xff\xd8\xff jpeg", "output", "image/jpeg")
        manifest = {"screenshots": [
            {"artifact_id": str(ids["shot_00001000.jpg"]), "requested_s": 1.0, "actual_s": 1.04, "reason": "highlight"},
            {"artifact_id": str(ids["shot_00004000.jpg"]), "requested_s": 4.0, "actual_s": 4.0, "reason": "scene_change"},
        ]}
        ids["screenshots.json"] = put("screenshots.json", json.dumps(manifest).encode(), "intermediate",
                                      "application/json")
        s.add(Highlight(workspace_id=owner.workspace_id, video_id=video_id, job_id=job_id, rank=1, start_ms=1000,
                        end_ms=3000, title="t", score=0.5, screenshot_artifact_id=ids["shot_00001000.jpg"],
                        screenshot_ms=1040))
        s.get(Job, job_id).status = "succeeded"
    return video["id"], ids


@pytest.mark.parametrize("how", ["retention", "object_lost"])
def test_notes_keep_their_screenshots_after_screenshots_json_is_gone(api, how):  # noqa: F811
    owner = api.tenant()
    video_id, ids = _made_notes(api, owner)

    def shots() -> list[tuple[float, str, str]]:
        r = api.client.get(f"/v1/videos/{video_id}/notes", headers=owner.headers)
        assert r.status_code == 200, r.text
        return [(s["time_s"], s["reason"], s["screenshot_url"]) for s in r.json()["screenshots"]]

    before = shots()
    assert [(t, reason) for t, reason, _ in before] == [(1.04, "highlight"), (4.0, "scene_change")]
    with system_session(api.system) as s:
        manifest = s.get(Artifact, ids["screenshots.json"])
        api.store.delete(manifest.storage_key)
        if how == "retention":
            manifest.status = "deleted"
    after = shots()
    assert [(t, reason) for t, reason, _ in after] == [(1.04, "highlight"), (4.0, "scene_change")]
    assert [api.client.get(path_of(url)).content for _, _, url in after] == [b"\xff\xd8\xff jpeg"] * 2


# -- language ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sent", "stored"), [("en-US", "en"), ("EN", "en"), (" pt_BR ", "pt"), ("yue", "yue")])
def test_language_is_normalized_to_a_whisper_code(api, sent, stored):  # noqa: F811
    r = _upload(api, api.tenant(), NO_AUDIO.read_bytes(), fields={"language": sent})
    assert r.status_code == 202, r.text
    with system_session(api.system) as s:
        assert s.get(Job, uuid.UUID(r.json()["job_id"])).payload["language"] == stored


@pytest.mark.parametrize("sent", ["xx", "english", "zz-US", "e n"])
def test_a_language_whisper_does_not_know_is_422_invalid_language(api, sent):  # noqa: F811
    r = _upload(api, api.tenant(), NO_AUDIO.read_bytes(), fields={"language": sent})
    assert r.status_code == 422 and r.json()["code"] == "invalid_language"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _stored_files(api) == []


def test_the_language_list_is_the_one_the_transcriber_checks():
    from faster_whisper.tokenizer import Tokenizer

    vocabulary = SimpleNamespace(token_to_id=lambda token: 1)
    codes = video_input.whisper_languages()
    assert {"en", "de", "pt", "yue", "haw"} <= codes
    for code in codes:
        Tokenizer(vocabulary, multilingual=True, task="transcribe", language=code)
    with pytest.raises(ValueError, match="not a valid language code"):  # what a job hit with "en-US"
        Tokenizer(vocabulary, multilingual=True, task="transcribe", language="en-US")


# -- the PyAV upload check ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000, b"\xff\xfb" + bytes(range(256)) * 20],
                         ids=["ftyp_and_zeros", "mp3_sync_and_junk"])
def test_magic_bytes_without_a_container_pyav_opens_are_invalid_media(api, data):  # noqa: F811
    owner = api.tenant()
    r = _upload(api, owner, data)
    assert r.status_code == 422 and r.json()["code"] == "invalid_media"
    assert _stored_files(api) == []
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def _moov_at_end(tmp_path: Path) -> Path:
    """example.mp4 remuxed without faststart: the index PyAV needs sits after 3 MB of media data."""
    out = tmp_path / "moov_at_end.mp4"
    with av.open(str(EXAMPLE)) as src, av.open(str(out), "w", format="mp4") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    data = out.read_bytes()
    assert data.find(b"moov") > len(data) // 2
    return out


def test_the_check_reads_ranges_not_the_whole_file(tmp_path):
    path = _moov_at_end(tmp_path)
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    store.put_file("k/video", str(path))
    served: list[int] = []
    iter_range = store.iter_range

    class Counting(LocalObjectStore):
        def iter_range(self, key, start=0, end=None, chunk_size=1024 * 1024):
            for chunk in iter_range(key, start, end, chunk_size):
                served.append(len(chunk))
                yield chunk

    counting = Counting(root=store.root)
    assert video_input.open_as_media(counting, "k/video", path.stat().st_size) is video_input.Verdict.MEDIA
    assert 0 < sum(served) < path.stat().st_size // 4


@pytest.mark.parametrize("case", ["moov_at_end", "truncated", "audio_only", "read_budget_spent"])
def test_openable_media_is_accepted(api, tmp_path, monkeypatch, case):  # noqa: F811
    data = {
        "moov_at_end": lambda: _moov_at_end(tmp_path).read_bytes(),
        "truncated": lambda: EXAMPLE.read_bytes()[:400_000],  # opens; the job's probe fails it as truncated
        "audio_only": lambda: (PUBLIC / "audio/jfk.flac").read_bytes(),
        "read_budget_spent": lambda: EXAMPLE.read_bytes(),
    }[case]()
    if case == "read_budget_spent":  # the request cannot tell: the job's probe decides
        monkeypatch.setattr(video_input, "_READ_BUDGET", 1000)
    r = _upload(api, api.tenant(), data)
    assert r.status_code == 202, r.text


# -- a failed upload leaves nothing behind --------------------------------------------------------------------------
def _consistent(api) -> int:  # noqa: F811
    """Stored uploads and the rows that point at them match: no orphaned file, no row without its file."""
    with system_session(api.system) as s:
        keys = set(s.scalars(select(Artifact.storage_key).where(Artifact.kind == "input")))
    files = {p.relative_to(api.store.root).as_posix() for p in _stored_files(api)}
    assert files == keys
    return len(keys)


def test_an_error_after_the_rows_were_flushed_leaves_no_orphaned_file(api, monkeypatch):  # noqa: F811
    def failing_audit(session, request, principal, action, *args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(videos_route, "audit", failing_audit)
    r = _upload(api, api.tenant(), NO_AUDIO.read_bytes())
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    kept = _consistent(api)
    if api.system.dialect.name == "postgresql":  # SQLite: see the report on pysqlite savepoints (warehouse/db.py)
        assert kept == 0, "the request's rows were rolled back, and so its file was deleted"


def test_a_database_error_is_reported_as_itself_and_nothing_is_orphaned(api, monkeypatch):  # noqa: F811
    def breaking_audit(session, request, principal, action, *args, **kwargs):
        session.add(Artifact(workspace_id=principal.workspace_id, kind="log", storage_key=f"x/{uuid.uuid4()}",
                             sha256="too short", size_bytes=0, filename="x"))
        session.flush()  # violates sha256_length: the session now needs a rollback

    monkeypatch.setattr(videos_route, "audit", breaking_audit)
    r = _upload(api, api.tenant(), NO_AUDIO.read_bytes())
    assert r.status_code == 500
    assert "IntegrityError" in api.log.getvalue() and "PendingRollbackError" not in api.log.getvalue()
    _consistent(api)


# -- CLI -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("show_progress", [True, False])
def test_cli_upload_closes_every_file_it_opens(tmp_path, monkeypatch, show_progress):
    source = tmp_path / "v.mp4"
    source.write_bytes(NO_AUDIO.read_bytes())
    opened = []

    def tracking_open(*args, **kwargs):
        fh = open(*args, **kwargs)  # noqa: SIM115 - returned to the code under test
        opened.append(fh)
        return fh

    monkeypatch.setattr(cli_video, "open", tracking_open, raising=False)
    client = httpx.Client(base_url="http://kiln.test", transport=httpx.MockTransport(
        lambda request: httpx.Response(202, json={"id": "v", "job_id": "j", "status": "queued"})))
    assert cli_video.upload(client, source, show_progress=show_progress)["id"] == "v"
    assert opened and all(fh.closed for fh in opened)

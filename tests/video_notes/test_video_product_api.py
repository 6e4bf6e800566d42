"""The video notes API without running the pipeline: upload checks, dedupe, idempotency, limits, listing, reprocess."""

import hashlib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.corpus import PUBLIC
from tests.support.api import api, counted_statements, path_of  # noqa: F401 - fixture
from warehouse.db import system_session
from warehouse.models import Artifact, Job
from warehouse.video_notes import VideoAsset

JFK = PUBLIC / "audio/jfk.flac"
NO_AUDIO = PUBLIC / "video/example_no_audio.mp4"


def _upload(api, tenant, path=None, *, data=None, filename=None, headers=None, fields=None):  # noqa: F811
    data = data if data is not None else Path(path).read_bytes()
    return api.client.post("/v1/videos", files={"file": (filename or Path(path).name, data, "video/mp4")},
                           data=fields or {}, headers={**tenant.headers, **(headers or {})})


def _stored_files(api) -> list[Path]:  # noqa: F811
    return [p for p in Path(api.store.root).rglob("*") if p.is_file()]


def test_upload_answers_202_with_ids_and_records_video_job_and_input(api):  # noqa: F811
    owner = api.tenant()
    r = _upload(api, owner, NO_AUDIO, fields={"exact_clips": "true", "language": "en"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and uuid.UUID(body["id"]) and uuid.UUID(body["job_id"])
    assert body["sha256"] == hashlib.sha256(NO_AUDIO.read_bytes()).hexdigest()
    assert body["content_type"] == "video/mp4" and body["filename"] == "example_no_audio.mp4"
    with system_session(api.system) as s:
        job = s.get(Job, uuid.UUID(body["job_id"]))
        assert (job.kind, job.partition_key, job.subject_id) == ("video_notes", body["id"], uuid.UUID(body["id"]))
        assert job.payload == {"video_id": body["id"], "exact_clips": True, "language": "en"}
        video = s.get(VideoAsset, uuid.UUID(body["id"]))
        source = s.get(Artifact, video.input_artifact_id)
        assert source.kind == "input" and source.storage_key.endswith("/source") and source.expires_at
    assert api.client.get(path_of(body["source_url"])).content == NO_AUDIO.read_bytes()


def test_same_bytes_return_the_first_video_and_store_nothing_twice(api):  # noqa: F811
    owner, other = api.tenant(), api.tenant()
    first = _upload(api, owner, NO_AUDIO)
    again = _upload(api, owner, NO_AUDIO, filename="renamed.mp4")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["job_id"] == first.json()["job_id"]
    assert len(_stored_files(api)) == 1
    elsewhere = _upload(api, other, NO_AUDIO)
    assert elsewhere.status_code == 202 and elsewhere.json()["id"] != first.json()["id"], "dedupe is per workspace"


def test_idempotency_key_replays_and_conflicts(api):  # noqa: F811
    owner = api.tenant()
    key = {"Idempotency-Key": "upload-1"}
    first = _upload(api, owner, NO_AUDIO, headers=key)
    replay = _upload(api, owner, NO_AUDIO, headers=key)
    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.json()["job_id"] == first.json()["job_id"]
    other = _upload(api, owner, JFK, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert len(_stored_files(api)) == 1, "the conflicting upload is not kept"


def test_too_large_upload_is_413_and_leaves_nothing(api):  # noqa: F811
    api.settings.max_upload_bytes = 100_000
    r = _upload(api, api.tenant(), JFK)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert _stored_files(api) == []


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7 not a video" * 100, bytes(range(256)) * 64],
                         ids=["empty", "pdf", "random"])
def test_non_media_is_rejected_by_content_not_name(api, data):  # noqa: F811
    r = _upload(api, api.tenant(), data=data, filename="movie.mp4")
    assert r.status_code == 422 and r.json()["code"] == "invalid_media"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _stored_files(api) == []


@pytest.mark.parametrize("hostile", ["-rf --no-preserve-root.mp4", "../../etc/passwd.mp4", "..\\..\\x.mp4"])
def test_hostile_file_names_are_metadata_only(api, hostile):  # noqa: F811
    r = _upload(api, api.tenant(), NO_AUDIO, filename=hostile)
    assert r.status_code == 202, r.text
    name = r.json()["filename"]
    assert not name.startswith(("-", ".")) and "/" not in name and "\\" not in name
    with system_session(api.system) as s:
        key = s.scalar(select(Artifact.storage_key).where(Artifact.kind == "input"))
    assert ".." not in key and "passwd" not in key and "rf" not in key
    assert all(str(p.resolve()).startswith(str(Path(api.store.root).resolve())) for p in _stored_files(api))


def test_list_is_keyset_paginated_newest_first(api):  # noqa: F811
    owner = api.tenant()
    ids = [_upload(api, owner, data=NO_AUDIO.read_bytes() + bytes([i]), filename=f"v{i}.mp4").json()["id"]
           for i in range(3)]
    page = api.client.get("/v1/videos?limit=2", headers=owner.headers).json()
    rest = api.client.get(f"/v1/videos?limit=2&cursor={page['next_cursor']}", headers=owner.headers).json()
    assert [v["id"] for v in page["items"] + rest["items"]] == ids[::-1] and rest["next_cursor"] is None
    assert api.client.get("/v1/videos", headers=api.tenant().headers).json()["items"] == []


def test_list_costs_the_same_queries_for_1_or_20_videos_and_shows_each_newest_job(api):  # noqa: F811
    owner = api.tenant()
    videos = [_upload(api, owner, data=NO_AUDIO.read_bytes() + bytes([i]), filename=f"v{i}.mp4").json()
              for i in range(20)]
    with system_session(api.system) as s:  # one video has been reprocessed: its newest job is the one to show
        s.get(Job, uuid.UUID(videos[0]["job_id"])).status = "failed"
    newest = api.client.post(f"/v1/videos/{videos[0]['id']}/reprocess", headers=owner.headers).json()["job_id"]
    api.client.get("/v1/videos?limit=1", headers=owner.headers)  # warm-up: token bookkeeping happens once

    def page(limit: int) -> tuple[list[dict], int]:
        with counted_statements(api.app.state.engine) as statements:
            r = api.client.get(f"/v1/videos?limit={limit}", headers=owner.headers)
        return r.json()["items"], len(statements)

    (one, one_cost), (twenty, twenty_cost) = page(1), page(20)
    assert (len(one), len(twenty)) == (1, 20)
    assert twenty_cost == one_cost, "a video page must load its jobs and uploads in bulk"
    by_id = {v["id"]: v for v in twenty}
    assert by_id[videos[0]["id"]]["job_id"] == newest and by_id[videos[0]["id"]]["status"] == "queued"
    assert all(by_id[v["id"]]["job_id"] == v["job_id"] for v in videos[1:])
    assert all(path_of(v["source_url"]).startswith("/v1/downloads/") for v in twenty)


def test_reprocess_queues_a_new_job_once_the_last_finished(api):  # noqa: F811
    owner = api.tenant()
    video = _upload(api, owner, NO_AUDIO).json()
    busy = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=owner.headers)
    assert busy.status_code == 409 and busy.json()["code"] == "video_busy"
    with system_session(api.system) as s:
        s.get(Job, uuid.UUID(video["job_id"])).status = "failed"  # as if its run had failed
    r = api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=owner.headers)
    assert r.status_code == 202 and r.json()["id"] == video["id"] and r.json()["job_id"] != video["job_id"]
    assert api.client.get(f"/v1/videos/{video['id']}", headers=owner.headers).json()["job_id"] == r.json()["job_id"]
    viewer = api.member(owner, "viewer")
    assert api.client.post(f"/v1/videos/{video['id']}/reprocess", headers=viewer.headers).status_code == 403
    assert _upload(api, viewer, JFK).status_code == 403


def test_generic_jobs_api_refuses_video_notes_and_names_the_product_route(api):  # noqa: F811
    owner = api.tenant()
    video = _upload(api, owner, NO_AUDIO).json()
    with system_session(api.system) as s:
        jobs_before = s.scalar(select(func.count()).select_from(Job))
    r = api.client.post("/v1/jobs", headers=owner.headers,
                        json={"kind": "video_notes", "payload": {"video_id": video["id"], "exact_clips": True}})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "use_product_route" and "POST /v1/videos" in r.json()["detail"]
    assert r.json()["route"].startswith("POST /v1/videos")
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == jobs_before, "no job may be queued"
    # the platform's own kind still goes through the generic route
    ok = api.client.post("/v1/jobs", headers=owner.headers, json={"kind": "selftest", "payload": {"message": "hi"}})
    assert ok.status_code == 202, ok.text


def test_a_kind_that_opts_out_must_name_its_route():
    from pipelines.card import JobKind
    from pipelines.video_notes.product import VideoNotesPayload

    with pytest.raises(ValueError, match="name the route"):
        JobKind("video_notes_without_route", partitions="videos", payload_model=VideoNotesPayload,
                submit_via_jobs_api=False)


def make_foreign_video(api, victim) -> uuid.UUID:  # noqa: F811
    """A video of ``victim``'s workspace (for tests/platform/test_api_tenancy.py)."""
    return uuid.UUID(_upload(api, victim, data=NO_AUDIO.read_bytes() + uuid.uuid4().bytes, filename="v.mp4").json()["id"])


def test_streaming_an_upload_holds_no_database_connection(api, monkeypatch):  # noqa: F811
    """A long upload must not pin a pooled connection (and an open transaction) while its bytes arrive."""
    owner = api.tenant()
    pool = api.app.state.engine.pool
    checked_out_while_streaming: list[int] = []
    open_writer = type(api.store).open_writer

    def observing_open_writer(self, key, **kwargs):  # uploads write through ObjectStore.open_writer
        writer = open_writer(self, key, **kwargs)
        write = writer.write

        def observed_write(chunk):
            checked_out_while_streaming.append(pool.checkedout())
            write(chunk)

        writer.write = observed_write
        return writer

    monkeypatch.setattr(type(api.store), "open_writer", observing_open_writer)
    r = _upload(api, owner, NO_AUDIO)
    assert r.status_code == 202, r.text
    assert checked_out_while_streaming and set(checked_out_while_streaming) == {0}
    # The rest of the request ran in a new transaction, still scoped to the caller's workspace.
    assert api.client.get(f"/v1/videos/{r.json()['id']}", headers=owner.headers).status_code == 200


def test_the_job_takes_max_attempts_from_the_product_card(api, monkeypatch):  # noqa: F811
    """The card is the one place a product's retry budget is set: the upload route reads it."""
    import dataclasses

    import api.routes.videos as videos_route

    card = videos_route.CARD
    monkeypatch.setattr(videos_route, "CARD", dataclasses.replace(
        card, job_kinds=tuple(dataclasses.replace(k, max_attempts=7) for k in card.job_kinds)))
    t = api.tenant()
    r = _upload(api, t, NO_AUDIO)
    assert r.status_code == 202, r.text
    with system_session(api.system) as s:
        assert s.get(Job, uuid.UUID(r.json()["job_id"])).max_attempts == 7 != api.settings.job_max_attempts

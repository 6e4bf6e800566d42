"""The Episodes routes end to end (TestClient, SQLite and PostgreSQL): characters, images, relationships, series,
episodes, pinning, estimates, quotas, bad input and tenancy."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from tests.support.api import api  # noqa: F401  (fixture)
from tests.support.episodes_product import (
    create_character,
    create_episode,
    encoded,
    noise_image,
    png,
    png_declaring,
    sample_series,
    upload_image,
)
from warehouse.db import system_session
from warehouse.episodes import CharacterImage, CharacterVersion, Episode
from warehouse.models import Artifact, Job


def _count(api, model) -> int:
    with system_session(api.system) as s:
        return s.scalar(select(func.count()).select_from(model))


def _objects(api) -> list:
    root = api.settings.objects_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_series_and_an_episode_pin_the_cast_and_queue_a_package_job(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    r = create_episode(api, owner, ids["series"])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"] and body["job_id"] and body["status"] == "queued" and body["package_url"] is None
    assert {(p["character_id"], p["version"]) for p in body["cast"]} == {(ids["mira"], 2), (ids["leo"], 2)}
    job = api.client.get(f"/v1/jobs/{body['job_id']}", headers=owner.headers).json()
    assert job["kind"] == "episode_package" and job["status"] == "queued"
    with system_session(api.system) as s:
        assert s.get(Job, uuid.UUID(body["job_id"])).partition_key == body["id"]
    got = api.client.get(f"/v1/episodes/{body['id']}", headers=owner.headers).json()
    assert got["status"] == "queued" and got["continuity"] is None and got["animatic_url"] is None
    estimate = api.client.get(f"/v1/episodes/{body['id']}/estimate", headers=owner.headers)
    assert estimate.status_code == 200 and estimate.json()["source"] == "computed"
    priced = estimate.json()["estimate"]
    assert set(priced["images_micros_by_provider"].values()) == {0}  # offline cards cost nothing
    assert priced["animatic_render_seconds"] > 0 and priced["total_micros"] == priced["animatic_micros"]


def test_pins_survive_character_edits_until_an_explicit_repin(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    episode = create_episode(api, owner, ids["series"]).json()
    edited = api.client.patch(f"/v1/characters/{ids['mira']}", headers=owner.headers,
                              json={"dynamic_defaults": {"outfit": "green coat"}})
    assert edited.status_code == 200 and edited.json()["version"] == 3
    assert edited.json()["references"][0]["view"] == "front"  # an edit keeps the images
    same = api.client.patch(f"/v1/characters/{ids['mira']}", headers=owner.headers,
                            json={"dynamic_defaults": {"outfit": "green coat"}})
    assert same.json()["version"] == 3  # nothing changed: no new version
    pinned = api.client.get(f"/v1/episodes/{episode['id']}", headers=owner.headers).json()["cast"]
    assert {p["character_id"]: p["version"] for p in pinned}[ids["mira"]] == 2
    old = api.client.get(f"/v1/characters/{ids['mira']}/versions/2", headers=owner.headers).json()
    assert old["dynamic_defaults"]["outfit"] == "yellow raincoat"  # versions are immutable

    busy = api.client.post(f"/v1/episodes/{episode['id']}/repin", headers=owner.headers)
    assert busy.status_code == 409 and busy.json()["code"] == "episode_busy"
    assert api.client.post(f"/v1/jobs/{episode['job_id']}/cancel", headers=owner.headers).status_code == 200
    repinned = api.client.post(f"/v1/episodes/{episode['id']}/repin", headers=owner.headers)
    assert repinned.status_code == 202, repinned.text
    assert repinned.json()["job_id"] != episode["job_id"] and repinned.json()["status"] == "queued"
    assert {p["character_id"]: p["version"] for p in repinned.json()["cast"]}[ids["mira"]] == 3


def test_images_are_deduplicated_by_sha256_and_near_duplicates_are_reported(api):
    owner = api.tenant()
    mira = create_character(api, owner, "Mira")
    leo = create_character(api, owner, "Leo")
    first = upload_image(api, owner, mira["id"], png(5))
    assert first.status_code == 201 and first.json()["stored_bytes"] is True
    image = first.json()["image"]
    assert len(image["phash"]) == 16 and (image["width"], image["height"]) == (96, 64)
    objects = len(_objects(api))

    again = upload_image(api, owner, mira["id"], png(5))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["image"]["id"] == image["id"] and again.json()["character"]["version"] == 2
    shared = upload_image(api, owner, leo["id"], png(5))  # the same bytes for another character: stored once
    assert shared.status_code == 201 and shared.json()["stored_bytes"] is False
    assert len(_objects(api)) == objects
    other_view = upload_image(api, owner, mira["id"], png(5), view="side")
    assert other_view.status_code == 409 and other_view.json()["code"] == "image_already_used"

    resized = encoded(noise_image(5).resize((192, 128)), "JPEG", quality=85)
    near = upload_image(api, owner, mira["id"], resized, view="three_quarter", filename="ref.jpg")
    assert near.status_code == 201, near.text
    reported = near.json()["near_duplicates"]
    assert reported and reported[0]["sha256"] == image["sha256"] and reported[0]["distance"] <= 6
    far = upload_image(api, owner, mira["id"], png(99), view="side")
    assert far.json()["near_duplicates"] == []
    views = [ref["view"] for ref in far.json()["character"]["references"]]
    assert sorted(views) == ["front", "side", "three_quarter"]


BAD_IMAGES = {
    "png_bomb": (lambda: png_declaring(100_000, 100_000), 413, "image_too_large"),
    "too_wide": (lambda: encoded(noise_image(3, (4104, 8))), 413, "image_too_large"),
    "svg": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>', 415,
            "unsupported_image_type"),
    "xml_svg": (lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', 415,
                "unsupported_image_type"),
    "text": (lambda: b"this is not an image at all", 415, "unsupported_image_type"),
    "gif": (lambda: encoded(noise_image(4), "GIF"), 415, "unsupported_image_type"),
    "truncated_png": (lambda: png(6)[:200], 422, "image_invalid"),
    "empty": (lambda: b"", 422, "image_invalid"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_get_a_typed_error_and_keep_nothing(api, case):
    make, status, code = BAD_IMAGES[case]
    owner = api.tenant()
    mira = create_character(api, owner, "Mira")
    before = (_count(api, CharacterImage), _count(api, Artifact), len(_objects(api)))
    r = upload_image(api, owner, mira["id"], make())
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"] == code
    assert "Traceback" not in r.text and "<" not in r.json()["detail"]
    assert (_count(api, CharacterImage), _count(api, Artifact), len(_objects(api))) == before
    assert api.client.get(f"/v1/characters/{mira['id']}", headers=owner.headers).json()["version"] == 1


def test_an_image_over_the_byte_limit_is_refused_before_it_is_kept(api):
    api.settings.episodes_max_image_bytes = 10_000
    owner = api.tenant()
    mira = create_character(api, owner, "Mira")
    r = upload_image(api, owner, mira["id"], encoded(noise_image(8, (400, 400))))
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert _count(api, CharacterImage) == 0 and _objects(api) == []
    missing_view = upload_image(api, owner, mira["id"], png(1), view="left")
    assert missing_view.status_code == 422 and missing_view.json()["code"] == "invalid_view"


def test_bad_episode_input_gets_typed_errors_and_keeps_nothing(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    assert create_episode(api, owner, ids["series"]).status_code == 202
    jobs_before, episodes_before = _count(api, Job), _count(api, Episode)
    cases = [
        (create_episode(api, owner, ids["series"], number=2, story="  \n\n "), 422, "story_empty"),
        (create_episode(api, owner, ids["series"], number=1), 409, "episode_number_taken"),
        (create_episode(api, owner, ids["series"], number=3, cast=[str(uuid.uuid4())]), 422, "unknown_character"),
        (create_episode(api, owner, ids["series"], number=4, cast=[ids["mira"], ids["mira"]]), 422, "duplicate_cast"),
        (create_episode(api, owner, ids["series"], number=5, story="x" * 100_001), 413, "story_too_long"),
        (create_episode(api, owner, ids["series"], number=6, story="\n\n".join(["Para."] * 201)), 422,
         "too_many_scenes"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert (_count(api, Job), _count(api, Episode)) == (jobs_before, episodes_before)


def test_bad_characters_relationships_and_series(api):
    owner = api.tenant()
    bad_name = api.client.post("/v1/characters", headers=owner.headers, json={"name": 'Mi"ra'})
    assert bad_name.status_code == 422
    mira, leo = create_character(api, owner, "Mira"), create_character(api, owner, "Leo")
    same = api.client.post("/v1/relationships", headers=owner.headers,
                           json={"a_id": mira["id"], "b_id": mira["id"], "type": "friend"})
    assert same.status_code == 422 and same.json()["code"] == "relationship_invalid"
    first = api.client.post("/v1/relationships", headers=owner.headers,
                            json={"a_id": leo["id"], "b_id": mira["id"], "type": "sibling"})
    assert first.status_code == 201
    assert (first.json()["a_id"], first.json()["b_id"]) == tuple(sorted([leo["id"], mira["id"]]))  # canonical
    reversed_pair = api.client.post("/v1/relationships", headers=owner.headers,
                                    json={"a_id": mira["id"], "b_id": leo["id"], "type": "sibling"})
    assert reversed_pair.status_code == 409 and reversed_pair.json()["code"] == "relationship_exists"
    parent = api.client.post("/v1/relationships", headers=owner.headers,
                             json={"a_id": mira["id"], "b_id": leo["id"], "type": "parent_of"})
    assert parent.status_code == 201 and parent.json()["directed"] is True and parent.json()["a_id"] == mira["id"]
    bad_style = api.client.post("/v1/series", headers=owner.headers,
                                json={"title": "T", "style": {"palette": ["red"]}})
    assert bad_style.status_code == 422


def test_package_quota_refuses_with_the_reset_time(api):
    api.settings.episodes_quota_packages_per_day = 1
    owner = api.tenant()
    ids = sample_series(api, owner)
    assert create_episode(api, owner, ids["series"], number=1).status_code == 202
    refused = create_episode(api, owner, ids["series"], number=2)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["limit"] == 1
    assert _count(api, Episode) == 1


def test_reference_storage_quota_refuses_before_the_body(api):
    api.settings.episodes_quota_reference_bytes = 1
    owner = api.tenant()
    mira = create_character(api, owner, "Mira")
    assert upload_image(api, owner, mira["id"], png(1)).status_code == 201  # under the quota when it started
    refused = upload_image(api, owner, mira["id"], png(2), view="side")
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"


def test_every_route_answers_404_for_another_workspaces_ids(api):
    owner, stranger = api.tenant(), api.tenant()
    ids = sample_series(api, owner)
    episode = create_episode(api, owner, ids["series"]).json()
    h = stranger.headers
    calls = [
        api.client.get(f"/v1/characters/{ids['mira']}", headers=h),
        api.client.get(f"/v1/characters/{ids['mira']}/versions/1", headers=h),
        api.client.patch(f"/v1/characters/{ids['mira']}", headers=h, json={"description": "x"}),
        upload_image(api, stranger, ids["mira"], png(3)),
        api.client.get(f"/v1/series/{ids['series']}", headers=h),
        create_episode(api, stranger, ids["series"], number=9),
        api.client.get(f"/v1/episodes/{episode['id']}", headers=h),
        api.client.get(f"/v1/episodes/{episode['id']}/estimate", headers=h),
        api.client.post(f"/v1/episodes/{episode['id']}/repin", headers=h),
    ]
    for response in calls:
        assert response.status_code == 404 and response.json()["code"] == "not_found", response.text
    # Ids inside a body are checked like unknown ones: nothing says they exist elsewhere.
    mine = create_character(api, stranger, "Own")
    rel = api.client.post("/v1/relationships", headers=h, json={"a_id": mine["id"], "b_id": ids["mira"],
                                                                "type": "friend"})
    series = api.client.post("/v1/series", headers=h, json={"title": "T", "cast": [ids["leo"]]})
    for response in (rel, series):
        assert response.status_code == 422 and response.json()["code"] == "unknown_character"
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(CharacterVersion).where(
            CharacterVersion.character_id == uuid.UUID(ids["mira"]))) == 2  # the stranger's PATCH made nothing


def test_viewers_read_but_cannot_write(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    viewer = api.member(owner, "viewer")
    assert api.client.get(f"/v1/characters/{ids['mira']}", headers=viewer.headers).status_code == 200
    assert api.client.post("/v1/characters", headers=viewer.headers, json={"name": "X"}).status_code == 403
    assert create_episode(api, viewer, ids["series"]).status_code == 403
    assert upload_image(api, viewer, ids["mira"], png(4)).status_code == 403


def test_an_idempotency_key_replays_the_first_episode_and_refuses_another_request(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    keyed = {**owner.headers, "Idempotency-Key": "ep-1"}
    first = api.client.post(f"/v1/series/{ids['series']}/episodes", headers=keyed,
                            json={"number": 1, "title": "One", "story": "Mira waved."})
    replay = api.client.post(f"/v1/series/{ids['series']}/episodes", headers=keyed,
                             json={"number": 1, "title": "One", "story": "Mira waved."})
    assert (first.status_code, replay.status_code) == (202, 200) and replay.json()["id"] == first.json()["id"]
    other = api.client.post(f"/v1/series/{ids['series']}/episodes", headers=keyed,
                            json={"number": 2, "title": "Two", "story": "Leo waved."})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert (_count(api, Episode), _count(api, Job)) == (1, 1)


@pytest.mark.parametrize("path, body", [
    ("/v1/characters", {"name": "Mira", "description": "a\x00b"}),
    ("/v1/characters", {"name": "Mira", "static_traits": {"eyes": "\x00"}}),
    ("/v1/series", {"title": "a\x00b"}),
    ("/v1/series", {"title": "line\nbreak"}),
])
def test_nul_and_control_characters_in_text_are_422_not_a_database_error(api, path, body):
    owner = api.tenant()
    r = api.client.post(path, headers=owner.headers, json=body)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text


def test_a_nul_in_a_story_is_422(api):
    owner = api.tenant()
    ids = sample_series(api, owner)
    r = create_episode(api, owner, ids["series"], story="Mira\x00 waved.")
    assert r.status_code == 422 and _count(api, Episode) == 0


def test_lists_page_characters_series_and_a_series_episodes(api):
    owner, stranger = api.tenant(), api.tenant()
    ids = sample_series(api, owner)
    for number in (3, 1, 2):
        assert create_episode(api, owner, ids["series"], number=number).status_code == 202
    first = api.client.get("/v1/characters?limit=1", headers=owner.headers).json()
    second = api.client.get(f"/v1/characters?limit=1&cursor={first['next_cursor']}", headers=owner.headers).json()
    assert [first["items"][0]["name"], second["items"][0]["name"]] == ["Leo", "Mira"] and not second["next_cursor"]
    assert second["items"][0]["version"] == 2  # the current version
    assert [s["id"] for s in api.client.get("/v1/series", headers=owner.headers).json()["items"]] == [ids["series"]]
    page = api.client.get(f"/v1/series/{ids['series']}/episodes?limit=2", headers=owner.headers).json()
    rest = api.client.get(f"/v1/series/{ids['series']}/episodes?cursor={page['next_cursor']}",
                          headers=owner.headers).json()
    assert [e["number"] for e in page["items"] + rest["items"]] == [1, 2, 3]
    assert {e["status"] for e in page["items"]} == {"queued"}
    assert api.client.get("/v1/characters", headers=stranger.headers).json()["items"] == []
    assert api.client.get("/v1/series", headers=stranger.headers).json()["items"] == []
    assert api.client.get(f"/v1/series/{ids['series']}/episodes", headers=stranger.headers).status_code == 404


def test_two_edits_of_one_character_at_once_make_two_versions_not_an_error(api):
    """The edit locks the character row (SQLite: the write lock) before it reads the current version, so the
    second edit waits and then builds on the first: versions 2 and 3, never the same number twice."""
    import threading

    from warehouse import episodes as store_rows

    owner = api.tenant()
    character_id = uuid.UUID(create_character(api, owner, "Mira")["id"])
    first_locked, results = threading.Event(), {}

    def edit(name: str, wait_for: threading.Event | None) -> None:
        if wait_for is not None:
            wait_for.wait(5)
        with system_session(api.system) as s:
            character = store_rows.load_character(s, owner.workspace_id, character_id, for_update=True)
            if wait_for is None:
                first_locked.set()
                threading.Event().wait(0.3)  # the other edit starts meanwhile and must wait for this one
            version = store_rows.add_version(s, character, {"name": name}, "0" * 64, owner.user_id)
            results[name] = version.version

    threads = [threading.Thread(target=edit, args=("Mira A", None)),
               threading.Thread(target=edit, args=("Mira B", first_locked))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == {"Mira A": 2, "Mira B": 3}
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(CharacterVersion)
                        .where(CharacterVersion.character_id == character_id)) == 3


def test_the_sample_series_make_run_seeds_goes_through_the_public_api(api):
    from api.cli_episodes import seed_sample_series

    owner = api.tenant()
    api.client.headers.update(owner.headers)
    try:
        seeded = seed_sample_series(api.client)
    finally:
        for name in owner.headers:
            api.client.headers.pop(name, None)
    episode = api.client.get(f"/v1/episodes/{seeded['episode_id']}", headers=owner.headers).json()
    assert episode["status"] == "queued" and episode["job_id"] == seeded["job_id"]
    assert sorted(p["character_id"] for p in episode["cast"]) == sorted(seeded["characters"])
    for character_id in seeded["characters"]:
        character = api.client.get(f"/v1/characters/{character_id}", headers=owner.headers).json()
        assert [r["view"] for r in character["references"]] == ["front"]  # drawn at seed time, stored once

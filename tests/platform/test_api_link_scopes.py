"""A signed link is an artifact read: no response may carry a working one without ``artifacts:read``.

The test walks the OpenAPI document: every operation whose success answer has, at any depth (nested
objects, lists, unions), a field named ``url`` or ending in ``_url`` is a link route. Each must be in
EXERCISES, which calls it on real data (a video with notes, a bulk run with a ZIP and rows, an
artifact) with a token lacking ``artifacts:read`` (every link field null, no ``/v1/downloads/`` in the
body, ``Kiln-Links-Withheld: artifacts:read``) and with a full token (working links). A new route with
a ``*_url`` field fails here until it is exercised, so it cannot forget the check.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.documents_product import name_email_template
from tests.support.episodes_product import sample_series
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.video_notes.test_video_product_api import NO_AUDIO
from warehouse.db import system_session, utcnow
from warehouse.documents import BulkRow, BulkRun
from warehouse.episodes import Episode
from warehouse.models import Job
from warehouse.video_notes import Highlight, VideoAsset

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ROWS_CSV = b"name,email\nAnn,a@b.c\nBob,b@c.d\n"


# -- the OpenAPI walk ---------------------------------------------------------------------------------------------
def _is_link_field(name: str) -> bool:
    return name == "url" or name.endswith("_url")


def _has_link_field(schema: dict, components: dict, seen: set[str]) -> bool:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return False
        return _has_link_field(components[name], components, seen | {name})
    if any(_is_link_field(p) for p in schema.get("properties", {})):
        return True
    children = [*schema.get("properties", {}).values(), *schema.get("anyOf", []), *schema.get("allOf", []),
                *schema.get("oneOf", [])]
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            children.append(schema[key])
    return any(_has_link_field(child, components, seen) for child in children)


def link_routes(app) -> set[tuple[str, str]]:
    spec = app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    found = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                for content in response.get("content", {}).values():
                    if "schema" in content and _has_link_field(content["schema"], components, set()):
                        found.add((method.upper(), path))
    return found


def link_values(body: Any) -> Iterator[Any]:
    """Every value of a link field in a JSON answer, at any depth."""
    if isinstance(body, dict):
        for key, value in body.items():
            if _is_link_field(key):
                yield value
            else:
                yield from link_values(value)
    elif isinstance(body, list):
        for item in body:
            yield from link_values(item)


def test_the_walk_finds_nested_link_fields(api):
    routes = link_routes(api.app)
    assert ("GET", "/v1/videos/{id}/notes") in routes  # screenshots[].screenshot_url, highlights[].clip_url
    assert ("GET", "/v1/bulk-runs/{id}/rows") in routes  # items[].docx_url
    assert ("GET", "/v1/jobs") not in routes


# -- real data ----------------------------------------------------------------------------------------------------
def _world(api, owner) -> dict[str, str]:
    """A video whose notes are done (every output file, a highlight with screenshot and clip), a bulk run with its
    ZIP, report and one succeeded and one failed row, and an artifact of a job."""
    r = api.client.post("/v1/videos", files={"file": ("v.mp4", NO_AUDIO.read_bytes(), "video/mp4")},
                        headers=owner.headers)
    assert r.status_code == 202, r.text
    video_id = uuid.UUID(r.json()["id"])
    with system_session(api.system) as s:
        job_id = s.scalar(select(VideoAsset.latest_job_id).where(VideoAsset.id == video_id))
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded", progress=100, finished_at=utcnow()))
    outputs = {
        "transcript.json": json.dumps({"language": "en", "segments": [
            {"id": 0, "start": 0.0, "end": 1.0, "text": "hi"}]}).encode(),
        "transcript.srt": b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", "transcript.vtt": b"WEBVTT\n",
        "transcript.txt": b"hi", "Summary.md": b"# Summary", "highlights.json": b"[]", "notes.zip": b"PK",
        "shot_00000500.jpg": b"\xff\xd8jpeg", "clip_01.mp4": b"mp4",
    }
    ids = {name: api.artifact(owner, data, filename=name, job_id=job_id) for name, data in outputs.items()}
    with system_session(api.system) as s:
        s.add(Highlight(workspace_id=owner.workspace_id, video_id=video_id, job_id=job_id, rank=1, start_ms=0,
                        end_ms=1000, title="t", score=0.5, text="hi", screenshot_artifact_id=ids["shot_00000500.jpg"],
                        screenshot_ms=500, clip_artifact_id=ids["clip_01.mp4"], clip_start_ms=0, clip_end_ms=1000))

    template = api.client.post("/v1/templates", headers=owner.headers,
                               files={"file": ("t.docx", name_email_template(), DOCX)})
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]
    run = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers={**owner.headers, "Idempotency-Key": "seed"},
                          files={"file": ("r.csv", ROWS_CSV, "text/csv")})
    assert run.status_code == 202, run.text
    run_id, run_job = uuid.UUID(run.json()["id"]), uuid.UUID(run.json()["job_id"])
    zip_id = api.artifact(owner, b"PK zip", filename="documents.zip", job_id=run_job)
    report_id = api.artifact(owner, b"row,status\n", filename="report.csv", job_id=run_job)
    docx_id = api.artifact(owner, b"PK docx", filename="Ann.docx", job_id=run_job)
    with system_session(api.system) as s:
        s.execute(update(Job).where(Job.id == run_job).values(status="succeeded", progress=100))
        s.execute(update(BulkRun).where(BulkRun.id == run_id).values(
            status="succeeded", total_rows=2, succeeded_rows=1, failed_rows=1, zip_artifact_id=zip_id,
            report_artifact_id=report_id))
        s.add(BulkRow(workspace_id=owner.workspace_id, bulk_run_id=run_id, row_index=1, status="succeeded",
                      docx_filename="Ann.docx", docx_artifact_id=docx_id, docx_sha256="0" * 64, updated_at=utcnow()))
        s.add(BulkRow(workspace_id=owner.workspace_id, bulk_run_id=run_id, row_index=2, status="failed",
                      error_code="x", error_message="x", updated_at=utcnow()))
    artifact_job = api.job(owner)
    artifact_id = api.artifact(owner, b"plain artifact", job_id=artifact_job)

    series = sample_series(api, owner)["series"]
    episode = api.client.post(f"/v1/series/{series}/episodes", headers={**owner.headers, "Idempotency-Key": "seed"},
                              json=EPISODE)
    assert episode.status_code == 202, episode.text
    episode_id, episode_job = uuid.UUID(episode.json()["id"]), uuid.UUID(episode.json()["job_id"])
    package_id = api.artifact(owner, b"PK package", filename="episode-1-package.zip", job_id=episode_job)
    with system_session(api.system) as s:
        s.execute(update(Job).where(Job.id == episode_job).values(status="succeeded", progress=100))
        s.execute(update(Episode).where(Episode.id == episode_id).values(
            status="ready", continuity=[], estimate={"total_micros": 0}, package_artifact_id=package_id))
    return {"video": str(video_id), "template": template_id, "run": str(run_id), "artifact": str(artifact_id),
            "job": str(artifact_job), "series": series, "episode": str(episode_id)}


EPISODE = {"number": 1, "title": "Seed", "story": 'Mira waved. "Hi," said Leo.'}


def _repin(api, w, headers):
    """A re-pin needs the episode's job finished: end whatever job the previous call queued."""
    with system_session(api.system) as s:
        job_id = s.scalar(select(Episode.job_id).where(Episode.id == uuid.UUID(w["episode"])))
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
    return api.client.post(f"/v1/episodes/{w['episode']}/repin", headers=headers)


def _render(api, w, headers):
    """A render needs a packaged episode and no active render: end whatever the previous calls queued."""
    with system_session(api.system) as s:
        episode = s.get(Episode, uuid.UUID(w["episode"]))
        for job_id in (episode.job_id, episode.render_job_id):
            if job_id is not None:
                s.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
        s.execute(update(Episode).where(Episode.id == episode.id).values(status="ready"))
    return api.client.post(f"/v1/episodes/{w['episode']}/render", headers=headers)


def _finish_run_job(api, world) -> None:
    """Resume and retry need the run's job finished: end whatever job the previous call queued."""
    with system_session(api.system) as s:
        job_id = s.scalar(select(BulkRun.job_id).where(BulkRun.id == uuid.UUID(world["run"])))
        s.execute(update(Job).where(Job.id == job_id).values(status="failed"))


def _restart(kind: str) -> Callable:
    def call(api, w, headers):
        _finish_run_job(api, w)
        return api.client.post(f"/v1/bulk-runs/{w['run']}/{kind}", headers=headers)
    return call


# (method, path) -> call(api, world, headers). Submits replay (same bytes, same Idempotency-Key) so that both tokens
# get an answer about the seeded objects, which have files.
EXERCISES: dict[tuple[str, str], Callable] = {
    ("POST", "/v1/videos"): lambda api, w, h: api.client.post(
        "/v1/videos", files={"file": ("v.mp4", NO_AUDIO.read_bytes(), "video/mp4")}, headers=h),
    ("GET", "/v1/videos"): lambda api, w, h: api.client.get("/v1/videos", headers=h),
    ("GET", "/v1/videos/{id}"): lambda api, w, h: api.client.get(f"/v1/videos/{w['video']}", headers=h),
    ("GET", "/v1/videos/{id}/notes"): lambda api, w, h: api.client.get(f"/v1/videos/{w['video']}/notes", headers=h),
    ("POST", "/v1/videos/{id}/reprocess"): lambda api, w, h: api.client.post(
        f"/v1/videos/{w['video']}/reprocess", headers={**h, "Idempotency-Key": "reprocess"}),
    ("POST", "/v1/templates/{id}/bulk-runs"): lambda api, w, h: api.client.post(
        f"/v1/templates/{w['template']}/bulk-runs", headers={**h, "Idempotency-Key": "seed"},
        files={"file": ("r.csv", ROWS_CSV, "text/csv")}),
    ("GET", "/v1/bulk-runs"): lambda api, w, h: api.client.get("/v1/bulk-runs", headers=h),
    ("GET", "/v1/bulk-runs/{id}"): lambda api, w, h: api.client.get(f"/v1/bulk-runs/{w['run']}", headers=h),
    ("GET", "/v1/bulk-runs/{id}/rows"): lambda api, w, h: api.client.get(f"/v1/bulk-runs/{w['run']}/rows", headers=h),
    ("POST", "/v1/bulk-runs/{id}/resume"): _restart("resume"),
    ("POST", "/v1/bulk-runs/{id}/retry-failed"): _restart("retry-failed"),
    ("GET", "/v1/artifacts/{id}"): lambda api, w, h: api.client.get(f"/v1/artifacts/{w['artifact']}", headers=h),
    ("POST", "/v1/artifacts/{id}/download-link"): lambda api, w, h: api.client.post(
        f"/v1/artifacts/{w['artifact']}/download-link", headers=h),
    ("GET", "/v1/jobs/{id}/artifacts"): lambda api, w, h: api.client.get(f"/v1/jobs/{w['job']}/artifacts", headers=h),
    ("POST", "/v1/series/{id}/episodes"): lambda api, w, h: api.client.post(
        f"/v1/series/{w['series']}/episodes", headers={**h, "Idempotency-Key": "seed"}, json=EPISODE),
    ("GET", "/v1/episodes/{id}"): lambda api, w, h: api.client.get(f"/v1/episodes/{w['episode']}", headers=h),
    ("POST", "/v1/episodes/{id}/repin"): _repin,
    ("POST", "/v1/episodes/{id}/render"): _render,
}


# Routes whose *_url field is not a Kiln download link (so artifacts:read has nothing to withhold), and why.
NOT_ARTIFACT_LINKS = {
    ("POST", "/v1/linkedin/connect"): "authorization_url is LinkedIn's consent page for the caller's own OAuth state",
}


def test_every_route_with_a_link_field_is_exercised(api):
    missing = link_routes(api.app) - set(EXERCISES) - set(NOT_ARTIFACT_LINKS)
    assert not missing, f"routes answering *_url fields that this test does not exercise: {sorted(missing)}"
    stale = set(EXERCISES) - link_routes(api.app)
    assert not stale, f"EXERCISES names routes without link fields: {sorted(stale)}"


def _assert_no_links(r, route) -> None:
    assert "/v1/downloads/" not in r.text, f"{route}: a link without artifacts:read: {r.text}"
    if r.is_success:
        values = list(link_values(r.json()))
        assert values and all(v is None for v in values), f"{route}: {values}"
        assert r.headers.get("kiln-links-withheld") == "artifacts:read", f"{route}: the answer does not say why"


@pytest.mark.parametrize("scopes", [["jobs:read"], ["jobs:read", "jobs:write"]])
def test_no_working_link_without_artifacts_read_and_working_links_with_it(api, scopes):
    owner = api.tenant("owner")
    world = _world(api, owner)
    narrow = api.member(owner, "owner", scopes=scopes)
    full = api.member(owner, "owner", scopes=["jobs:read", "jobs:write", "artifacts:read"])
    answered = 0
    for route, call in sorted(EXERCISES.items()):
        r = call(api, world, narrow.headers)
        assert r.status_code < 500, f"{route}: {r.status_code} {r.text}"
        _assert_no_links(r, route)
        answered += r.is_success
        r = call(api, world, full.headers)
        assert r.is_success, f"{route} with artifacts:read: {r.status_code} {r.text}"
        assert "kiln-links-withheld" not in r.headers
        links = [v for v in link_values(r.json()) if v is not None]
        assert links, f"{route}: no working link with artifacts:read: {r.text}"
        for link in links:
            assert api.client.get(path_of(link)).status_code == 200, f"{route}: {link} does not work"
    # jobs:read alone reads the GET routes (and is refused writes); jobs:write reaches the submits too.
    assert answered == (7 if scopes == ["jobs:read"] else 15)

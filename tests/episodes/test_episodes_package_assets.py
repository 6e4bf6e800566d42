"""The package assets materialized in process (sensor tick -> run -> run-status sensors), then read at the API."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import dagster as dg
from jsonschema import Draft202012Validator

from pipelines.episodes.package import PACKAGE_SCHEMA
from tests.support.api import api, path_of  # noqa: F401  (fixture)
from tests.support.episodes_product import create_character, create_episode, run_episode_cycle, sample_series
from warehouse.db import system_session
from warehouse.episodes import Scene, SceneAsset
from sqlalchemy import func, select


def _package(api, url: str) -> dict[str, bytes]:
    r = api.client.get(path_of(url))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_the_package_assets_build_a_valid_package_and_save_the_findings(api, db_url):
    owner = api.tenant()
    ids = sample_series(api, owner)
    episode = create_episode(api, owner, ids["series"]).json()
    with dg.instance_for_test() as instance:
        ((request, result),) = run_episode_cycle(instance, api, db_url)
        assert result.success and request.partition_key == episode["id"]
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialized == {"episode_script", "episode_scenes", "episode_asset_plan", "episode_render_plan",
                                "episode_package"}
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "continuity" and check.passed
        package_event = next(e for e in result.get_asset_materialization_events()
                             if e.asset_key.to_user_string() == "episode_package")
        summary = package_event.materialization.metadata["summary"].value
        assert "| scene | slugline |" in summary and "continuity passes" in summary

    done = api.client.get(f"/v1/episodes/{episode['id']}", headers=owner.headers).json()
    assert done["status"] == "ready" and done["job_status"] == "succeeded"
    assert done["continuity"]["passes"] is True and done["package_url"]
    assert done["estimate"]["animatic_render_seconds"] > 0
    assert api.client.get(f"/v1/episodes/{episode['id']}/estimate",
                          headers=owner.headers).json()["source"] == "package"
    files = _package(api, done["package_url"])
    assert {"package.json", "script.md", "script.json", "storyboard.md", "subtitles.srt",
            "manifest.json"} <= set(files)
    document = json.loads(files["package.json"])
    assert list(Draft202012Validator(PACKAGE_SCHEMA).iter_errors(document)) == []
    assert {c["character_id"] for c in document["characters"]} == {ids["mira"], ids["leo"]}
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    assert all(hashlib.sha256(files[p]).hexdigest() == sha for p, sha in listed.items())
    refs = [p for p in files if p.startswith("references/")]
    assert len(refs) == 2 and all(f"]({p})" in files["storyboard.md"].decode() for p in refs)
    assert "-->" in files["subtitles.srt"].decode()
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(Scene)) == 3
        assert s.scalar(select(func.count()).select_from(SceneAsset)) >= 3


def test_a_continuity_failure_blocks_the_episode_with_located_findings_and_the_job_still_succeeds(api, db_url):
    owner = api.tenant()
    ids = sample_series(api, owner)
    create_character(api, owner, "Ada")  # defined, but no reference image and not in the cast
    story = ('INT. LIGHTHOUSE - NIGHT\n\n"Who is there?" Mira said.\n\n'
             '"Only me," Ada said.\n\nLeo blinked his green eyes.')
    episode = create_episode(api, owner, ids["series"], story=story).json()
    with dg.instance_for_test() as instance:
        ((_, result),) = run_episode_cycle(instance, api, db_url)
        assert result.success
        (check,) = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    done = api.client.get(f"/v1/episodes/{episode['id']}", headers=owner.headers).json()
    assert done["status"] == "blocked" and done["job_status"] == "succeeded"
    findings = done["continuity"]["findings"]
    assert done["continuity"]["passes"] is False
    rules = {(f["rule"], f["scene"]) for f in findings if f["severity"] == "error"}
    assert ("unknown_speaker", 2) in rules and ("trait_contradiction", 3) in rules, findings
    storyboard = _package(api, done["package_url"])["storyboard.md"].decode()
    assert "Continuity fails" in storyboard


def test_a_repin_rebuilds_the_package_from_the_new_versions(api, db_url):
    owner = api.tenant()
    ids = sample_series(api, owner)
    episode = create_episode(api, owner, ids["series"]).json()
    with dg.instance_for_test() as instance:
        run_episode_cycle(instance, api, db_url)
        api.client.patch(f"/v1/characters/{ids['leo']}", headers=owner.headers,
                         json={"static_traits": {"eyes": "grey", "hair": "red curls"}})
        before = _package(api, api.client.get(f"/v1/episodes/{episode['id']}",
                                               headers=owner.headers).json()["package_url"])
        assert '"eyes": "blue"' in before["package.json"].decode()  # built from the pinned version
        assert api.client.post(f"/v1/episodes/{episode['id']}/repin", headers=owner.headers).status_code == 202
        ((_, result),) = run_episode_cycle(instance, api, db_url)
        assert result.success
    after = api.client.get(f"/v1/episodes/{episode['id']}", headers=owner.headers).json()
    assert after["status"] == "ready"
    assert '"eyes": "grey"' in _package(api, after["package_url"])["package.json"].decode()

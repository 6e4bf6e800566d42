"""The animatic: the render route's refusals, and an MP4 whose shots follow the render plan (PyAV probe)."""

from __future__ import annotations

import dagster as dg
import av

from pipelines.episodes.animatic import shot_frames
from tests.support.api import api, path_of  # noqa: F401  (fixture)
from tests.support.episodes_product import create_episode, run_episode_cycle, sample_series


def _packaged(api, db_url, owner, instance, story=None):
    ids = sample_series(api, owner)
    episode = create_episode(api, owner, ids["series"], **({"story": story} if story else {})).json()
    ((_, result),) = run_episode_cycle(instance, api, db_url)
    assert result.success
    return episode["id"]


def test_the_animatic_follows_the_render_plan_within_one_frame_per_shot(api, db_url, tmp_path):
    owner = api.tenant()
    with dg.instance_for_test() as instance:
        episode_id = _packaged(api, db_url, owner, instance)
        queued = api.client.post(f"/v1/episodes/{episode_id}/render", headers=owner.headers,
                                 json={"burn_subtitles": True})
        assert queued.status_code == 202, queued.text
        assert queued.json()["render_status"] == "queued" and queued.json()["animatic_url"] is None
        busy = api.client.post(f"/v1/episodes/{episode_id}/render", headers=owner.headers)
        assert busy.status_code == 409 and busy.json()["code"] == "render_busy"
        ((request, result),) = run_episode_cycle(instance, api, db_url, render=True)
        assert result.success and request.tags["kiln/pool"] == "render"
        (event,) = result.get_asset_materialization_events()
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        assert metadata["tts"] == "none" and metadata["burned_subtitles"] is True
    done = api.client.get(f"/v1/episodes/{episode_id}", headers=owner.headers).json()
    assert done["render_status"] == "succeeded" and done["animatic_url"]
    mp4 = api.client.get(path_of(done["animatic_url"]))
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    path = tmp_path / "animatic.mp4"
    path.write_bytes(mp4.content)
    package = api.client.get(path_of(done["package_url"])).content
    from pipelines.episodes.animatic import read_package

    plan = read_package(package)[0]["render_plan"]
    fps = api.settings.episodes_animatic_fps
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 1280, 720)
        assert audio.codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == metadata["frames"] == sum(shot_frames(plan["shots"], fps))
    assert abs(frames * 1000 / fps - plan["total_ms"]) <= 1000 / fps
    for shot, count in zip(plan["shots"], shot_frames(plan["shots"], fps)):
        assert abs(count * 1000 / fps - (shot["end_ms"] - shot["start_ms"])) <= 1000 / fps


def test_render_refusals_continuity_packaging_and_the_monthly_quota(api, db_url):
    owner = api.tenant()
    ids = sample_series(api, owner)
    waiting = create_episode(api, owner, ids["series"], number=1).json()
    early = api.client.post(f"/v1/episodes/{waiting['id']}/render", headers=owner.headers)
    assert early.status_code == 409 and early.json()["code"] == "not_packaged"
    blocked = create_episode(api, owner, ids["series"], number=2, story='"Hi," said Zed.').json()
    with dg.instance_for_test() as instance:
        run_episode_cycle(instance, api, db_url)
    refused = api.client.post(f"/v1/episodes/{blocked['id']}/render", headers=owner.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "continuity_failed"
    api.settings.episodes_quota_render_seconds_per_month = 1
    over = api.client.post(f"/v1/episodes/{waiting['id']}/render", headers=owner.headers)
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded", over.text
    assert int(over.headers["Retry-After"]) >= 1
    stranger = api.tenant()
    assert api.client.post(f"/v1/episodes/{waiting['id']}/render", headers=stranger.headers).status_code == 404


def test_shot_frames_stay_on_the_plan_without_drift():
    shots = [{"start_ms": s, "end_ms": e} for s, e in ((0, 2050), (2050, 2110), (2110, 5999), (5999, 9001))]
    counts = shot_frames(shots, 10)
    assert sum(counts) == round(9001 * 10 / 1000)
    assert all(abs(c * 100 - (s["end_ms"] - s["start_ms"])) <= 100 for c, s in zip(counts, shots))

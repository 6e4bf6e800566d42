"""Helpers of the Episodes product tests: images, a sample series through the API, one daemon cycle."""

from __future__ import annotations

import io
import struct
import zlib

import dagster as dg
import numpy as np
from PIL import Image

from assets.episodes.animatic import episode_animatic
from assets.episodes.assets import EPISODE_ASSETS
from resources.dagster_resources import DatabaseResource
from sensors.episodes import (
    episode_package_job,
    episode_render_dispatch_sensor,
    episode_render_job,
    episodes_dispatch_sensor,
)
from tests.support.dagster_runs import add_requested_partitions, report_run_to_sensors

STORY = """INT. LIGHTHOUSE - NIGHT

Mira climbed the stairs holding a brass lantern. "Leo, are you up there?" said Mira.

"Up here," Leo said. "The lamp went out."

Mira reached the top. Mira's brother Leo waited by the lamp.
"Then we fix it," Mira said."""


def noise_image(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A picture of its own: blocks of random grey levels (distinct seeds give far-apart perceptual hashes)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8), dtype=np.uint8)
    return Image.fromarray(np.kron(blocks, np.ones((8, 8), dtype=np.uint8))).convert("RGB")


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png(seed: int) -> bytes:
    return encoded(noise_image(seed))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    data = bytearray(png(1))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def create_character(api, tenant, name: str, **fields) -> dict:
    r = api.client.post("/v1/characters", headers=tenant.headers, json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def upload_image(api, tenant, character_id: str, data: bytes, view: str = "front", filename: str = "ref.png"):
    return api.client.post(f"/v1/characters/{character_id}/images", headers=tenant.headers, data={"view": view},
                           files={"file": (filename, data, "image/png")})


def sample_series(api, tenant) -> dict:
    """Mira and Leo (a front reference each), siblings, a series casting both."""
    mira = create_character(api, tenant, "Mira", static_traits={"eyes": "dark brown", "hair": "short black"},
                            dynamic_defaults={"outfit": "yellow raincoat"}, voice={"engine": "offline", "rate": 1.0})
    leo = create_character(api, tenant, "Leo", static_traits={"eyes": "blue", "hair": "red curls"})
    for seed, who in ((11, mira), (22, leo)):
        assert upload_image(api, tenant, who["id"], png(seed)).status_code == 201
    r = api.client.post("/v1/relationships", headers=tenant.headers,
                        json={"a_id": mira["id"], "b_id": leo["id"], "type": "sibling", "since_episode": 1})
    assert r.status_code == 201, r.text
    r = api.client.post("/v1/series", headers=tenant.headers,
                        json={"title": "Lighthouse", "style": {"visual_style": "ink"}, "cast": [mira["id"], leo["id"]]})
    assert r.status_code == 201, r.text
    return {"mira": mira["id"], "leo": leo["id"], "series": r.json()["id"]}


def create_episode(api, tenant, series_id: str, number: int = 1, story: str = STORY, **fields):
    return api.client.post(f"/v1/series/{series_id}/episodes", headers=tenant.headers,
                           json={"number": number, "title": "The Dark Lamp", "story": story, **fields})


def run_episode_cycle(instance, api, db_url: str, *, render: bool = False):
    """One daemon cycle: sensor tick, the requested package (or render) run(s) in process, run-status sensors."""
    resources = {"database": DatabaseResource(url=db_url), "object_store": api.store}
    sensor, job = ((episode_render_dispatch_sensor, episode_render_job) if render
                   else (episodes_dispatch_sensor, episode_package_job))
    tick = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    add_requested_partitions(instance, tick)
    defs = dg.Definitions(assets=[*EPISODE_ASSETS, episode_animatic], jobs=[episode_package_job, episode_render_job],
                          resources=resources)
    results = []
    for request in tick.run_requests:
        result = defs.resolve_job_def(request.job_name or job.name).execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance, raise_on_error=False)
        report_run_to_sensors(instance, result, resources)
        results.append((request, result))
    return results

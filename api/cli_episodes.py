"""The sample series ``kiln run`` seeds on a fresh machine, through the public API (as a user would).

Two characters with reference images drawn here (a simple figure each, so no image with a licence to check ships
in the repository), one relationship, a series casting both and one short episode. Its package job runs like any
other; the banner names the episode so a newcomer can follow it to the package. Seeded once: the episode id is
kept in ``.kiln/state.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

SAMPLE_STORY = """INT. LIGHTHOUSE - NIGHT

Mira climbed the stairs holding a brass lantern. "Leo, are you up there?" said Mira.

"Up here," Leo said. "The lamp went out."

Mira reached the top. Mira's brother Leo waited by the lamp.
"Then we fix it," Mira said."""


def reference_png(coat: tuple[int, int, int], hair: tuple[int, int, int], size: tuple[int, int] = (384, 512)) -> bytes:
    """A front view of a figure: a head with hair, a body in the given coat colour, on a plain background."""
    image = Image.new("RGB", size, (236, 232, 222))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.36, h * 0.10, w * 0.64, h * 0.31), fill=(224, 186, 150))  # face
    draw.pieslice((w * 0.34, h * 0.07, w * 0.66, h * 0.28), 180, 360, fill=hair)  # hair
    draw.rounded_rectangle((w * 0.28, h * 0.33, w * 0.72, h * 0.78), radius=int(w * 0.06), fill=coat)  # coat
    draw.rectangle((w * 0.36, h * 0.78, w * 0.46, h * 0.95), fill=(60, 60, 70))  # legs
    draw.rectangle((w * 0.54, h * 0.78, w * 0.64, h * 0.95), fill=(60, 60, 70))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _created(response: httpx.Response) -> dict:
    if response.status_code not in (200, 201, 202):
        raise RuntimeError(f"{response.request.method} {response.request.url.path} answered "
                           f"{response.status_code}: {response.text[:300]}")
    return response.json()


def seed_sample_series(client: httpx.Client) -> dict:
    """Create the sample series; answers the ids (characters, series, episode and its package job)."""
    mira = _created(client.post("/v1/characters", json={
        "name": "Mira", "static_traits": {"eyes": "dark brown", "hair": "short black", "age": "12"},
        "dynamic_defaults": {"outfit": "yellow raincoat"}, "description": "A curious girl who keeps the lighthouse.",
        "voice": {"engine": "offline", "rate": 1.0}}))
    leo = _created(client.post("/v1/characters", json={
        "name": "Leo", "static_traits": {"eyes": "blue", "hair": "red curls", "age": "15"},
        "dynamic_defaults": {"outfit": "green jumper"}, "description": "Mira's older brother."}))
    for who, coat, hair in ((mira, (230, 190, 40), (25, 25, 30)), (leo, (60, 130, 70), (180, 70, 30))):
        _created(client.post(f"/v1/characters/{who['id']}/images", data={"view": "front"},
                             files={"file": ("front.png", reference_png(coat, hair), "image/png")}))
    _created(client.post("/v1/relationships", json={"a_id": mira["id"], "b_id": leo["id"], "type": "sibling",
                                                    "since_episode": 1}))
    series = _created(client.post("/v1/series", json={"title": "The Lighthouse", "style": {"visual_style": "ink"},
                                                       "cast": [mira["id"], leo["id"]]}))
    episode = _created(client.post(f"/v1/series/{series['id']}/episodes",
                                   json={"number": 1, "title": "The Dark Lamp", "story": SAMPLE_STORY}))
    return {"characters": [mira["id"], leo["id"]], "series_id": series["id"], "episode_id": episode["id"],
            "job_id": episode.get("job_id")}


def seed_sample_series_once(home: Path, api_url: str, token: str) -> str | None:
    """Seed on the first ``kiln run`` (recorded in ``.kiln/state.json``); the episode id, or None when seeded before."""
    state_path = home / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("sample_episode_id"):
        return None
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        seeded = seed_sample_series(client)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}  # the video sample may have written
    state["sample_episode_id"] = seeded["episode_id"]
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_path)
    return seeded["episode_id"]

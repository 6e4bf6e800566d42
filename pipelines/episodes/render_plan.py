"""The render plan: a timeline of shots, dialogue audio, subtitles and transitions, and what it will cost.

Per scene: one establishing shot (the background and everyone present, held for the establishing
beat plus the action), then one shot per line of dialogue (the background and the speaker, held for
the line plus a pause). Times are integer milliseconds, contiguous: shot *n* ends where *n+1* starts,
so the animatic's duration can be checked against ``total_ms`` within a frame per shot. Transitions
are instantaneous markers (a dissolve at each scene change, cuts inside a scene), so they never
change the total.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Literal

from pipelines.episodes.asset_plan import ANIMATIC_PROVIDER, AssetItem, AssetPlan, price
from pipelines.episodes.models import CharacterVersion, StyleGuide, Voice, _Frozen
from pipelines.episodes.scenes import PAUSE_BETWEEN_LINES_MS, SCENE_ESTABLISHING_MS, SceneRow

SUBTITLE_WIDTH = 42  # characters per subtitle row, the usual broadcast guideline


class ImageUse(_Frozen):
    item: str  # the asset plan item key
    kind: str
    sha256: str | None
    generation_key: str | None


class DialogueAudio(_Frozen):
    scene: int
    line: int
    speaker: str | None
    voice: Voice
    text: str
    start_ms: int
    duration_ms: int


class Shot(_Frozen):
    number: int
    scene: int
    start_ms: int
    end_ms: int
    camera: str
    transition_in: Literal["fade_in", "dissolve", "cut"]
    images: tuple[ImageUse, ...]
    dialogue_line: int | None = None


class Estimate(_Frozen):
    currency: str
    images_micros_by_provider: dict[str, int]
    animatic_render_seconds: int
    animatic_micros: int
    total_micros: int


class RenderPlan(_Frozen):
    shots: tuple[Shot, ...]
    audio: tuple[DialogueAudio, ...]
    subtitles_srt: str
    total_ms: int
    estimate: Estimate


def _use(item: AssetItem) -> ImageUse:
    return ImageUse(item=item.key, kind=item.kind, sha256=item.sha256, generation_key=item.generation_key)


def srt_time(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def subtitles(audio: tuple[DialogueAudio, ...]) -> str:
    """SubRip text: one cue per line of dialogue, wrapped, no blank line inside a cue (that would end it)."""
    cues = []
    for n, line in enumerate(audio, start=1):
        text = "\n".join(textwrap.wrap(line.text, SUBTITLE_WIDTH, break_long_words=True)) or "…"
        cues.append(f"{n}\n{srt_time(line.start_ms)} --> {srt_time(line.start_ms + line.duration_ms)}\n{text}\n")
    return "\n".join(cues)


def format_money(micros: int, currency: str) -> str:
    return f"{micros / 1_000_000:.2f} {currency}"


def build_render_plan(rows: list[SceneRow], plan: AssetPlan, pinned: Mapping[str, CharacterVersion],
                      style: StyleGuide) -> RenderPlan:
    items_by_scene = {s.number: s.items for s in plan.scenes}
    shots: list[Shot] = []
    audio: list[DialogueAudio] = []
    clock = 0
    for row in rows:
        items = items_by_scene.get(row.number, ())
        background = [i for i in items if i.kind == "background"]
        people = {i.character_id: i for i in items if i.kind == "character"}
        props = [i for i in items if i.kind == "prop"]
        hold = SCENE_ESTABLISHING_MS + row.action_ms
        shots.append(Shot(number=len(shots) + 1, scene=row.number, start_ms=clock, end_ms=clock + hold,
                          camera=f"wide establishing shot: {row.location}, {row.time_of_day.lower()}",
                          transition_in="fade_in" if not shots else "dissolve",
                          images=tuple(_use(i) for i in background + list(people.values()) + props)))
        clock += hold
        for line in row.dialogue:
            speaker_item = people.get(line.character_id) if line.character_id else None
            cv = pinned.get(line.character_id) if line.character_id else None
            voice = cv.voice if cv and cv.voice else style.default_voice
            audio.append(DialogueAudio(scene=row.number, line=line.index, speaker=line.speaker, voice=voice,
                                       text=line.text, start_ms=clock, duration_ms=line.duration_ms))
            hold = line.duration_ms + PAUSE_BETWEEN_LINES_MS
            who = line.speaker or "the unattributed speaker"
            shots.append(Shot(number=len(shots) + 1, scene=row.number, start_ms=clock, end_ms=clock + hold,
                              camera=f"medium close-up on {who}", transition_in="cut",
                              images=tuple(_use(i) for i in background + ([speaker_item] if speaker_item else [])),
                              dialogue_line=line.index))
            clock += hold
    table = price(ANIMATIC_PROVIDER)
    render_seconds = math.ceil(clock / 1000)
    animatic = render_seconds * table["per_render_second_micros"]
    images = dict(sorted(plan.cost_micros_by_provider.items()))
    estimate = Estimate(currency=plan.currency, images_micros_by_provider=images,
                        animatic_render_seconds=render_seconds, animatic_micros=animatic,
                        total_micros=sum(images.values()) + animatic)
    frozen_audio = tuple(audio)
    return RenderPlan(shots=tuple(shots), audio=frozen_audio, subtitles_srt=subtitles(frozen_audio), total_ms=clock,
                      estimate=estimate)

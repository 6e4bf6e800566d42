"""Scene rows from a script: slugline, time of day, who is there (in what state), dialogue, action, duration.

Offline and literal: the location and time come from a screenplay heading when the scene has one,
else from a small vocabulary in the narration (``in the kitchen``, ``at dusk``), else they carry
over from the previous scene (``*_source`` says which). Characters present are the cast members
who speak or are named in the narration; their outfit is the pinned default unless the scene says
``<Name> ... wearing <outfit>``. Durations are integer milliseconds (no float drift in timelines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from pipelines.episodes.models import CharacterVersion, DynamicState, Voice, _Frozen
from pipelines.episodes.script import Script, ScriptScene
from pipelines.episodes.text import NameIndex, sentences

# Conversational English is spoken at about 150 words a minute; a voice's ``rate`` scales it.
DIALOGUE_WORDS_PER_MINUTE = 150
# Action is held on screen about as long as a brisk narrator would take to read it aloud.
ACTION_WORDS_PER_MINUTE = 200
# A beat between two lines of dialogue (and after the last one) so they do not run together.
PAUSE_BETWEEN_LINES_MS = 400
# The establishing beat at the top of every scene (the background on its own).
SCENE_ESTABLISHING_MS = 2_000
# No line is shorter than this on screen, however short ("No.").
MIN_LINE_MS = 1_000
# An action beat never holds a shot longer than this; long narration is summarised by the shot, not read.
MAX_ACTION_MS = 20_000

TIME_WORDS = {
    "dawn": "DAWN", "sunrise": "DAWN", "morning": "MORNING", "noon": "DAY", "midday": "DAY", "day": "DAY",
    "afternoon": "AFTERNOON", "evening": "EVENING", "dusk": "DUSK", "sunset": "DUSK", "twilight": "DUSK",
    "night": "NIGHT", "midnight": "NIGHT", "tonight": "NIGHT",
}
_HEADING_PARTS = re.compile(
    r"(?P<ie>INT\.?/EXT|INT|EXT|I/E)\.[ \t]+(?P<place>[^\n]*?)(?:[ \t]+[-–—][ \t]+(?P<time>[^\n-]*))?")
_PLACE = re.compile(r"\b(?:in|at|inside|into|outside|on)[ \t]+the[ \t]+([a-z]{2,30})(?:[ \t]+([a-z]{2,30}))?\b")
_PLACE_STOP = frozenset("and or but with while to of as when where that who which was is".split())
_TIME = re.compile(r"\b(" + "|".join(TIME_WORDS) + r")\b", re.IGNORECASE)

Source = Literal["heading", "story", "previous_scene", "default"]


class CharacterInScene(_Frozen):
    character_id: str
    name: str
    version: int
    state: DynamicState
    speaks: bool


class DialogueLine(_Frozen):
    index: int = Field(ge=0)
    speaker: str | None
    character_id: str | None  # None: the speaker is not in the cast (continuity reports it)
    text: str
    words: int
    duration_ms: int
    attribution: str | None


class SceneRow(_Frozen):
    number: int
    slugline: str
    location: str
    location_source: Source
    time_of_day: str
    time_source: Source
    characters: tuple[CharacterInScene, ...]
    dialogue: tuple[DialogueLine, ...]
    action: str
    action_ms: int
    estimated_duration_ms: int


def words_in(text: str) -> int:
    return len(text.split())


def line_ms(words: int, voice: Voice | None) -> int:
    rate = voice.rate if voice else 1.0
    return max(MIN_LINE_MS, round(words * 60_000 / (DIALOGUE_WORDS_PER_MINUTE * rate)))


def action_ms(words: int) -> int:
    return min(MAX_ACTION_MS, round(words * 60_000 / ACTION_WORDS_PER_MINUTE))


def _outfit_overrides(action: str, names: NameIndex) -> dict[str, str]:
    """``Mira, wearing a red raincoat, ...`` → ``{"Mira Okafor": "a red raincoat"}`` (one sentence, ≤ 10 words)."""
    found: dict[str, str] = {}
    for sentence in sentences(action):
        head, sep, tail = sentence.partition("wearing ")
        if not sep:
            continue
        mentioned = names.mentions(head)
        if mentioned:
            outfit = " ".join(re.split(r"[,;.!?]", tail, maxsplit=1)[0].split()[:10])
            if outfit:
                found[mentioned[-1][0]] = outfit
    return found


def _place_and_time(scene: ScriptScene, action: str) -> tuple[str | None, str | None]:
    if scene.heading:
        m = _HEADING_PARTS.fullmatch(scene.heading)
        if m:
            return (m.group("place").strip() or None), ((m.group("time") or "").strip().upper() or None)
    place = None
    for m in _PLACE.finditer(action):
        first, second = m.group(1), m.group(2)
        if first.lower() in TIME_WORDS:
            continue
        place = first if not second or second in _PLACE_STOP or second in TIME_WORDS else f"{first} {second}"
        break
    tm = _TIME.search(action)
    return place, (TIME_WORDS[tm.group(1).lower()] if tm else None)


def build_scene_rows(script: Script, pinned: Mapping[str, CharacterVersion],
                     default_voice: Voice | None = None) -> list[SceneRow]:
    """One row per script scene; the same script and pins always give the same rows."""
    by_name = {cv.name: cv for cv in pinned.values()}
    names = NameIndex(list(by_name))
    rows: list[SceneRow] = []
    prev_place, prev_time = "unspecified location", "DAY"
    for scene in script.scenes:
        action = " ".join(ln.text for ln in scene.lines if ln.kind == "narration")
        place, tod = _place_and_time(scene, action)
        place_source: Source = "heading" if scene.heading and place else "story" if place else (
            "previous_scene" if rows else "default")
        time_source: Source = "heading" if scene.heading and tod else "story" if tod else (
            "previous_scene" if rows else "default")
        place, tod = place or prev_place, tod or prev_time
        dialogue = []
        for i, line in enumerate(ln for ln in scene.lines if ln.kind == "dialogue"):
            cv = by_name.get(line.speaker or "")
            voice = (cv.voice if cv and cv.voice else default_voice)
            n = words_in(line.text)
            dialogue.append(DialogueLine(index=i, speaker=line.speaker, character_id=cv.character_id if cv else None,
                                         text=line.text, words=n, duration_ms=line_ms(n, voice),
                                         attribution=line.attribution))
        speakers = {d.speaker for d in dialogue}
        present = [n for n, _ in names.mentions(action)] + [d.speaker for d in dialogue if d.speaker in by_name]
        outfits = _outfit_overrides(action, names)
        characters = []
        for name in dict.fromkeys(present):  # first appearance order, no repeats
            cv = by_name[name]
            state = cv.dynamic_defaults
            if name in outfits:
                state = DynamicState(outfit=outfits[name], accessories=state.accessories)
            characters.append(CharacterInScene(character_id=cv.character_id, name=name, version=cv.version,
                                               state=state, speaks=name in speakers))
        a_ms = action_ms(words_in(action))
        total = SCENE_ESTABLISHING_MS + a_ms + sum(d.duration_ms + PAUSE_BETWEEN_LINES_MS for d in dialogue)
        heading = scene.heading or f"{place.upper()} - {tod}"
        rows.append(SceneRow(number=scene.number, slugline=heading, location=place, location_source=place_source,
                             time_of_day=tod, time_source=time_source, characters=tuple(characters),
                             dialogue=tuple(dialogue), action=action, action_ms=a_ms, estimated_duration_ms=total))
        prev_place, prev_time = place, tod
    return rows

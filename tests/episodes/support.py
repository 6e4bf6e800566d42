"""Sample series for the Episodes tests: two characters with references, one relationship."""

from __future__ import annotations

import hashlib

from pipelines.episodes.models import (
    Character, CharacterVersion, DynamicState, EpisodeInput, ReferenceImage, Relationship, Series, StaticTraits,
    StyleGuide, Voice,
)

IMAGES = {(who, view): f"png-bytes-{who}-{view}".encode() for who in ("mira", "leo")
          for view in ("front", "side", "back", "three_quarter")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def refs(who: str, views=("front", "side", "back", "three_quarter")) -> tuple[ReferenceImage, ...]:
    return tuple(ReferenceImage(view=v, sha256=sha(f"png-bytes-{who}-{v}".encode()), phash="0" * 16) for v in views)


def mira(**changes) -> Character:
    base = dict(name="Mira", static_traits=StaticTraits(age="34", eyes="dark brown", hair="short black",
                                                         marks="scar over the left eyebrow", face="round, freckled"),
                dynamic_defaults=DynamicState(outfit="yellow raincoat"), description="Lighthouse keeper.",
                voice=Voice(engine="piper", voice_id="en_US-amy", rate=1.0), references=refs("mira"))
    return Character(**(base | changes))


def leo(**changes) -> Character:
    base = dict(name="Leo", static_traits=StaticTraits(age="12", eyes="blue", hair="red curls"),
                dynamic_defaults=DynamicState(outfit="school uniform"), references=refs("leo", ("front", "side")))
    return Character(**(base | changes))


def pins(**extra: CharacterVersion) -> dict[str, CharacterVersion]:
    return {"c-mira": mira().pin("c-mira", 1), "c-leo": leo().pin("c-leo", 1)} | extra


SERIES = Series(title="Lighthouse", style=StyleGuide(visual_style="ink and watercolour", palette=("#112233",)),
                cast=("c-mira", "c-leo"))
SIBLINGS = Relationship(a_id="c-mira", b_id="c-leo", type="sibling", since_episode=1)
AVAILABLE = {sha(b) for b in IMAGES.values()}

STORY = """INT. LIGHTHOUSE - NIGHT

Mira climbed the stairs holding a brass lantern. "Leo, are you up there?" said Mira.

"Up here," Leo said. "The lamp went out."

Mira, wearing a wet oilskin, reached the top. Mira's brother Leo waited by the lamp.
"Then we fix it," Mira said. "Together," she said."""


def episode(story: str = STORY, number: int = 1, cast=None) -> EpisodeInput:
    return EpisodeInput(number=number, title="The Dark Lamp", story=story, cast=cast)


def image_bytes() -> dict[str, bytes]:
    return {sha(b): b for b in IMAGES.values()}

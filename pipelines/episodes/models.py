"""The Episodes data model: characters and their pinned versions, relationships, series style, episode input.

Plain pydantic models, frozen: a :class:`CharacterVersion` is what an episode pins, and nothing can
change it after the fact (a later edit makes a new version; the package keeps naming the old one).
Field names follow the API names of issue #10 (``static_traits``, ``dynamic_defaults``, ``a_id``, ...).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHA256_PATTERN = r"^[0-9a-f]{64}$"
# imagehash.phash's default 8x8 hash printed as hex: 16 hex digits.
PHASH_PATTERN = r"^[0-9a-f]{16}$"
# No quotes or colons (they delimit dialogue in a story), no control characters, no leading space.
NAME_PATTERN = r"^[^\s\"“”:\x00-\x1f][^\"“”:\x00-\x1f]{0,79}$"

View = Literal["front", "three_quarter", "side", "back", "expression_sheet"]
# The order in which references are chosen for a generation request (at most three are sent): the
# front view identifies a face best; an expression sheet helps a talking shot more than a back view.
VIEW_PRIORITY: tuple[str, ...] = ("front", "three_quarter", "side", "expression_sheet", "back")
MediaType = Literal["image/png", "image/jpeg", "image/webp"]
MEDIA_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same data always gives the same bytes (for hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class StaticTraits(_Frozen):
    """Traits that never change across an episode; prompts embed them verbatim."""

    face: str = Field("", max_length=300)
    age: str = Field("", max_length=100)
    build: str = Field("", max_length=200)
    skin: str = Field("", max_length=200)
    eyes: str = Field("", max_length=200)
    hair: str = Field("", max_length=200)
    marks: str = Field("", max_length=300)

    def as_prompt(self) -> str:
        """``eyes: brown; hair: short black`` — every non-empty trait, in a fixed order, text untouched."""
        parts = [f"{name}: {value}" for name, value in self.model_dump().items() if value]
        return "; ".join(parts)


class DynamicState(_Frozen):
    """What may change per scene (the defaults live on the character; a scene may override them)."""

    outfit: str = Field("", max_length=300)
    accessories: tuple[str, ...] = Field((), max_length=20)


class Voice(_Frozen):
    engine: str = Field("offline", min_length=1, max_length=50)
    voice_id: str = Field("default", min_length=1, max_length=100)
    rate: float = Field(1.0, ge=0.5, le=2.0, description="speaking-rate multiplier (1.0 = normal)")
    pitch: float = Field(0.0, ge=-12.0, le=12.0, description="pitch shift in semitones")


class ReferenceImage(_Frozen):
    view: View
    sha256: str = Field(pattern=SHA256_PATTERN)
    phash: str | None = Field(None, pattern=PHASH_PATTERN)
    media_type: MediaType = "image/png"
    width: int | None = Field(None, ge=1, le=4096)
    height: int | None = Field(None, ge=1, le=4096)

    @property
    def filename(self) -> str:
        """Where the package stores it (content-addressed, so two characters sharing an image share a file)."""
        return f"references/{self.sha256}.{MEDIA_EXTENSIONS[self.media_type]}"


class Character(_Frozen):
    """A character as defined (or edited): every edit is pinned as a new :class:`CharacterVersion`."""

    name: str = Field(pattern=NAME_PATTERN)
    static_traits: StaticTraits = StaticTraits()
    dynamic_defaults: DynamicState = DynamicState()
    description: str = Field("", max_length=2000)
    voice: Voice | None = None
    references: tuple[ReferenceImage, ...] = Field((), max_length=12)

    @model_validator(mode="after")
    def _one_image_per_view(self) -> Character:
        views = [ref.view for ref in self.references]
        if len(views) != len(set(views)):
            raise ValueError("references must hold at most one image per view")
        return self

    def pin(self, character_id: str, version: int) -> CharacterVersion:
        return CharacterVersion(character_id=character_id, version=version, **self.model_dump())

    def references_by_priority(self) -> list[ReferenceImage]:
        return sorted(self.references, key=lambda ref: VIEW_PRIORITY.index(ref.view))


class CharacterVersion(Character):
    """One immutable, numbered version of a character: what an episode pins."""

    character_id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical version: the package records it so a tampered copy is detectable."""
        return sha256_hex(canonical_json(self.model_dump(mode="json")))

    @property
    def first_name(self) -> str:
        return self.name.split()[0]


RelationshipType = Literal["sibling", "friend", "rival", "spouse", "colleague", "parent_of", "mentor_of"]
# Types that only make sense one way round; the others are symmetric unless declared ``directed``.
DIRECTED_TYPES = frozenset({"parent_of", "mentor_of"})


class Relationship(_Frozen):
    """``a_id`` → ``b_id``; symmetric pairs are stored canonically (``a_id < b_id``) so each pair has one row."""

    a_id: str = Field(min_length=1, max_length=64)
    b_id: str = Field(min_length=1, max_length=64)
    type: RelationshipType
    directed: bool = False
    description: str = Field("", max_length=500)
    since_episode: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("type") in DIRECTED_TYPES:
            data["directed"] = True
        a, b = data.get("a_id"), data.get("b_id")
        if not data.get("directed") and isinstance(a, str) and isinstance(b, str) and a > b:
            data["a_id"], data["b_id"] = b, a
        return data

    @model_validator(mode="after")
    def _distinct(self) -> Relationship:
        if self.a_id == self.b_id:
            raise ValueError("a relationship joins two different characters (a_id must differ from b_id)")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        """Unique per pair and type (the table's unique constraint)."""
        return (self.a_id, self.b_id, self.type)


class StyleGuide(_Frozen):
    visual_style: str = Field("storyboard sketch", min_length=1, max_length=500)
    aspect_ratio: str = Field("16:9", pattern=r"^[1-9][0-9]?:[1-9][0-9]?$")
    palette: tuple[str, ...] = Field((), max_length=16)
    default_voice: Voice = Voice()

    @model_validator(mode="after")
    def _palette_hex(self) -> StyleGuide:
        for colour in self.palette:
            if len(colour) != 7 or colour[0] != "#" or any(c not in "0123456789abcdefABCDEF" for c in colour[1:]):
                raise ValueError("palette colours are #rrggbb hex strings")
        return self

    def image_size(self, long_side: int = 1280) -> str:
        """``1280x720`` for 16:9: the size every generation request of the series asks for."""
        w, h = (int(part) for part in self.aspect_ratio.split(":"))
        if w >= h:
            return f"{long_side}x{round(long_side * h / w)}"
        return f"{round(long_side * w / h)}x{long_side}"


class Series(_Frozen):
    title: str = Field(min_length=1, max_length=200)
    style: StyleGuide = StyleGuide()
    cast: tuple[str, ...] = Field((), max_length=200)


class EpisodeInput(_Frozen):
    """What ``POST /v1/series/{id}/episodes`` accepts (the story's limits are checked by the script writer)."""

    number: int = Field(ge=1, le=100_000)
    title: str = Field(min_length=1, max_length=200)
    story: str
    cast: tuple[str, ...] | None = None


def pin_cast(cast: tuple[str, ...], current: dict[str, CharacterVersion]) -> dict[str, CharacterVersion]:
    """The episode's pins: the current version of each cast member, frozen from here on.

    A cast id with no current version is left out; continuity reports it (``character_not_pinned``).
    """
    return {cid: current[cid] for cid in cast if cid in current}

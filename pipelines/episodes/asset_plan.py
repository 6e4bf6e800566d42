"""The asset plan: per scene, what images are needed, and for each whether it is reused or generated.

An item is **reused** by content hash (a pinned reference still: the character in their default
outfit) or by generation key (an asset generated earlier by an identical request, in the library or
earlier in this very plan); otherwise it is **to generate** with a prompt, a deterministic seed, at
most ``MAX_REFERENCES`` reference hashes, a provider and a cost from :data:`PRICE_TABLE`.

The generation key is the SHA-256 of the canonical request (provider, model, prompt, seed, reference
hashes in the order sent, size): two identical requests share a key, so the second costs nothing.
Prompts embed the pinned static traits verbatim (:meth:`StaticTraits.as_prompt`), which is what keeps
a face from drifting between shots. Costs are integer micro-units of the table's currency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from pipelines.episodes.models import CharacterVersion, StyleGuide, _Frozen, canonical_json, sha256_hex
from pipelines.episodes.scenes import SceneRow
from pipelines.episodes.text import STOP_WORDS, base_word, tokens
from pipelines.errors import InvalidInput

# More references per request raise re-rolls (providers blend them); three views identify a character.
MAX_REFERENCES = 3

# Prices per provider, in millionths of the currency: a plain table the settings can later override.
# ``per_render_second`` prices the animatic (Kiln renders it locally: the cost is the worker time).
PRICE_TABLE: dict[str, dict[str, Any]] = {
    "offline-card": {"model": "card-v1", "currency": "EUR", "per_image_micros": 0, "per_render_second_micros": 0},
    "openai-images": {"model": "gpt-image-1", "currency": "EUR", "per_image_micros": 40_000,
                      "per_render_second_micros": 0},
    "kiln-animatic": {"model": "animatic-720p", "currency": "EUR", "per_image_micros": 0,
                      "per_render_second_micros": 200},
}
ANIMATIC_PROVIDER = "kiln-animatic"
PROP_VERBS = frozenset("holding holds held carrying carries carried clutching clutches clutched".split())
DETERMINERS = frozenset("a an the her his their its my our your some".split())

Kind = Literal["background", "character", "prop"]


class UnknownProvider(InvalidInput):
    code = "unknown_provider"
    title = "No price is known for this provider"


class KnownAsset(_Frozen):
    """An asset already stored for the workspace: uploaded (content hash) or generated (and its key)."""

    sha256: str
    generation_key: str | None = None
    kind: str = "image"


class AssetItem(_Frozen):
    key: str  # unique in the plan: "s3/background", "s3/character/c-mira"
    kind: Kind
    scene: int
    description: str
    action: Literal["reuse", "generate"]
    reuse_by: Literal["content_hash", "generation_key"] | None = None
    reused_from: str | None = None  # "library", "reference", or the key of an earlier item of this plan
    sha256: str | None = None  # known content hash (reused assets)
    generation_key: str | None = None
    character_id: str | None = None
    character_version: int | None = None
    view: str | None = None
    prompt: str | None = None
    seed: int | None = None
    references: tuple[str, ...] = Field((), max_length=MAX_REFERENCES)
    provider: str | None = None
    model: str | None = None
    size: str
    cost_micros: int = 0


class SceneAssets(_Frozen):
    number: int
    items: tuple[AssetItem, ...]


class AssetPlan(_Frozen):
    provider: str
    currency: str
    scenes: tuple[SceneAssets, ...]
    to_generate: int
    reused: int
    cost_micros_by_provider: dict[str, int]

    def items(self) -> list[AssetItem]:
        return [item for scene in self.scenes for item in scene.items]


def price(provider: str) -> dict[str, Any]:
    try:
        return PRICE_TABLE[provider]
    except KeyError:
        raise UnknownProvider(f"No price is known for the provider {provider!s}; known: "
                              + ", ".join(sorted(PRICE_TABLE)) + ".") from None


def derive_seed(*, provider: str, model: str, prompt: str, references: Iterable[str], size: str) -> int:
    """A seed fixed by the other key inputs: the same request always draws the same image."""
    digest = hashlib.sha256(canonical_json({"provider": provider, "model": model, "prompt": prompt,
                                            "references": list(references), "size": size}).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def generation_key(*, provider: str, model: str, prompt: str, seed: int, references: Iterable[str],
                   size: str) -> str:
    """SHA-256 of the canonical request; references stay in the order sent (front first matters)."""
    return sha256_hex(canonical_json({"provider": provider, "model": model, "prompt": prompt, "seed": seed,
                                      "references": list(references), "size": size}))


def choose_references(character: CharacterVersion) -> tuple[str, ...]:
    """At most three pinned reference hashes, most useful view first (front, three-quarter, side, ...)."""
    chosen: list[str] = []
    for ref in character.references_by_priority():
        if ref.sha256 not in chosen:
            chosen.append(ref.sha256)
        if len(chosen) == MAX_REFERENCES:
            break
    return tuple(chosen)


def character_prompt(character: CharacterVersion, style: StyleGuide, outfit: str, accessories: tuple[str, ...],
                     view: str = "front") -> str:
    parts = [f"{style.visual_style}.", f"Character still of {character.name}, {view} view.",
             f"Static traits (pinned version {character.version}, never change): "
             f"{character.static_traits.as_prompt() or 'none given'}."]
    if outfit:
        parts.append(f"Outfit: {outfit}.")
    if accessories:
        parts.append(f"Accessories: {', '.join(accessories)}.")
    if character.description:
        parts.append(f"Appearance: {character.description}")
    return " ".join(parts)


def background_prompt(row: SceneRow, style: StyleGuide) -> str:
    palette = f" Palette: {', '.join(style.palette)}." if style.palette else ""
    return f"{style.visual_style}. Background plate, no people: {row.location}, {row.time_of_day.lower()}.{palette}"


def prop_prompt(prop: str, style: StyleGuide) -> str:
    return f"{style.visual_style}. Prop on a plain background: {prop}."


def find_props(action: str) -> list[str]:
    """``holding a brass lantern`` → ``brass lantern``: up to two words after a holding verb and determiner."""
    toks = [w for w, _ in tokens(action)]
    props: list[str] = []
    for i, word in enumerate(toks):
        if word.lower() not in PROP_VERBS:
            continue
        j = i + 1
        if j < len(toks) and toks[j].lower() in DETERMINERS:
            j += 1
        words = []
        for w in toks[j : j + 2]:
            if w.lower() in STOP_WORDS or w.lower() in PROP_VERBS or w[:1].isupper():
                break
            words.append(base_word(w))
        if words:
            props.append(" ".join(words))
    return list(dict.fromkeys(props))


class _Planner:
    def __init__(self, provider: str, style: StyleGuide, library: Iterable[KnownAsset]) -> None:
        self.provider, self.style = provider, style
        self.table = price(provider)
        self.size = style.image_size()
        self.by_key = {a.generation_key: a for a in library if a.generation_key}
        self.seen: dict[str, str] = {}  # generation key -> item key of its first request in this plan

    def request(self, *, key: str, kind: Kind, scene: int, description: str, prompt: str,
                references: tuple[str, ...] = (), **extra: Any) -> AssetItem:
        model = self.table["model"]
        seed = derive_seed(provider=self.provider, model=model, prompt=prompt, references=references, size=self.size)
        gkey = generation_key(provider=self.provider, model=model, prompt=prompt, seed=seed, references=references,
                              size=self.size)
        common = dict(key=key, kind=kind, scene=scene, description=description, generation_key=gkey, prompt=prompt,
                      seed=seed, references=references, provider=self.provider, model=model, size=self.size, **extra)
        if gkey in self.by_key:
            return AssetItem(action="reuse", reuse_by="generation_key", reused_from="library",
                             sha256=self.by_key[gkey].sha256, **common)
        if gkey in self.seen:
            return AssetItem(action="reuse", reuse_by="generation_key", reused_from=self.seen[gkey], **common)
        self.seen[gkey] = key
        return AssetItem(action="generate", cost_micros=self.table["per_image_micros"], **common)


def build_asset_plan(rows: list[SceneRow], pinned: Mapping[str, CharacterVersion], style: StyleGuide, *,
                     provider: str = "offline-card", library: Iterable[KnownAsset] = ()) -> AssetPlan:
    planner = _Planner(provider, style, library)
    scenes = []
    for row in rows:
        items = [planner.request(key=f"s{row.number}/background", kind="background", scene=row.number,
                                 description=f"{row.location}, {row.time_of_day.lower()}",
                                 prompt=background_prompt(row, style))]
        for present in row.characters:
            cv = pinned[present.character_id]
            front = next((r for r in cv.references_by_priority() if r.view == "front"), None)
            key = f"s{row.number}/character/{cv.character_id}"
            described = f"{cv.name} ({present.state.outfit or 'default outfit'})"
            if present.state == cv.dynamic_defaults and front is not None:
                items.append(AssetItem(key=key, kind="character", scene=row.number, description=described,
                                       action="reuse", reuse_by="content_hash", reused_from="reference",
                                       sha256=front.sha256, character_id=cv.character_id,
                                       character_version=cv.version, view="front", size=planner.size))
                continue
            items.append(planner.request(
                key=key, kind="character", scene=row.number, description=described,
                prompt=character_prompt(cv, style, present.state.outfit, present.state.accessories),
                references=choose_references(cv), character_id=cv.character_id, character_version=cv.version,
                view="front"))
        for prop in find_props(row.action):
            items.append(planner.request(key=f"s{row.number}/prop/{prop}", kind="prop", scene=row.number,
                                         description=prop, prompt=prop_prompt(prop, style)))
        scenes.append(SceneAssets(number=row.number, items=tuple(items)))
    all_items = [i for s in scenes for i in s.items]
    costs: dict[str, int] = {}
    for item in all_items:
        if item.action == "generate" and item.provider:
            costs[item.provider] = costs.get(item.provider, 0) + item.cost_micros
    return AssetPlan(provider=provider, currency=planner.table["currency"], scenes=tuple(scenes),
                     to_generate=sum(i.action == "generate" for i in all_items),
                     reused=sum(i.action == "reuse" for i in all_items), cost_micros_by_provider=costs)

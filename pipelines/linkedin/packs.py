"""Prompt/config packs: their JSON Schema (draft 2020-12), validation, and the offline draft generator.

A pack is a JSON document the GenAI team authors in git and Kiln stores as immutable versions. It
says how a draft is generated (prompts, model settings) and what a draft must respect (length,
hashtags, banned phrases). Validation answers the JSON path of the first error (``$.style.max_characters``)
with a plain message, so a bad pack is a 422 the author can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from pipelines.linkedin.commentary import MAX_COMMENTARY_CHARS, canonical_json, utf16_length, validate_commentary
from pipelines.schema_errors import describe

PACK_SCHEMA_VERSION = 1
MAX_PACK_BYTES = 256 * 1024

PACK_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kiln.invalid/schemas/linkedin-pack-1.json",
    "title": "Kiln LinkedIn prompt/config pack",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "name", "system_prompt", "user_prompt_template", "style"],
    "properties": {
        "schema_version": {"const": PACK_SCHEMA_VERSION},
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
        "description": {"type": "string", "maxLength": 2000},
        "model": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_output_tokens": {"type": "integer", "minimum": 16, "maximum": 8192},
            },
        },
        "system_prompt": {"type": "string", "minLength": 1, "maxLength": 20000},
        # The template must use {topic}; {persona} and {audience} are optional placeholders.
        "user_prompt_template": {"type": "string", "minLength": 1, "maxLength": 20000, "pattern": r"\{topic\}"},
        "style": {
            "type": "object",
            "additionalProperties": False,
            "required": ["max_characters"],
            "properties": {
                "max_characters": {"type": "integer", "minimum": 100, "maximum": MAX_COMMENTARY_CHARS},
                "hashtags": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "min": {"type": "integer", "minimum": 0, "maximum": 10},
                        "max": {"type": "integer", "minimum": 0, "maximum": 10},
                    },
                },
                "emoji": {"type": "boolean"},
                "call_to_action": {"type": "string", "maxLength": 300},
            },
        },
        "banned_phrases": {
            "type": "array",
            "uniqueItems": True,
            "maxItems": 500,
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
}

_VALIDATOR = Draft202012Validator(PACK_SCHEMA)


@dataclass(frozen=True)
class PackError:
    """The first problem in a pack: where (a JSON path such as ``$.style.max_characters``) and what."""

    json_path: str
    message: str
    keyword: str


class PackInvalid(ValueError):
    code = "pack_invalid"

    def __init__(self, error: PackError) -> None:
        super().__init__(f"{error.json_path}: {error.message}")
        self.error = error


def _describe(error: ValidationError) -> list[PackError]:
    """The platform's wording (pipelines/schema_errors.py), never jsonschema's reprs of the values."""
    return [PackError(p.json_path, p.message, p.keyword) for p in describe(error)]


def pack_errors(pack: Any) -> list[PackError]:
    """Every problem, in a deterministic order (by JSON path, then keyword): the first is the one to report."""
    described = {e: None for error in _VALIDATOR.iter_errors(pack) for e in _describe(error)}
    found = sorted(described, key=lambda e: (e.json_path, e.keyword))
    if not found and isinstance(pack, dict):
        hashtags = pack["style"].get("hashtags", {})
        if hashtags.get("min", 0) > hashtags.get("max", 10):
            found.append(PackError("$.style.hashtags.min", "must not exceed $.style.hashtags.max", "min"))
    return found


def validate_pack(pack: Any) -> dict[str, Any]:
    """The pack itself when valid; PackInvalid (first error, with its JSON path) otherwise."""
    errors = pack_errors(pack)
    if errors:
        raise PackInvalid(errors[0])
    return pack


def load_pack(raw: bytes | str) -> dict[str, Any]:
    """Parse and validate pack content (bytes from a file or a request body)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_PACK_BYTES:
        raise PackInvalid(PackError("$", f"is larger than {MAX_PACK_BYTES} bytes", "maxBytes"))
    try:
        pack = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PackInvalid(PackError("$", f"is not valid UTF-8 JSON{where}", "json")) from None
    return validate_pack(pack)


def pack_sha256(pack: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(pack)).hexdigest()


@dataclass(frozen=True)
class Persona:
    name: str
    tone: str = "clear and friendly"
    audience: str = "professionals"
    topics: tuple[str, ...] = ()
    do: tuple[str, ...] = ()
    dont: tuple[str, ...] = ()
    sample_posts: tuple[str, ...] = ()


@dataclass(frozen=True)
class GeneratedDraft:
    text: str
    generator: str
    offline: bool
    pack_sha256: str
    notes: tuple[str, ...] = field(default_factory=tuple)


OFFLINE_MARKER = "[Offline draft: written by Kiln's deterministic generator, not a language model.]"
_OPENERS = (
    "A few thoughts on {topic}.",
    "What I keep learning about {topic}:",
    "{topic}: three things worth saying out loud.",
    "Here is how I think about {topic} today.",
)
_POINTS = (
    "Start small and measure what changes.",
    "Write down the decision and the reason for it.",
    "Ask the people closest to the work first.",
    "Make the next step obvious.",
    "Keep what works; drop what does not.",
    "Share the result, including what went wrong.",
)


def _hashtag_word(text: str) -> str:
    word = "".join(ch for ch in text.title() if ch.isalnum())
    return word if any(ch.isalpha() for ch in word) else ""


def generate_offline_draft(persona: Persona, topic: str, pack: dict[str, Any]) -> GeneratedDraft:
    """A deterministic draft from persona + topic + pack (same inputs, same text). Says it is offline.

    Used when no LLM is configured, and in tests. The result respects the pack's length and hashtag
    bounds and passes ``validate_commentary``; literal reserved characters in the topic stay literal.
    """
    validate_pack(pack)
    digest_source = canonical_json({"persona": persona.__dict__, "topic": topic, "pack": pack_sha256(pack)})
    seed = int.from_bytes(hashlib.sha256(digest_source).digest()[:8], "big")
    style = pack["style"]
    clean_topic = " ".join(topic.split())[:200] or "our work"
    opener = _OPENERS[seed % len(_OPENERS)].format(topic=clean_topic)
    points = [_POINTS[(seed >> (8 * i)) % len(_POINTS)] for i in range(3)]
    points = list(dict.fromkeys(points))
    lines = [OFFLINE_MARKER, "", opener, ""]
    lines += [f"{n}) {p}" for n, p in enumerate(points, 1)]
    lines += ["", f"Written for {persona.audience}, in a {persona.tone} voice."]
    if style.get("call_to_action"):
        lines += ["", style["call_to_action"]]
    bounds = style.get("hashtags", {})
    candidates = [w for w in (_hashtag_word(t) for t in (clean_topic, *persona.topics)) if w]
    tags = list(dict.fromkeys(candidates))[: bounds.get("max", 3)]
    while len(tags) < bounds.get("min", 0):
        tags.append(f"Kiln{len(tags) + 1}")
    if tags:
        lines += ["", " ".join("#" + t[:60] for t in tags)]
    text = "\n".join(lines)
    for phrase in pack.get("banned_phrases", []):
        text = re.sub(re.escape(phrase), "", text, flags=re.IGNORECASE)
    limit = style["max_characters"]
    notes: list[str] = ["offline generator"]
    if utf16_length(text) > limit:
        while utf16_length(text) > limit - 1:
            text = text[:-1]
        text = text.rstrip() + "…"
        notes.append("truncated to the pack's max_characters")
    if validate_commentary(text, max_chars=limit):
        raise AssertionError("offline generator produced an invalid draft")  # a bug here, never input
    return GeneratedDraft(text, "offline", True, pack_sha256(pack), tuple(notes))

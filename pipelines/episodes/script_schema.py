"""The JSON Schema a model's script must match, and the validator for what a model answers.

``LLM_SCRIPT_SCHEMA`` is written to be usable as an OpenAI-compatible structured output
(``response_format={"type": "json_schema", "json_schema": {"name": "episode_script", "strict": true,
"schema": LLM_SCRIPT_SCHEMA}}``): every object closes ``additionalProperties`` and lists every
property as required, a missing speaker is ``null``. The validator re-checks everything (a
provider may ignore ``strict``), enforces the same limits as the offline writer, and answers a
:class:`~pipelines.episodes.errors.ScriptInvalid` naming the JSON path of the first problem.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from pipelines.episodes.errors import ScriptInvalid, describe_schema_error
from pipelines.episodes.script import MAX_SCENES, MAX_STORY_CHARS, Script, ScriptLine, ScriptScene
from pipelines.episodes.text import NameIndex

# A model's answer larger than this is refused before parsing (the story itself is at most 100k characters).
MAX_LLM_SCRIPT_BYTES = 2 * 1024 * 1024

LLM_SCRIPT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kiln.invalid/schemas/episodes-script-1.json",
    "title": "Kiln episode script (model output)",
    "type": "object",
    "additionalProperties": False,
    "required": ["scenes"],
    "properties": {
        "scenes": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_SCENES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["heading", "lines"],
                "properties": {
                    "heading": {"type": ["string", "null"], "maxLength": 300},
                    "lines": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 2000,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "speaker", "text"],
                            "properties": {
                                "kind": {"enum": ["dialogue", "narration"]},
                                "speaker": {"type": ["string", "null"], "maxLength": 200},
                                "text": {"type": "string", "minLength": 1, "maxLength": MAX_STORY_CHARS},
                            },
                        },
                    },
                },
            },
        },
    },
}

_VALIDATOR = Draft202012Validator(LLM_SCRIPT_SCHEMA)


def llm_response_format(name: str = "episode_script") -> dict[str, Any]:
    """The ``response_format`` argument for an OpenAI-compatible chat completion with structured output."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": LLM_SCRIPT_SCHEMA}}


def validate_llm_script(raw: str | bytes | dict[str, Any], *, title: str, episode_number: int, model: str,
                        cast_names: list[str]) -> Script:
    """A :class:`Script` from a model's answer, or :class:`ScriptInvalid` with the first problem's JSON path.

    Speakers are normalised to the cast's canonical names (``Mira`` → ``Mira Okafor``); a speaker the
    cast does not know is kept as written so continuity reports it. A dialogue line without a speaker
    is kept ``unattributed`` (continuity flags it), never guessed.
    """
    if isinstance(raw, (str, bytes)):
        size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
        if size > MAX_LLM_SCRIPT_BYTES:
            raise ScriptInvalid(f"The model's script is {size:,} bytes; the limit is {MAX_LLM_SCRIPT_BYTES:,}.")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ScriptInvalid("The model's script is not valid JSON.") from None
    else:
        data = raw
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: (e.json_path, str(e.validator)))
    if errors:
        raise ScriptInvalid(describe_schema_error(errors[0]), json_path=errors[0].json_path)
    names = NameIndex(cast_names)
    scenes = []
    for number, scene in enumerate(data["scenes"], start=1):
        lines = []
        for line in scene["lines"]:
            if line["kind"] == "narration":
                lines.append(ScriptLine(kind="narration", text=line["text"]))
                continue
            speaker = names.resolve(line["speaker"]) if line["speaker"] else None
            lines.append(ScriptLine(kind="dialogue", text=line["text"], speaker=speaker,
                                    attribution="explicit" if speaker else "unattributed"))
        scenes.append(ScriptScene(number=number, heading=scene["heading"], lines=tuple(lines)))
    return Script(title=title, episode_number=episode_number, generator=model, offline=False, scenes=tuple(scenes))


def script_to_llm_shape(script: Script) -> dict[str, Any]:
    """A script in the model's output shape (used to test the schema against the offline writer's output)."""
    return {"scenes": [{"heading": s.heading, "lines": [{"kind": ln.kind, "speaker": ln.speaker, "text": ln.text}
                                                       for ln in s.lines]} for s in script.scenes]}

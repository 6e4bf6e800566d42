"""Typed errors of the Episodes product: a stable ``code`` each, messages a user can act on, no Python reprs."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import ValidationError

from pipelines.errors import InvalidInput, PayloadTooLarge, PermanentError


class StoryEmpty(InvalidInput):
    code = "story_empty"
    title = "The story is empty"


class StoryTooLong(PayloadTooLarge):
    code = "story_too_long"
    title = "The story is too long"


class TooManyScenes(InvalidInput):
    code = "too_many_scenes"
    title = "The story has too many scenes"


class ScriptInvalid(InvalidInput):
    """A script (from the LLM, or a stored one) does not match the script JSON Schema."""

    code = "script_invalid"
    title = "The script does not match its schema"


class CharacterInvalid(InvalidInput):
    code = "character_invalid"
    title = "The character definition is not valid"


class ReferenceImageMismatch(InvalidInput):
    """Bytes given for a reference image do not hash to the SHA-256 the pinned version names."""

    code = "reference_image_mismatch"
    title = "A reference image does not match its hash"


class PackageInvalid(PermanentError):
    """The package we built does not validate against the published schema: a bug, never retried."""

    code = "package_invalid"
    title = "The episode package does not match its schema"
    http_status = 500


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def describe_schema_error(error: ValidationError) -> str:
    """``$.scenes[0].lines[1].speaker: must be of type string`` — written here, never jsonschema's repr of values."""
    path, kw, value, instance = error.json_path, str(error.validator), error.validator_value, error.instance
    if kw == "required" and isinstance(instance, dict):
        missing = [name for name in value if name not in instance]
        return f"{_child(path, missing[0]) if missing else path}: is required"
    if kw == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        extras = sorted(str(name) for name in instance if name not in known)
        return f"{_child(path, extras[0]) if extras else path}: is not a known property"
    messages: dict[str, Any] = {
        "type": lambda: f"must be of type {value if isinstance(value, str) else ' or '.join(value)}",
        "const": lambda: f"must be {json.dumps(value)}",
        "enum": lambda: "must be one of " + ", ".join(json.dumps(v) for v in value),
        "minimum": lambda: f"must be at least {value}",
        "maximum": lambda: f"must be at most {value}",
        "minLength": lambda: f"must have at least {value} characters",
        "maxLength": lambda: f"must have at most {value} characters",
        "pattern": lambda: f"must match the pattern {value}",
        "minItems": lambda: f"must have at least {value} items",
        "maxItems": lambda: f"must have at most {value} items",
        "anyOf": lambda: "does not match any allowed shape",
    }
    return f"{path}: {messages.get(kw, lambda: f'does not satisfy {kw}')()}"

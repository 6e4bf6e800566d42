"""JSON Schema validation errors as messages a user can act on, shared by every product that validates JSON.

jsonschema's own messages print Python reprs of the offending values (``'x' is not of type 'integer'``,
``{...} is not valid under any of the given schemas``), which may echo large or private input; these name the
JSON path and the rule instead: ``$.scenes[0].lines[1].speaker: must be of type string``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from jsonschema import ValidationError


@dataclass(frozen=True)
class SchemaProblem:
    json_path: str
    message: str
    keyword: str

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def describe(error: ValidationError) -> list[SchemaProblem]:
    """One problem per missing or unknown property, else one for the failed rule."""
    path, kw, value, instance = error.json_path, str(error.validator), error.validator_value, error.instance
    if kw == "required" and isinstance(instance, dict):
        missing = [name for name in value if name not in instance]
        return [SchemaProblem(child_path(path, name), "is required", kw) for name in missing] or [
            SchemaProblem(path, "is required", kw)]
    if kw == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        extras = sorted(str(name) for name in instance if name not in known)
        return [SchemaProblem(child_path(path, name), "is not a known property", kw) for name in extras] or [
            SchemaProblem(path, "is not a known property", kw)]
    messages: dict[str, Callable[[], str]] = {
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
        "uniqueItems": lambda: "must not repeat items",
        "anyOf": lambda: "does not match any allowed shape",
    }
    return [SchemaProblem(path, messages.get(kw, lambda: f"does not satisfy {kw}")(), kw)]

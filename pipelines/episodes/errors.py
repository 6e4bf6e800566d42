"""Typed errors of the Episodes product: a stable ``code`` each, messages a user can act on, no Python reprs."""

from __future__ import annotations


from jsonschema import ValidationError

from pipelines.errors import InvalidInput, PayloadTooLarge, PermanentError
from pipelines.schema_errors import describe


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


def describe_schema_error(error: ValidationError) -> str:
    """``$.scenes[0].lines[1].speaker: must be of type string``: the platform's wording, never a repr of values."""
    return str(describe(error)[0])


class ImageUnsupported(InvalidInput):
    """Not PNG, JPEG or WebP (an SVG, a GIF, ...): vector images can carry scripts and external references."""

    code = "unsupported_image_type"
    title = "This image type is not accepted"
    http_status = 415


class ImageInvalid(InvalidInput):
    code = "image_invalid"
    title = "The file is not a readable image"


class ImageTooLarge(PayloadTooLarge):
    code = "image_too_large"
    title = "The image is too large"


class UnknownCharacter(InvalidInput):
    code = "unknown_character"
    title = "A character is not defined in this workspace"

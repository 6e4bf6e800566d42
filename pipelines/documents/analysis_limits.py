"""Bounds on template analysis, so that any upload is analysed in bounded time and memory.

A template is code its uploader wrote; analysing it (docxtpl's patching, Jinja's parser and code
generator) costs time linear in its tags, and Jinja's parser recurses once per nesting level, so:

- the template parts' XML is at most ``max_chars`` bytes (refused before any parsing);
- at most ``max_tags`` tags per template, and at most ``max_tag_chars`` characters inside tags (a
  single 1 MB expression is as costly as thousands of tags); both counted before Jinja parses;
- blocks (``{% if %}``, ``{% for %}``, docxtemplater sections) nest at most ``max_nesting`` deep,
  brackets in an expression at most ``MAX_BRACKET_DEPTH``; anything else that recurses too deep (``a+a+a...``, long filter chains) is
  caught as a ``RecursionError`` and reported the same way;
- at most ``max_fields`` fields (and as many children per loop); a name longer than ``max_name``
  characters is an error, never silently truncated (two truncated names could collide);
- ``seconds`` of analysis per template, checked between parts;
- at most ``MAX_ERRORS`` located errors are kept, each message at most ``MAX_MESSAGE`` characters.

Going over a bound never raises: the version is stored ``invalid`` with a located error, and the
listing of fields stays bounded.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

MAX_ERRORS = 100
MAX_BRACKET_DEPTH = 50  # Jinja's parser recurses ~15 frames per bracket: 80 reach Python's limit
MAX_MESSAGE = 500

_JINJA_BLOCK = re.compile(r"\{%[-+]?\s*(?:(?:tr|tc|p|r)\s+)?(\w+)([^%]*)")
_OPENERS = frozenset(("if", "for", "macro", "call", "filter", "with", "block", "raw", "autoescape", "trans"))
_OPEN_BRACKETS, _CLOSE_BRACKETS = "([{", ")]}"


@dataclass(frozen=True)
class AnalysisLimits:
    max_fields: int = 1_000
    max_nesting: int = 100
    max_name: int = 255  # template_field.name is VARCHAR(255)
    max_chars: int = 5_000_000  # XML bytes of the text parts (document, headers, footers, notes)
    max_tags: int = 5_000
    max_tag_chars: int = 50_000  # Jinja's parse + analysis: ~30-80 us per node, a node per 2-4 characters
    seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> AnalysisLimits:
        """From ``resources.settings.Settings`` (``KILN_DOCUMENTS_MAX_FIELDS`` and friends)."""
        return cls(max_fields=settings.documents_max_fields, max_nesting=settings.documents_max_nesting,
                   max_name=settings.documents_max_field_name, max_chars=settings.documents_max_analysis_bytes,
                   max_tags=5 * settings.documents_max_fields,
                   max_tag_chars=50 * settings.documents_max_fields, seconds=settings.documents_analysis_seconds)


def block_depth(source: str) -> int:
    """How deep Jinja blocks nest (``{% if %}`` inside ``{% for %}``...), read from the tags alone."""
    depth = deepest = 0
    for m in _JINJA_BLOCK.finditer(source):
        word = m.group(1)
        if word in _OPENERS or (word == "set" and "=" not in m.group(2)):
            depth += 1
            deepest = max(deepest, depth)
        elif word.startswith("end"):
            depth = max(depth - 1, 0)
    return deepest


def bracket_depth(tags: list[str]) -> int:
    """How deep brackets nest inside the tags' expressions (quoted text ignored)."""
    deepest = 0
    for tag in tags:
        inner = tag[2:-2] if len(tag) >= 4 else tag
        depth, quote = 0, ""
        for ch in inner:
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch in _OPEN_BRACKETS:
                depth += 1
                deepest = max(deepest, depth)
            elif ch in _CLOSE_BRACKETS:
                depth -= 1
    return deepest


DEEP_MESSAGE = "An expression or block nests too deeply to be analysed; simplify the template."


class Budget:
    """One template's analysis budget: tags and tag characters across all parts, and time."""

    def __init__(self, limits: AnalysisLimits) -> None:
        self.limits = limits
        self.tags = 0
        self.chars = 0
        self.exhausted = False  # over the tag bounds: the remaining parts are not analysed
        self.deadline = time.monotonic() + limits.seconds

    def spend(self, tags: list[str], source: str | None = None) -> str | None:
        """Count these tags; why analysing them would go over a bound, or None."""
        self.tags += len(tags)
        self.chars += sum(len(t) for t in tags)
        if self.tags > self.limits.max_tags or self.chars > self.limits.max_tag_chars:
            self.exhausted = True
        if self.tags > self.limits.max_tags:
            return f"The template has more than {self.limits.max_tags:,} tags; it is too large to analyse."
        if self.chars > self.limits.max_tag_chars:
            return (f"The template's tags hold more than {self.limits.max_tag_chars:,} characters; "
                    "it is too large to analyse.")
        blocks = block_depth(source) if source is not None else 0
        if blocks > self.limits.max_nesting:
            return f"Blocks nest {blocks} levels deep; at most {self.limits.max_nesting} are allowed."
        brackets = bracket_depth(tags)
        if brackets > min(self.limits.max_nesting, MAX_BRACKET_DEPTH):
            return (f"Brackets nest {brackets} levels deep in an expression; "
                    f"at most {min(self.limits.max_nesting, MAX_BRACKET_DEPTH)} are allowed.")
        return None

    def expired(self) -> str | None:
        if time.monotonic() > self.deadline:
            return f"Analysing the template took longer than {self.limits.seconds:g} s; simplify it."
        return None


def bound_fields(fields: list, limits: AnalysisLimits) -> tuple[list, list[tuple[str, str]]]:
    """``(kept fields, [(part, message)])``: over-long names dropped (never truncated: two truncated
    names could collide), children and fields capped at ``max_fields``."""
    kept, problems = [], []
    for f in fields:
        part = f.parts[0] if f.parts else ""
        if len(f.name) > limits.max_name:
            problems.append((part, f"Field name '{f.name[:60]}...' is {len(f.name):,} characters long; "
                                   f"at most {limits.max_name} are allowed."))
            continue
        long_children = [c for c in f.children if len(c) > limits.max_name]
        if long_children:
            problems.append((part, f"Loop '{f.name}' reads a key of {len(long_children[0]):,} characters "
                                   f"('{long_children[0][:60]}...'); at most {limits.max_name} are allowed."))
            f.children = [c for c in f.children if len(c) <= limits.max_name]
        if len(f.children) > limits.max_fields:
            problems.append((part, f"Loop '{f.name}' reads {len(f.children):,} keys; at most {limits.max_fields:,}."))
            f.children = f.children[:limits.max_fields]
        kept.append(f)
    if len(kept) > limits.max_fields:
        first_over = kept[limits.max_fields]
        problems.append((first_over.parts[0] if first_over.parts else "",
                         f"The template has {len(kept):,} fields; at most {limits.max_fields:,} are allowed "
                         f"(the first {limits.max_fields:,} are listed)."))
        kept = kept[:limits.max_fields]
    return kept, problems


def bound_message(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."

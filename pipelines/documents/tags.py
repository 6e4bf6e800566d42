"""Finding template tags in text an uploader wrote, in linear time (no pattern here may backtrack)."""

from __future__ import annotations

import re

# Tag patterns run on text the uploader wrote, so none may backtrack: possessive quantifiers, and a
# name is runs of non-space characters joined by single whitespace runs (a lazy name between two
# ``\s*`` made "${" + 20,000 spaces take minutes). Jinja tags are found by ``jinja_tags`` (linear).
DOLLAR_TAG = re.compile(r"\$\{\s*+((?:[^{}$\s]|\s++(?=[^{}$\s]))++)\s*+\}")
DOLLAR_OPEN = re.compile(r"\$\{\s*[^\W\d]")  # an unclosed ${name still marks a ${} template
# docxtemplater: {name}, {#section}, {/section}, {^inverted}, {%image}, {@raw}
BRACE_TAG = re.compile(r"\{([#/^%@]?)\s*+((?:[^{}\s]|\s++(?=[^{}\s]))*+)\s*+\}")
MERGEFIELD_INSTR = re.compile(r'^\s*MERGEFIELD\s+(?:"([^"]+)"|(\S+))', re.IGNORECASE)

_JINJA_OPEN = re.compile(r"\{[{%#]")
_JINJA_CLOSE = {"{{": "}}", "{%": "%}", "{#": "#}"}


def jinja_tags(text: str, *, expressions_only: bool = False, limit: int | None = None) -> list[str]:
    """The ``{{ }}``, ``{% %}`` (and unless ``expressions_only``, ``{# #}``) tags of ``text``, each ending
    at its first closer, in linear time: an opener whose closer never comes marks that kind done (a
    lazy ``.*?`` regex rescanned the rest of the text for each of them: quadratic)."""
    found: list[str] = []
    dead: set[str] = set()
    pos = 0
    while limit is None or len(found) < limit:
        m = _JINJA_OPEN.search(text, pos)
        if m is None:
            break
        opener = m.group()
        end = -1 if opener in dead else text.find(_JINJA_CLOSE[opener], m.end())
        if end < 0:
            dead.add(opener)
            pos = m.start() + 1
            if len(dead) == 3:
                break
            continue
        if not (expressions_only and opener == "{#"):
            found.append(text[m.start():end + 2])
        pos = end + 2
    return found

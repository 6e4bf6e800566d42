"""The emulator's own little-text parser (written independently of pipelines.linkedin.commentary on purpose:
the emulator is the test double that judges Kiln's escaping, so it must not share Kiln's code).

LinkedIn's behaviour reproduced: a backslash escapes the next reserved character; ``@[Name](urn:li:…)``
is a mention, ``{hashtag|\\#|word}`` a hashtag; any other unescaped reserved character ends the
commentary there: the post is accepted and silently cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RESERVED = frozenset("\\|{}@[]()<>#*_~")
_URN_RE = re.compile(r"urn:li:(?:person|organization):[A-Za-z0-9_-]+")
_HASHTAG_PREFIX = "{hashtag|\\#|"


@dataclass
class Parsed:
    text: str  # what the feed shows
    stored: str  # the commentary LinkedIn keeps (cut at the first unescaped reserved character)
    truncated: bool
    mentions: list[tuple[str, str]] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)


def _mention(src: str, i: int) -> tuple[int, str, str] | None:
    """At src[i] == '@': (end, name, urn) for a valid mention, else None."""
    if not src.startswith("@[", i):
        return None
    j, name = i + 2, []
    while j < len(src) and src[j] != "]":
        ch = src[j]
        if ch == "\\" and j + 1 < len(src) and src[j + 1] in RESERVED:
            name.append(src[j + 1])
            j += 2
            continue
        if ch in RESERVED or ch == "\n":
            return None
        name.append(ch)
        j += 1
    if j >= len(src) or not name or not src.startswith("](", j):
        return None
    close = src.find(")", j + 2)
    if close < 0:
        return None
    urn = src[j + 2 : close]
    if not _URN_RE.fullmatch(urn):
        return None
    return close + 1, "".join(name), urn


def _hashtag(src: str, i: int) -> tuple[int, str] | None:
    if not src.startswith(_HASHTAG_PREFIX, i):
        return None
    start = i + len(_HASHTAG_PREFIX)
    close = src.find("}", start)
    if close < 0:
        return None
    word = src[start:close]
    if not word or not all(ch.isalnum() or ch == "_" for ch in word):
        return None
    return close + 1, word


def parse(src: str) -> Parsed:
    out: list[str] = []
    mentions: list[tuple[str, str]] = []
    hashtags: list[str] = []
    i = 0
    while i < len(src):
        ch = src[i]
        if ch not in RESERVED:
            out.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < len(src) and src[i + 1] in RESERVED:
            out.append(src[i + 1])
            i += 2
            continue
        if ch == "@" and (found := _mention(src, i)):
            i, name, urn = found
            out.append(name)
            mentions.append((name, urn))
            continue
        if ch == "{" and (tag := _hashtag(src, i)):
            i, word = tag
            out.append("#" + word)
            hashtags.append(word)
            continue
        return Parsed("".join(out), src[:i], True, mentions, hashtags)
    return Parsed("".join(out), src, False, mentions, hashtags)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2

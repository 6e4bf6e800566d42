"""Small text helpers shared by the Episodes modules: names, tokens, sentences, Markdown escaping.

Everything here is linear in the input: one pass of simple regexes with no nested quantifiers,
so a hostile story (100k quotes, a 100k-character word) costs the same as a novel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Words (letters, apostrophes, hyphens) or numbers; the token scan is one finditer pass.
TOKEN_RE = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?|\d+")
SENTENCE_END_RE = re.compile(r"[.!?]+")
# Capitalised words that start sentences but are not names ("Then Mira said").
STOP_WORDS = frozenset(
    "the then and but so when as now finally suddenly later still yet a an after before meanwhile "
    "outside inside there here this that at in on".split()
)
PRONOUNS = frozenset("he she they i we you it".split())
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]#|"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md(text: str) -> str:
    """User text made inert in Markdown (no links, emphasis or raw HTML)."""
    return text.translate(_MD_SPECIAL)


def tokens(text: str) -> list[tuple[str, int]]:
    """``[(word, start offset)]``; possessive ``'s`` stays on the word (``Mira's``)."""
    return [(m.group(), m.start()) for m in TOKEN_RE.finditer(text)]


def base_word(word: str) -> str:
    """``Mira's`` → ``mira``: lower-cased, possessive removed."""
    lowered = word.lower()
    for suffix in ("'s", "’s"):
        if lowered.endswith(suffix):
            return lowered[: -len(suffix)]
    return lowered


def sentences(text: str) -> Iterator[str]:
    start = 0
    for m in SENTENCE_END_RE.finditer(text):
        yield text[start : m.end()]
        start = m.end()
    if start < len(text):
        yield text[start:]


class NameIndex:
    """Resolves names in text to canonical character names: full names and unambiguous first names."""

    def __init__(self, names: Iterable[str]) -> None:
        self.full: dict[tuple[str, ...], str] = {}
        firsts: dict[str, set[str]] = {}
        for name in names:
            parts = tuple(base_word(p) for p in name.split())
            if parts:
                self.full[parts] = name
                firsts.setdefault(parts[0], set()).add(name)
        for first, owners in firsts.items():
            if len(owners) == 1 and (first,) not in self.full:
                self.full[(first,)] = next(iter(owners))
        self.longest = max((len(k) for k in self.full), default=1)

    def resolve(self, phrase: str) -> str | None:
        """The speaker named by ``phrase`` (``Then Mira`` → ``Mira Okafor``); the cleaned phrase if unknown."""
        words = phrase.split()
        while words and words[0].lower() in STOP_WORDS:
            words = words[1:]
        if not words or (len(words) == 1 and words[0].lower() in PRONOUNS):
            return None
        parts = [base_word(w) for w in words]
        for size in range(min(len(parts), self.longest), 0, -1):
            for start in range(len(parts) - size + 1):
                found = self.full.get(tuple(parts[start : start + size]))
                if found:
                    return found
        return " ".join(words)

    def spans(self, toks: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
        """``[(canonical name, first token index, last token index)]``: capitalised names, longest match first."""
        found: list[tuple[str, int, int]] = []
        i = 0
        while i < len(toks):
            matched = 0
            if toks[i][0][:1].isupper():
                for size in range(min(self.longest, len(toks) - i), 0, -1):
                    name = self.full.get(tuple(base_word(w) for w, _ in toks[i : i + size]))
                    if name:
                        found.append((name, i, i + size - 1))
                        matched = size
                        break
            i += matched or 1
        return found

    def mentions(self, text: str) -> list[tuple[str, int]]:
        """``[(canonical name, character offset)]`` for every name mentioned in ``text``."""
        toks = tokens(text)
        return [(name, toks[start][1]) for name, start, _ in self.spans(toks)]

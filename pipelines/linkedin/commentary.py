"""LinkedIn "little text" commentary: escaping, draft markup, validation before approval, fingerprints.

LinkedIn's ``commentary`` field is parsed as *little text*: the characters ``\\ | { } @ [ ] ( ) < > # * _ ~``
are reserved. An unescaped reserved character that does not start a valid template makes LinkedIn
accept the post and silently cut it at that character (posts ending at ``(`` or ``1)``). So every
literal reserved character is backslash-escaped, and only the two templates Kiln means are emitted:

* mention: ``@[Name](urn:li:person:ID)`` or ``@[Name](urn:li:organization:ID)``
* hashtag: ``{hashtag|\\#|tag}``

How a draft says what it means (the draft markup; drafts are what people write and approve):

* A draft is plain text. Every character is literal, except:
* ``@[Name](urn:li:person:ID)`` / ``@[Name](urn:li:organization:ID)`` exactly is an intended mention. Anything
  else that looks like a mention (``@[Name](…)`` with a bad URN, or an empty name) is a validation error
  before approval rather than a guess. A lone ``@`` or ``@name`` is literal text.
* ``#word`` is an intended hashtag when the ``#`` is not preceded by a letter, digit or ``_`` (so ``C#`` and
  ``a#b`` are literal) and the word has at least one letter (so ``#1`` stays literal). The word runs over
  letters, digits and ``_``. ``render_commentary(..., hashtags=False)`` keeps every ``#`` literal.

Length is counted as LinkedIn shows the post: the *visible* text (a mention counts as its name, a hashtag
as ``#word``, escaping backslashes count nothing) in UTF-16 code units, as JavaScript counters (LinkedIn's
composer among them) count; an emoji outside the BMP counts 2. This is deliberately conservative: a post
that passes here is never over LinkedIn's limit by the way characters are counted. LinkedIn does not
publish its counting rule; the emulator applies the same rule.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_COMMENTARY_CHARS = 3000
RESERVED = "\\|{}@[]()<>#*_~"
# One pass over the text: each reserved character gets one backslash. A single pass is the
# "backslash first" rule by construction: no inserted backslash is ever escaped again.
_RESERVED_RE = re.compile(r"([\\|{}@\[\]()<>#*_~])")

_URN = r"urn:li:(?:person|organization):[A-Za-z0-9_-]+"
_MENTION_RE = re.compile(r"@\[(?P<name>[^\[\]\n]+)\]\((?P<urn>" + _URN + r")\)")
# Anything shaped like a mention attempt: checked so a typo is an error, not a silent literal.
_MENTION_LIKE_RE = re.compile(r"@\[(?P<name>[^\]\n]*)\]\((?P<target>[^)\n]*)\)")
# A hashtag: '#' not after a word character, then word characters with at least one letter.
_HASHTAG_RE = re.compile(r"(?<!\w)#(?P<tag>(?=[\d_]*[^\W\d_])\w+)")
_TOKEN_RE = re.compile(_MENTION_RE.pattern + "|" + _HASHTAG_RE.pattern)
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}


def escape_little_text(text: str) -> str:
    """Every reserved character backslash-escaped: the text shows on LinkedIn exactly as given."""
    return _RESERVED_RE.sub(r"\\\1", text)


def _escape_name(name: str) -> str:
    return escape_little_text(name)


def render_commentary(draft_text: str, *, hashtags: bool = True) -> str:
    """The ``commentary`` value for a draft: literals escaped, intended mentions/hashtags as templates."""
    pattern = _TOKEN_RE if hashtags else _MENTION_RE
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(draft_text):
        out.append(escape_little_text(draft_text[pos : match.start()]))
        if match.groupdict().get("urn"):
            out.append(f"@[{_escape_name(match.group('name'))}]({match.group('urn')})")
        else:
            out.append("{hashtag|\\#|" + match.group("tag") + "}")
        pos = match.end()
    out.append(escape_little_text(draft_text[pos:]))
    return "".join(out)


def visible_text(draft_text: str) -> str:
    """The text as LinkedIn shows it: a mention shows its name; everything else as written."""
    return _MENTION_RE.sub(lambda m: m.group("name"), draft_text)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True)
class CommentaryIssue:
    """One problem found before approval. ``offset`` is a character index into the draft text."""

    code: str
    message: str
    offset: int | None = None


def validate_commentary(draft_text: str, *, max_chars: int = MAX_COMMENTARY_CHARS) -> list[CommentaryIssue]:
    """Problems that must block approval (empty list: fine to approve). Run before approval, not at post time."""
    issues: list[CommentaryIssue] = []
    if not draft_text.strip():
        issues.append(CommentaryIssue("commentary_empty", "The post text is empty."))
        return issues
    for index, char in enumerate(draft_text):
        if char in _ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cs":  # a lone surrogate is not text: nothing else can be judged
            issues.append(CommentaryIssue("commentary_invalid_character", "The text is not valid Unicode.", index))
            return issues
        if category == "Cc":
            issues.append(
                CommentaryIssue("commentary_control_character", f"Control character U+{ord(char):04X}.", index)
            )
            break
    length = utf16_length(visible_text(draft_text))
    if length > max_chars:
        issues.append(
            CommentaryIssue(
                "commentary_too_long",
                f"The post is {length} characters long; LinkedIn allows {max_chars} "
                "(counted as shown, emoji outside the basic plane count 2).",
            )
        )
    for match in _MENTION_LIKE_RE.finditer(draft_text):
        if _MENTION_RE.fullmatch(match.group(0)):
            continue
        if not match.group("name").strip():
            message = "A mention needs a name: @[Name](urn:li:person:ID)."
        else:
            message = (
                "A mention must name a member or organization URN: @[Name](urn:li:person:ID) "
                "or @[Name](urn:li:organization:ID)."
            )
        issues.append(CommentaryIssue("commentary_mention_invalid", message, match.start()))
    for match in _MENTION_RE.finditer(draft_text):
        if match.group("name") != match.group("name").strip():
            issues.append(
                CommentaryIssue(
                    "commentary_mention_invalid", "A mention name must not start or end with spaces.", match.start()
                )
            )
    for match in _hashtag_matches(draft_text):
        if len(match.group("tag")) > 100:
            issues.append(
                CommentaryIssue("commentary_hashtag_invalid", "A hashtag is longer than 100 characters.", match.start())
            )
    return issues


def _hashtag_matches(draft_text: str) -> list[re.Match[str]]:
    # Through the combined pattern: a '#' inside a mention's name is part of the mention, not a hashtag.
    return [m for m in _TOKEN_RE.finditer(draft_text) if m.group("tag")]


def hashtags_in(draft_text: str) -> list[str]:
    return [m.group("tag") for m in _hashtag_matches(draft_text)]


def mentions_in(draft_text: str) -> list[tuple[str, str]]:
    return [(m.group("name"), m.group("urn")) for m in _MENTION_RE.finditer(draft_text)]


def build_post_body(author_urn: str, draft_text: str, *, visibility: str = "PUBLIC") -> dict[str, Any]:
    """The JSON body of ``POST /rest/posts`` for a member post (text only)."""
    return {
        "author": author_urn,
        "commentary": render_commentary(draft_text),
        "visibility": visibility,
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }


def canonical_json(body: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8 (not ASCII-escaped): one byte string per body."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def request_fingerprint(body: Any) -> str:
    """SHA-256 (hex) of the canonical body: the same post always has the same fingerprint."""
    return hashlib.sha256(canonical_json(body)).hexdigest()

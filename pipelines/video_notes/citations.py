"""``[mm:ss]`` citations in notes: parsing, checking against the transcript, and removing invented ones."""

from __future__ import annotations

import re

from pipelines.video_notes.formats import clock
from pipelines.video_notes.transcript import Transcript

CITATION_RE = re.compile(r"\[((?:\d+:)?\d{1,3}:\d{2})\]")
_STAMP_RE = re.compile(r"(?:\d+:)?\d{1,3}:\d{2}")
# A citation with the blanks before it, so removing it leaves no double space or space before punctuation.
_CITATION_WITH_SPACE_RE = re.compile(r"[ \t]*\[((?:\d+:)?\d{1,3}:\d{2})\]")


def parse_clock(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def timestamp_exists(seconds: int, transcript: Transcript) -> bool:
    """A cited second exists when it falls inside a segment (from its floored start to its end)."""
    return any(int(s.start) <= seconds <= s.end for s in transcript.segments)


def cited_timestamps_exist(summary_md: str, transcript: Transcript) -> list[str]:
    """The ``[mm:ss]`` citations in ``summary_md`` that point at no transcript segment ([] = all valid)."""
    return [
        f"[{m.group(1)}]" for m in CITATION_RE.finditer(summary_md)
        if not timestamp_exists(parse_clock(m.group(1)), transcript)
    ]


def valid_stamp(stamp: str, transcript: Transcript) -> str | None:
    """``stamp`` ("mm:ss", "[h:mm:ss]") in canonical form when it points into the transcript, else None."""
    stamp = stamp.strip().strip("[]").strip()
    if _STAMP_RE.fullmatch(stamp) and timestamp_exists(parse_clock(stamp), transcript):
        return clock(parse_clock(stamp))
    return None


def strip_invalid_citations(text: str, transcript: Transcript, dropped: list[str]) -> str:
    """``text`` with every ``[mm:ss]`` that points at no transcript segment removed (appended to ``dropped``);
    valid ones are kept, in canonical form."""

    def replace(match: re.Match[str]) -> str:
        canonical = valid_stamp(match.group(1), transcript)
        if canonical is None:
            dropped.append(f"[{match.group(1)}]")
            return ""
        return match.group(0).replace(match.group(1), canonical)

    cleaned = _CITATION_WITH_SPACE_RE.sub(replace, text)
    return cleaned.strip() if cleaned != text else text

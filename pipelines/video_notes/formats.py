"""Transcript output formats: JSON, SRT, WebVTT and plain text, plus parsers for SRT/VTT (round-trips, tests).

Subtitle cues follow common broadcast guidance: at most 2 lines of ~42 characters and at most 7 s on screen.
Long segments are split at word boundaries using Whisper's word timestamps; segments without words are split
by text length, with times interpolated across the segment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipelines.video_notes.transcript import Segment, Transcript

MAX_LINE_CHARS = 42
MAX_LINES = 2
MAX_CUE_SECONDS = 7.0
MIN_CUE_SECONDS = 0.2


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# -- timestamps -------------------------------------------------------------------------------------------------
def _split_ms(seconds: float) -> tuple[int, int, int, int]:
    total_ms = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return hours, minutes, secs, ms


def srt_timestamp(seconds: float) -> str:
    """``00:00:01,500``"""
    h, m, s, ms = _split_ms(seconds)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def vtt_timestamp(seconds: float) -> str:
    """``00:00:01.500``"""
    h, m, s, ms = _split_ms(seconds)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def clock(seconds: float) -> str:
    """``mm:ss`` (or ``h:mm:ss`` from one hour), floored to the second: the form cited in Summary.md."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


_TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})")


def parse_timestamp(text: str) -> float:
    match = _TIME_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"Not a subtitle timestamp: {text!r}")
    hours, minutes, secs, ms = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs + ms / 1000


# -- cue building -----------------------------------------------------------------------------------------------
def _wrap(text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    lines: list[str] = []
    current = ""
    for token in text.split():
        candidate = f"{current} {token}".strip()
        if current and len(candidate) > width:
            lines.append(current)
            current = token
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _fits(text: str) -> bool:
    return len(_wrap(text)) <= MAX_LINES


def _timed_tokens(segment: Segment) -> list[tuple[float, float, str]]:
    words = [(w.start, w.end, w.word.strip()) for w in segment.words if w.word.strip()]
    if words:
        return words
    tokens = segment.text.split()
    if not tokens:
        return []
    # No word timestamps: spread the segment's time over its tokens by character count.
    total_chars = sum(len(t) + 1 for t in tokens)
    span = max(segment.end - segment.start, 0.0)
    out, cursor = [], segment.start
    for token in tokens:
        length = span * (len(token) + 1) / total_chars
        out.append((cursor, cursor + length, token))
        cursor += length
    return out


def build_cues(transcript: Transcript) -> list[Cue]:
    """Subtitle cues: <= 2 lines of <= ~42 chars, <= 7 s, monotonic and non-overlapping."""
    cues: list[Cue] = []
    for segment in transcript.segments:
        tokens = _timed_tokens(segment)
        group: list[tuple[float, float, str]] = []
        for token in tokens:
            if group:
                text = " ".join(t[2] for t in group + [token])
                too_long = token[1] - group[0][0] > MAX_CUE_SECONDS
                if too_long or not _fits(text):
                    cues.append(_cue(group, segment))
                    group = []
            group.append(token)
        if group:
            cues.append(_cue(group, segment))
    return _make_monotonic(cues)


def _cue(group: list[tuple[float, float, str]], segment: Segment) -> Cue:
    start = max(segment.start, group[0][0])
    end = min(segment.end, group[-1][1]) if segment.end > start else group[-1][1]
    text = " ".join(t[2] for t in group)
    return Cue(start=start, end=max(end, start + MIN_CUE_SECONDS), lines=tuple(_wrap(text)))


def _make_monotonic(cues: list[Cue]) -> list[Cue]:
    fixed: list[Cue] = []
    for cue in cues:
        start = max(cue.start, fixed[-1].end) if fixed else cue.start
        end = max(cue.end, start + MIN_CUE_SECONDS)
        fixed.append(Cue(round(start, 3), round(end, 3), cue.lines))
    return fixed


# -- writers ----------------------------------------------------------------------------------------------------
def to_json(transcript: Transcript) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2)


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{srt_timestamp(c.start)} --> {srt_timestamp(c.end)}\n{c.text}\n"
        for i, c in enumerate(build_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    header = "WEBVTT\n"
    if transcript.language:
        header += f"Language: {transcript.language}\n"
    blocks = [f"{vtt_timestamp(c.start)} --> {vtt_timestamp(c.end)}\n{c.text}\n" for c in build_cues(transcript)]
    return "\n".join([header, *blocks])


def to_txt(transcript: Transcript, *, with_timestamps: bool = False) -> str:
    if with_timestamps:
        lines = [f"[{clock(s.start)}] {s.text.strip()}" for s in transcript.segments if s.text.strip()]
    else:
        lines = [s.text.strip() for s in transcript.segments if s.text.strip()]
    return "\n".join(lines) + ("\n" if lines else "")


def render_all(transcript: Transcript) -> dict[str, str]:
    """Every output file by name: transcript.json, transcript.srt, transcript.vtt, transcript.txt."""
    return {
        "transcript.json": to_json(transcript),
        "transcript.srt": to_srt(transcript),
        "transcript.vtt": to_vtt(transcript),
        "transcript.txt": to_txt(transcript),
    }


# -- parsers ----------------------------------------------------------------------------------------------------
_ARROW_RE = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")


def _parse_blocks(text: str) -> list[Cue]:
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            match = _ARROW_RE.match(line)
            if match:
                cues.append(
                    Cue(parse_timestamp(match.group(1)), parse_timestamp(match.group(2)), tuple(lines[i + 1:]))
                )
                break
    return cues


def parse_srt(text: str) -> list[Cue]:
    return _parse_blocks(text)


def parse_vtt(text: str) -> list[Cue]:
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise ValueError("A WebVTT file starts with 'WEBVTT'")
    return _parse_blocks(text)

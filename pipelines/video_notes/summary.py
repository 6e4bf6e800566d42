"""Summary.md: title, overview, key points citing ``[mm:ss]``, chapters, highlights with screenshots.

Two ways to write it, same Markdown layout:
- with a chat model (any OpenAI-compatible endpoint, see ``resources.llm``): the versioned prompt
  ``prompts/summary_v1.md`` asks for JSON; the Markdown is rendered here, and citations that do not exist in the
  transcript are dropped before rendering (a key point left without one is dropped too);
- without one: an extractive summary that says so, made of sentences taken verbatim from the transcript.
:func:`cited_timestamps_exist` re-checks the final Markdown (an asset check runs it).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.video_notes.formats import clock
from pipelines.video_notes.frames import Screenshot
from pipelines.video_notes.highlights import Highlight, content_words, segment_scores
from pipelines.video_notes.transcript import Transcript

PROMPT_VERSION = "summary_v1"
PROMPT_PATH = Path(__file__).with_name("prompts") / f"{PROMPT_VERSION}.md"
SCREENSHOT_DIR = "screenshots"
_CITATION_RE = re.compile(r"\[((?:\d+:)?\d{1,3}:\d{2})\]")


class ChatModel(Protocol):
    """What the summary needs from an LLM: ``resources.llm.LLM`` implements it."""

    model_name: str

    def complete(self, messages: list[dict[str, str]]) -> str: ...


@dataclass(frozen=True)
class SummaryResult:
    markdown: str
    method: str  # "llm" | "extractive" | "no_speech"
    prompt_version: str | None
    model: str | None
    dropped_citations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- citations --------------------------------------------------------------------------------------------------
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
        f"[{m.group(1)}]" for m in _CITATION_RE.finditer(summary_md)
        if not timestamp_exists(parse_clock(m.group(1)), transcript)
    ]


# -- prompt -----------------------------------------------------------------------------------------------------
def load_prompt() -> tuple[str, str]:
    """(system, user template) from the versioned prompt file."""
    text = PROMPT_PATH.read_text(encoding="utf-8")
    _, _, rest = text.partition("## system")
    system, _, user = rest.partition("## user")
    return system.strip(), user.strip()


def transcript_lines(transcript: Transcript) -> str:
    return "\n".join(f"[{clock(s.start)}] {s.text.strip()}" for s in transcript.segments if s.text.strip())


def build_messages(transcript: Transcript) -> list[dict[str, str]]:
    system, user = load_prompt()
    language = transcript.language or "the transcript's language"
    return [
        {"role": "system", "content": system.replace("{language}", language)},
        {
            "role": "user",
            "content": user.replace("{duration}", clock(transcript.duration)).replace(
                "{transcript}", transcript_lines(transcript)
            ),
        },
    ]


# -- rendering --------------------------------------------------------------------------------------------------
def _render(
    title: str, overview: str, key_points: list[tuple[str, list[str]]], chapters: list[tuple[str, str]],
    highlights: Sequence[Highlight], screenshots: Sequence[Screenshot], banner: str,
) -> str:
    out = [f"# {title.strip() or 'Video notes'}", "", f"> {banner}", "", "## Overview", "", overview.strip(), ""]
    if key_points:
        out += ["## Key points", ""]
        out += [f"- {text.strip()} " + " ".join(f"[{c}]" for c in cites) for text, cites in key_points]
        out.append("")
    if chapters:
        out += ["## Chapters", ""]
        out += [f"- [{start}] {name.strip()}" for start, name in chapters]
        out.append("")
    out += _render_highlights(highlights, screenshots)
    return "\n".join(out).rstrip() + "\n"


def _shot_for(seconds: float, screenshots: Sequence[Screenshot]) -> Screenshot | None:
    near = [s for s in screenshots if abs(s.requested_s - seconds) <= 0.5]
    return min(near, key=lambda s: abs(s.requested_s - seconds)) if near else None


def _render_highlights(highlights: Sequence[Highlight], screenshots: Sequence[Screenshot]) -> list[str]:
    if not highlights:
        return []
    out = ["## Highlights", ""]
    for h in highlights:
        out.append(f"### [{clock(h.start)}] – [{clock(h.end)}] {h.title} (score {h.score:.2f})")
        out.append("")
        shot = _shot_for(h.start, screenshots)
        if shot is not None:
            out += [f"![{h.title}]({SCREENSHOT_DIR}/{shot.name})", ""]
        out += [f"> {h.text}", ""]
    return out


# -- extractive -------------------------------------------------------------------------------------------------
def _chapters(transcript: Transcript, scores: list[float]) -> list[tuple[str, str]]:
    segments = [s for s in transcript.segments if s.text.strip()]
    count = max(1, min(8, round(transcript.duration / 180)))
    span = max(transcript.duration / count, 1e-6)
    groups: list[list[int]] = [[] for _ in range(count)]
    for index, segment in enumerate(segments):
        groups[min(count - 1, int(segment.start / span))].append(index)
    chapters = []
    for group in (g for g in groups if g):
        words = Counter(w for i in group for w in content_words(segments[i].text))
        name = ", ".join(w for w, _ in words.most_common(3)).capitalize() or segments[group[0]].text[:40]
        chapters.append((clock(segments[group[0]].start), name))
    return chapters


def extractive_summary(
    transcript: Transcript, highlights: Sequence[Highlight] = (), screenshots: Sequence[Screenshot] = ()
) -> SummaryResult:
    segments = [s for s in transcript.segments if s.text.strip()]
    scores = segment_scores(segments)
    ranked = sorted(range(len(segments)), key=lambda i: (-scores[i], i))
    key = sorted(ranked[: min(5, len(segments))])
    title = highlights[0].title if highlights else segments[ranked[0]].text[:70]
    overview_ids = sorted(ranked[:2])
    overview = " ".join(segments[i].text.strip() for i in overview_ids)
    markdown = _render(
        title=title,
        overview=overview,
        key_points=[(segments[i].text, [clock(segments[i].start)]) for i in key],
        chapters=_chapters(transcript, scores),
        highlights=highlights,
        screenshots=screenshots,
        banner="Extractive summary: sentences quoted verbatim from the transcript, chosen by keyword density. "
        "No language model was used.",
    )
    return SummaryResult(markdown, "extractive", None, None)


def no_speech_summary(duration: float, screenshots: Sequence[Screenshot] = (), *, has_audio: bool = True) -> SummaryResult:
    reason = "This video has no audio track." if not has_audio else "No speech was detected in the audio."
    out = ["# Video notes", "", f"> {reason} There is no transcript to summarise.", "",
           "## Overview", "", f"A {clock(duration)} video without speech.", ""]
    if screenshots:
        out += ["## Screenshots", ""]
        out += [f"- {s.actual_s:.1f} s: ![frame at {s.actual_s:.1f} s]({SCREENSHOT_DIR}/{s.name})" for s in screenshots]
    return SummaryResult("\n".join(out).rstrip() + "\n", "no_speech", None, None)


# -- with a language model ---------------------------------------------------------------------------------------
def _parse_json(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    return json.loads(text[start : end + 1])


def llm_summary(
    transcript: Transcript, chat: ChatModel, highlights: Sequence[Highlight] = (),
    screenshots: Sequence[Screenshot] = (),
) -> SummaryResult:
    """Ask ``chat`` for the notes; fall back to :func:`extractive_summary` when the answer is unusable."""
    answer = chat.complete(build_messages(transcript))
    try:
        data = _parse_json(answer)
    except ValueError as exc:
        result = extractive_summary(transcript, highlights, screenshots)
        return SummaryResult(result.markdown, "extractive", PROMPT_VERSION, chat.model_name,
                             notes=[f"the model's answer was not JSON ({exc}); fell back to extractive"])
    dropped: list[str] = []

    def valid(stamp: Any) -> str | None:
        stamp = str(stamp).strip().strip("[]")
        if re.fullmatch(r"(?:\d+:)?\d{1,3}:\d{2}", stamp) and timestamp_exists(parse_clock(stamp), transcript):
            return clock(parse_clock(stamp))
        dropped.append(f"[{stamp}]")
        return None

    key_points = []
    for point in data.get("key_points") or []:
        cites = [c for c in (valid(s) for s in (point.get("timestamps") or [])) if c]
        if cites and str(point.get("text", "")).strip():
            key_points.append((str(point["text"]), cites))
    chapters = []
    for chapter in data.get("chapters") or []:
        start = valid(chapter.get("start", ""))
        if start and str(chapter.get("title", "")).strip():
            chapters.append((start, str(chapter["title"])))
    markdown = _render(
        title=str(data.get("title") or "Video notes"),
        overview=str(data.get("overview") or ""),
        key_points=key_points,
        chapters=chapters,
        highlights=highlights,
        screenshots=screenshots,
        banner=f"Written by the language model `{chat.model_name}` from the transcript (prompt {PROMPT_VERSION}). "
        "Timestamps were checked against the transcript.",
    )
    return SummaryResult(markdown, "llm", PROMPT_VERSION, chat.model_name, dropped_citations=dropped)


def build_summary(
    transcript: Transcript,
    highlights: Sequence[Highlight] = (),
    screenshots: Sequence[Screenshot] = (),
    *,
    chat: ChatModel | None = None,
    has_audio: bool = True,
) -> SummaryResult:
    """Summary.md for a transcript: through ``chat`` when given, else extractive; a no-speech note when empty."""
    if not transcript.has_speech:
        return no_speech_summary(transcript.duration, screenshots, has_audio=has_audio)
    if chat is not None:
        return llm_summary(transcript, chat, highlights, screenshots)
    return extractive_summary(transcript, highlights, screenshots)

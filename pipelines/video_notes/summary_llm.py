"""What the chat model is asked for the notes, and what of its answer is kept.

- The prompt is the versioned ``prompts/summary_v1.md``; the transcript in it is capped at a character budget
  (``KILN_LLM_MAX_INPUT_CHARS``): a longer one is sampled evenly over the video, and the prompt says so, because
  a context-length refusal or a truncated middle would cost the whole summary.
- The answer must be JSON of the documented shape (:class:`SummaryAnswer`); anything else is
  :class:`UnusableAnswer` and the caller falls back to the extractive summary.
- Every timestamp, in the fields and in the free text, is checked against the transcript; invented ones are
  dropped (and listed), and a key point left without a citation is dropped too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipelines.video_notes.citations import strip_invalid_citations, valid_stamp
from pipelines.video_notes.formats import clock
from pipelines.video_notes.transcript import Transcript

PROMPT_VERSION = "summary_v1"
PROMPT_PATH = Path(__file__).with_name("prompts") / f"{PROMPT_VERSION}.md"
DEFAULT_MAX_INPUT_CHARS = 24_000


class ChatModel(Protocol):
    """What the summary needs from an LLM: ``resources.llm.OpenAIChat`` implements it."""

    model_name: str

    def complete(self, messages: list[dict[str, str]]) -> str: ...


class UnusableAnswer(ValueError):
    """The model answered, but not with notes of the documented shape."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeyPoint(_Lenient):
    text: str
    timestamps: list[str] = []

    @field_validator("timestamps", mode="before")
    @classmethod
    def _one_stamp_is_a_list(cls, value: Any) -> Any:
        # "timestamps": "00:10" is a common slip of small models; one stamp is still a citation.
        return [value] if isinstance(value, str) else ([] if value is None else value)


class Chapter(_Lenient):
    start: str
    title: str


class SummaryAnswer(_Lenient):
    title: str = ""
    overview: str = ""
    key_points: list[KeyPoint] = []
    chapters: list[Chapter] = []

    @field_validator("title", "overview", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("key_points", "chapters", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        return [] if value is None else value


@dataclass(frozen=True)
class LLMNotes:
    """The validated notes, ready to render: every citation points into the transcript."""

    title: str
    overview: str
    key_points: list[tuple[str, list[str]]]
    chapters: list[tuple[str, str]]
    dropped_citations: list[str] = field(default_factory=list)


# -- prompt -----------------------------------------------------------------------------------------------------
def load_prompt() -> tuple[str, str]:
    """(system, user template) from the versioned prompt file."""
    text = PROMPT_PATH.read_text(encoding="utf-8")
    _, _, rest = text.partition("## system")
    system, _, user = rest.partition("## user")
    return system.strip(), user.strip()


def transcript_lines(transcript: Transcript, max_chars: int | None = None) -> tuple[str, str | None]:
    """The ``[mm:ss] text`` lines for the prompt, at most ``max_chars`` long, and a note when some were left out.

    Over the budget, the most lines that fit are taken at evenly spaced positions, so every part of the video is
    represented (a cut-off end would lose the conclusion).
    """
    lines = [f"[{clock(s.start)}] {s.text.strip()}" for s in transcript.segments if s.text.strip()]
    if max_chars is None or sum(len(line) + 1 for line in lines) <= max_chars:
        return "\n".join(lines), None
    note_room = 160
    budget = max(1, max_chars - note_room)

    def evenly(count: int) -> list[str]:
        if count == 1:
            return [lines[0]]
        return [lines[round(i * (len(lines) - 1) / (count - 1))] for i in range(count)]

    low, high = 1, len(lines)
    while low < high:  # the largest count whose evenly spaced lines fit
        middle = (low + high + 1) // 2
        if sum(len(line) + 1 for line in evenly(middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    chosen = evenly(low)
    if len(chosen) == 1 and len(chosen[0]) > budget:
        chosen = [chosen[0][: budget - 1] + "…"]
    note = (f"Transcript condensed to fit the model's input budget of {max_chars} characters: {len(chosen)} of "
            f"{len(lines)} segments, evenly spaced over the video.")
    return f"({note})\n" + "\n".join(chosen), note


def build_messages(transcript: Transcript, max_chars: int | None = None) -> tuple[list[dict[str, str]], str | None]:
    """The chat messages, and the condensing note (None when the whole transcript fits)."""
    system, user = load_prompt()
    language = transcript.language or "the transcript's language"
    lines, note = transcript_lines(transcript, max_chars)
    messages = [
        {"role": "system", "content": system.replace("{language}", language)},
        {"role": "user", "content": user.replace("{duration}", clock(transcript.duration)).replace("{transcript}", lines)},
    ]
    return messages, note


# -- answer -----------------------------------------------------------------------------------------------------
def parse_answer(text: str) -> SummaryAnswer:
    """The JSON object in the model's answer, of the documented shape; :class:`UnusableAnswer` otherwise."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise UnusableAnswer("the answer holds no JSON object")
    try:
        return SummaryAnswer.model_validate(json.loads(text[start : end + 1]))
    except json.JSONDecodeError as exc:
        raise UnusableAnswer(f"the answer is not valid JSON ({exc.msg})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])
        raise UnusableAnswer(f"the JSON does not have the expected shape ({problems})") from exc


def validated_notes(answer: SummaryAnswer, transcript: Transcript) -> LLMNotes:
    """``answer`` with invented timestamps removed everywhere, in the citation fields and in the text."""
    dropped: list[str] = []

    def cite(stamp: str) -> str | None:
        canonical = valid_stamp(stamp, transcript)
        if canonical is None:
            dropped.append(f"[{stamp.strip().strip('[]')}]")
        return canonical

    def text(value: str) -> str:
        return strip_invalid_citations(value, transcript, dropped).strip()

    key_points = []
    for point in answer.key_points:
        cites = list(dict.fromkeys(c for c in (cite(s) for s in point.timestamps) if c))
        body = text(point.text)
        if cites and body:
            key_points.append((body, cites))
    chapters = []
    for chapter in answer.chapters:
        start, title = cite(chapter.start), text(chapter.title)
        if start and title:
            chapters.append((start, title))
    return LLMNotes(title=text(answer.title), overview=text(answer.overview), key_points=key_points,
                    chapters=chapters, dropped_citations=dropped)

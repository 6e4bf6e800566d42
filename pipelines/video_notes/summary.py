"""Summary.md: title, overview, key points citing ``[mm:ss]``, chapters, highlights with screenshots.

Two ways to write it, same Markdown layout:
- with a chat model (any OpenAI-compatible endpoint, see ``resources.llm``): the versioned prompt
  ``prompts/summary_v1.md`` asks for JSON (``summary_llm``); the Markdown is rendered here, and citations that do
  not exist in the transcript are dropped before rendering, in the text as in the citation fields (a key point left
  without one is dropped too). An answer of the wrong shape, or an endpoint that refuses the request (e.g. a
  context-length 400), gives the extractive summary instead, with a note saying why;
- without one: an extractive summary that says so, made of sentences taken verbatim from the transcript.
:func:`cited_timestamps_exist` re-checks the final Markdown (an asset check runs it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines.errors import PermanentError
from pipelines.video_notes.citations import (  # noqa: F401 - re-exported: callers import them from here
    cited_timestamps_exist,
    parse_clock,
    timestamp_exists,
)
from pipelines.video_notes.extractive import (
    SentenceModel,
    chapter_starts,
    content_words,
    is_topic_statement,
    stem,
    title_case,
)
from pipelines.video_notes.formats import clock
from pipelines.video_notes.frames import Screenshot
from pipelines.video_notes.highlights import Highlight
from pipelines.video_notes.sentences import split_sentences
from pipelines.video_notes.summary_llm import (  # noqa: F401 - PROMPT_VERSION, ChatModel re-exported
    DEFAULT_MAX_INPUT_CHARS,
    PROMPT_VERSION,
    ChatModel,
    UnusableAnswer,
    build_messages,
    parse_answer,
    validated_notes,
)
from pipelines.video_notes.transcript import Transcript

SCREENSHOT_DIR = "screenshots"


@dataclass(frozen=True)
class SummaryResult:
    markdown: str
    method: str  # "llm" | "extractive" | "no_speech"
    prompt_version: str | None
    model: str | None
    dropped_citations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- rendering --------------------------------------------------------------------------------------------------
def _render(
    title: str, overview: str, key_points: list[tuple[str, list[str]]], chapters: list[tuple[str, str]],
    highlights: Sequence[Highlight], screenshots: Sequence[Screenshot], banner: Sequence[str],
) -> str:
    out = [f"# {title.strip() or 'Video notes'}", ""]
    out += [line for i, text in enumerate(banner) for line in ([">"] if i else []) + [f"> {text}"]]
    out += ["", "## Overview", "", overview.strip(), ""]
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
EXTRACTIVE_BANNER = (
    "Extractive summary: the overview and key points are sentences quoted verbatim from the transcript, chosen "
    "for how central and informative they are; the title is a phrase quoted from it (or its top keywords), and "
    "chapters are named by their most distinctive keywords. No language model was used."
)


def key_point_count(duration: float) -> int:
    """3 for a minute or less, about 7 for ten minutes, 10 from an hour."""
    minutes = max(duration, 60.0) / 60.0
    return max(3, min(10, round(3 + 1.2 * math.log2(minutes))))


def overview_count(duration: float) -> int:
    return 1 if duration < 180 else 2 if duration < 1200 else 3


def _pick(model: SentenceModel, count: int, among: Sequence[int] | None = None, exclude: Sequence[int] = ()) -> list[int]:
    """The best ``count`` sentences (of ``among``), skipping filler and near-repeats of one already chosen."""
    scores = model.scores
    floor = 0.15 * float(scores.max()) if len(scores) else 0.0
    pool = range(len(scores)) if among is None else among
    taken = list(exclude)
    picked: list[int] = []
    for i in sorted(pool, key=lambda i: (-float(scores[i]), i)):
        if len(picked) >= count:
            break
        if i in taken or scores[i] <= floor or model.is_filler(i):
            continue
        if any(model.similarity[i, j] > 0.6 or model.sentences[i].text == model.sentences[j].text for j in taken):
            continue
        picked.append(i)
        taken.append(i)
    return sorted(picked)


def _quotas(count: int, sizes: list[int]) -> list[int]:
    """``count`` split over chapters in proportion to their sentence counts (largest remainders, ties to the earlier)."""
    total = sum(sizes) or 1
    exact = [count * size / total for size in sizes]
    quotas = [int(x) for x in exact]
    for i in sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))[: count - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _overview(model: SentenceModel, groups: list[list[int]], count: int) -> list[int]:
    """The top sentences, preferring one per chapter so a multi-topic video is not summarised by its first topic."""
    heads = [ids[0] for ids in (_pick(model, 1, among=group) for group in groups) if ids]
    heads = sorted(heads, key=lambda i: (-float(model.scores[i]), i))[:count]
    chosen = sorted(heads + _pick(model, count - len(heads), exclude=heads))
    return chosen or [int(model.scores.argmax())]


def _key_points(model: SentenceModel, groups: list[list[int]], count: int, overview: list[int]) -> list[int]:
    """Top sentences per chapter (in proportion to its length), then the best of the rest; never the overview's."""
    picked: list[int] = []
    for group, quota in zip(groups, _quotas(count, [len(g) for g in groups])):
        picked += _pick(model, quota, among=group, exclude=overview + picked)
    picked += _pick(model, count - len(picked), exclude=overview + picked)
    return sorted(picked)  # may be empty: a sentence already in the overview is not repeated


def _title(model: SentenceModel, duration: float, chapter_keywords: list[list[str]]) -> str:
    """A phrase quoted from a high-scoring sentence that names the video's main keywords, else those keywords.

    With several chapters the fallback names the first keyword of each (the three longest), since the video's
    overall top words would all come from its longest topic.
    """
    everything = range(len(model.sentences))
    weights = model.keyword_weights(everything)
    top_units = set(sorted(weights, key=lambda u: (-weights[u]))[:6])
    best: tuple[float, str] | None = None
    for i in _pick(model, 5):
        phrase = model.key_phrase(i, weights, max_words=12)
        covered = {stem(w) for w in content_words(phrase)} & top_units
        # Openings tend to state the topic ("In this talk ..."): a bonus for the first fifth and for cue phrases.
        early = 1.2 if duration > 0 and model.sentences[i].start <= 0.2 * duration else 1.0
        cue = 1.5 if is_topic_statement(model.sentences[i].text) else 1.0
        rank = len(covered) * early * cue * float(model.scores[i])
        if len(covered) >= 2 and (len(chapter_keywords) == 1 or cue > 1) and (best is None or rank > best[0]):
            best = (rank, phrase)
    if best is not None:
        return best[1]
    if len(chapter_keywords) > 1:
        keywords = list(dict.fromkeys(k[0] for k in chapter_keywords if k))[:3]
    else:
        keywords = model.top_keywords(everything, 3)
    if not keywords:
        return "Video notes"
    listed = keywords[0] if len(keywords) == 1 else ", ".join(keywords[:-1]) + " and " + keywords[-1]
    return f"Notes: {listed}"


def _chapter_groups(model: SentenceModel, duration: float) -> list[list[int]]:
    starts = chapter_starts(model, duration)
    return [list(range(a, b)) for a, b in zip(starts, starts[1:] + [len(model.sentences)])]


def _chapter_keywords(model: SentenceModel, groups: list[list[int]]) -> list[list[str]]:
    return [
        model.top_keywords(group, 3, max_words=4, others=[g for g in groups if g is not group])
        for group in groups
    ]


def _clip_words(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def _cite(model: SentenceModel, i: int) -> str:
    return clock(model.sentences[i].start)


def _quote(model: SentenceModel, i: int) -> str:
    """The sentence verbatim, its first letter capitalised (a piece cut at a pause may start mid-sentence)."""
    text = model.sentences[i].text
    return text[:1].upper() + text[1:]


def extractive_summary(
    transcript: Transcript, highlights: Sequence[Highlight] = (), screenshots: Sequence[Screenshot] = (),
    *, notes: Sequence[str] = (),
) -> SummaryResult:
    """Sentences quoted from the transcript; ``notes`` (why no model wrote it, when one was configured) are
    shown under the banner."""
    sentences = split_sentences(transcript)
    if not sentences:
        return no_speech_summary(transcript.duration, screenshots)
    model = SentenceModel(sentences)
    duration = max(transcript.duration, sentences[-1].end)
    groups = _chapter_groups(model, duration)
    keywords = _chapter_keywords(model, groups)
    overview_ids = _overview(model, groups, overview_count(duration))
    key_ids = _key_points(model, groups, key_point_count(duration), overview_ids)
    chapters = [
        (_cite(model, group[0]), title_case(", ".join(words)) if words else _clip_words(sentences[group[0]].text, 6))
        for group, words in zip(groups, keywords)
    ]
    markdown = _render(
        title=_title(model, duration, keywords),
        overview=" ".join(f"{_quote(model, i)} [{_cite(model, i)}]" for i in overview_ids),
        key_points=[(_quote(model, i), [_cite(model, i)]) for i in key_ids],
        chapters=chapters,
        highlights=highlights,
        screenshots=screenshots,
        banner=[EXTRACTIVE_BANNER, *notes],
    )
    return SummaryResult(markdown, "extractive", None, None, notes=list(notes))


def no_speech_summary(duration: float, screenshots: Sequence[Screenshot] = (), *, has_audio: bool = True) -> SummaryResult:
    reason = "This video has no audio track." if not has_audio else "No speech was detected in the audio."
    out = ["# Video notes", "", f"> {reason} There is no transcript to summarise.", "",
           "## Overview", "", f"A {clock(duration)} video without speech.", ""]
    if screenshots:
        out += ["## Screenshots", ""]
        out += [f"- {s.actual_s:.1f} s: ![frame at {s.actual_s:.1f} s]({SCREENSHOT_DIR}/{s.name})" for s in screenshots]
    return SummaryResult("\n".join(out).rstrip() + "\n", "no_speech", None, None)


# -- with a language model ---------------------------------------------------------------------------------------
def _fallback(
    transcript: Transcript, chat: ChatModel, highlights: Sequence[Highlight], screenshots: Sequence[Screenshot],
    reason: str, notes: Sequence[str] = (),
) -> SummaryResult:
    note = f"The language model `{chat.model_name}` was configured but not used: {reason}."
    result = extractive_summary(transcript, highlights, screenshots, notes=[note, *notes])
    return SummaryResult(result.markdown, "extractive", PROMPT_VERSION, chat.model_name, notes=result.notes)


def llm_summary(
    transcript: Transcript, chat: ChatModel, highlights: Sequence[Highlight] = (),
    screenshots: Sequence[Screenshot] = (), *, max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
) -> SummaryResult:
    """Ask ``chat`` for the notes; fall back to :func:`extractive_summary` when it refuses or answers unusably.

    An unreachable endpoint (``RetryableError``) is not caught: another attempt may reach it.
    """
    messages, condensed = build_messages(transcript, max_input_chars)
    notes = [condensed] if condensed else []
    try:
        answer = chat.complete(messages)
    except PermanentError as exc:  # e.g. HTTP 400 for a context length, 401 for a wrong key
        return _fallback(transcript, chat, highlights, screenshots, f"the endpoint refused the request ({exc})", notes)
    try:
        data = validated_notes(parse_answer(answer), transcript)
    except UnusableAnswer as exc:
        return _fallback(transcript, chat, highlights, screenshots, f"its answer was unusable: {exc}", notes)
    banner = (f"Written by the language model `{chat.model_name}` from the transcript (prompt {PROMPT_VERSION}). "
              "Timestamps were checked against the transcript.")
    markdown = _render(
        title=data.title or "Video notes",
        overview=data.overview,
        key_points=data.key_points,
        chapters=data.chapters,
        highlights=highlights,
        screenshots=screenshots,
        banner=[banner, *notes],
    )
    return SummaryResult(markdown, "llm", PROMPT_VERSION, chat.model_name,
                         dropped_citations=data.dropped_citations, notes=notes)


def build_summary(
    transcript: Transcript,
    highlights: Sequence[Highlight] = (),
    screenshots: Sequence[Screenshot] = (),
    *,
    chat: ChatModel | None = None,
    has_audio: bool = True,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
) -> SummaryResult:
    """Summary.md for a transcript: through ``chat`` when given, else extractive; a no-speech note when empty."""
    if not transcript.has_speech:
        return no_speech_summary(transcript.duration, screenshots, has_audio=has_audio)
    if chat is not None:
        return llm_summary(transcript, chat, highlights, screenshots, max_input_chars=max_input_chars)
    return extractive_summary(transcript, highlights, screenshots)

"""Rank stretches of the transcript into highlights: extractive, deterministic, inside the duration.

Scoring (no model needed, see ``extractive``):
- the transcript is split into sentences (``sentences``), each scored for centrality and informativeness;
- runs of adjacent sentences (pause <= 3 s) are grown into windows of 10-60 s, so a highlight starts and ends
  on a sentence boundary rather than where Whisper happened to cut a segment;
- a window's score = duration-weighted sentence score x a length factor (favours ~20-40 s, the length of a
  shareable clip) x a small position factor (openings and closings often state the point);
- windows are taken best first without overlap, then returned in time order with scores scaled to 0..1;
- the title is the key phrase (densest clause) of the window's best sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipelines.video_notes.extractive import (  # noqa: F401 - content_words re-exported
    SentenceModel,
    chapter_starts,
    content_words,
)
from pipelines.video_notes.sentences import Sentence, split_sentences
from pipelines.video_notes.transcript import Transcript

MIN_WINDOW_S = 10.0
MAX_WINDOW_S = 60.0
MAX_GAP_S = 3.0
TAIL_PAD_S = 0.25  # the last word's release, so a clip does not end on a clipped syllable
TITLE_WORDS = 10


@dataclass(frozen=True)
class Highlight:
    start_ms: int
    end_ms: int
    title: str
    score: float  # 0..1, 1 = best in this video
    text: str
    segment_ids: tuple[int, ...]

    @property
    def start(self) -> float:
        return self.start_ms / 1000

    @property
    def end(self) -> float:
        return self.end_ms / 1000

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["segment_ids"] = list(self.segment_ids)
        return data



def _length_factor(seconds: float) -> float:
    if seconds < MIN_WINDOW_S:
        return 0.6 + 0.4 * seconds / MIN_WINDOW_S
    return 1.0 if seconds <= 40.0 else 0.85


def _position_factor(start: float, end: float, duration: float) -> float:
    if duration <= 0:
        return 1.0
    middle = (start + end) / 2 / duration
    return 1.0 + 0.1 * (abs(middle - 0.5) * 2) ** 2  # up to +10% at the very start or end


def _window_end(sentences: list[Sentence], i: int) -> int:
    """The last sentence of the window that starts at sentence ``i``."""
    j = i
    while sentences[j].end - sentences[i].start < MIN_WINDOW_S and j + 1 < len(sentences):
        nxt = sentences[j + 1]
        if nxt.start - sentences[j].end > MAX_GAP_S or nxt.end - sentences[i].start > MAX_WINDOW_S:
            break
        j += 1
    return j


def rank_highlights(transcript: Transcript, *, duration: float | None = None, limit: int | None = None) -> list[Highlight]:
    """The transcript's highlights in time order (empty when there is no speech).

    ``duration`` (the media's, from probe) bounds every highlight; ``limit`` defaults to about one per two
    minutes, between 1 and 8.
    """
    total = float(duration if duration is not None else transcript.duration)
    sentences = [s for s in split_sentences(transcript) if s.start < total]
    if not sentences or total <= 0:
        return []
    limit = limit if limit is not None else max(1, min(8, round(total / 120) or 1))
    model = SentenceModel(sentences)
    scores = model.scores

    candidates: list[tuple[float, int, int]] = []  # (score, first index, last index)
    for i in range(len(sentences)):
        j = _window_end(sentences, i)
        span = min(sentences[j].end, total) - sentences[i].start
        if span <= 0:
            continue
        spoken = [max(sentences[k].end - sentences[k].start, 1e-3) for k in range(i, j + 1)]
        weighted = sum(float(scores[k]) * d for k, d in zip(range(i, j + 1), spoken)) / sum(spoken)
        score = weighted * _length_factor(span) * _position_factor(sentences[i].start, sentences[j].end, total)
        candidates.append((score, i, j))

    # Best first; ties broken by earlier start so the result is deterministic. The best window of each chapter
    # goes first, so that a video with several topics is not represented by its most quotable one alone.
    candidates.sort(key=lambda c: (-c[0], c[1]))
    starts = chapter_starts(model, total)
    chapter_of = {i: sum(1 for s in starts if s <= i) - 1 for i in range(len(sentences))}
    per_chapter = list({chapter_of[c[1]]: c for c in reversed(candidates)}.values())
    chosen: list[tuple[float, int, int]] = []
    for cand in sorted(per_chapter, key=lambda c: (-c[0], c[1])) + candidates:
        if len(chosen) >= limit:
            break
        if all(cand[2] < c[1] or cand[1] > c[2] for c in chosen):
            chosen.append(cand)
    best = max((c[0] for c in chosen), default=0.0) or 1.0
    # A window of nothing but greetings is no highlight, unless there is nothing else.
    chosen = [c for c in chosen if c[0] >= 0.05 * best] or chosen[:1]
    weights = model.keyword_weights(range(len(sentences)))

    highlights = []
    for score, i, j in sorted(chosen, key=lambda c: c[1]):
        window = sentences[i : j + 1]
        start_ms = max(0, int(window[0].start * 1000))
        tail = window[-1].end + TAIL_PAD_S
        if j + 1 < len(sentences):
            tail = min(tail, max(window[-1].end, sentences[j + 1].start))
        end_ms = min(round(tail * 1000), start_ms + int(MAX_WINDOW_S * 1000), int(total * 1000))
        if end_ms <= start_ms:
            continue
        top = max(range(i, j + 1), key=lambda k: (float(scores[k]), -k))
        highlights.append(
            Highlight(
                start_ms=start_ms,
                end_ms=end_ms,
                title=model.key_phrase(top, weights, max_words=TITLE_WORDS),
                score=round(score / best, 4) if score > 0 else 0.0,
                text=" ".join(s.text for s in window),
                segment_ids=tuple(dict.fromkeys(sid for s in window for sid in s.segment_ids)),
            )
        )
    return highlights

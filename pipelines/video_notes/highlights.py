"""Rank stretches of the transcript into highlights: extractive, deterministic, inside the duration.

Scoring (no model needed):
- each segment gets a keyword-density score: the mean TF-IDF weight of its content words, with segments as
  documents (words said often in one place but rarely elsewhere mark a topic);
- adjacent segments (gap <= 3 s) are grown into windows of 10-60 s;
- a window's score = duration-weighted keyword density x a length factor (favours ~20-40 s, the length of a
  shareable clip) x a small position factor (openings and closings often state the point);
- windows are taken best first without overlap, then returned in time order with scores scaled to 0..1.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.video_notes.transcript import Segment, Transcript

MIN_WINDOW_S = 10.0
MAX_WINDOW_S = 60.0
MAX_GAP_S = 3.0
TITLE_CHARS = 70

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves also like well yeah
    okay oh um uh gonna going get got really thing things know think see say said one two lot let us""".split()
)
_WORD_RE = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)


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


def content_words(text: str) -> list[str]:
    return [w for w in (m.group(0).lower().strip("'-") for m in _WORD_RE.finditer(text)) if len(w) > 2 and w not in STOPWORDS]


def segment_scores(segments: list[Segment]) -> list[float]:
    """Mean TF-IDF weight of each segment's content words (0 for a segment without any)."""
    docs = [content_words(s.text) for s in segments]
    doc_freq = Counter(word for doc in docs for word in set(doc))
    n_docs = len(docs)
    scores = []
    for doc in docs:
        if not doc:
            scores.append(0.0)
            continue
        counts = Counter(doc)
        weight = sum(count * (1.0 + math.log((1 + n_docs) / (1 + doc_freq[w]))) for w, count in counts.items())
        # Density, damped so that one long segment does not beat a dense short one by length alone.
        scores.append(weight / math.sqrt(len(doc)))
    return scores


def _length_factor(seconds: float) -> float:
    if seconds < MIN_WINDOW_S:
        return 0.6 + 0.4 * seconds / MIN_WINDOW_S
    return 1.0 if seconds <= 40.0 else 0.85


def _position_factor(start: float, end: float, duration: float) -> float:
    if duration <= 0:
        return 1.0
    middle = (start + end) / 2 / duration
    return 1.0 + 0.1 * (abs(middle - 0.5) * 2) ** 2  # up to +10% at the very start or end


def _title(text: str) -> str:
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    if len(first) <= TITLE_CHARS:
        return first
    cut = first[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def rank_highlights(transcript: Transcript, *, duration: float | None = None, limit: int | None = None) -> list[Highlight]:
    """The transcript's highlights in time order (empty when there is no speech).

    ``duration`` (the media's, from probe) bounds every highlight; ``limit`` defaults to about one per two
    minutes, between 1 and 8.
    """
    segments = [s for s in transcript.segments if s.text.strip() and s.end > s.start]
    total = float(duration if duration is not None else transcript.duration)
    if not segments or total <= 0:
        return []
    limit = limit if limit is not None else max(1, min(8, round(total / 120) or 1))
    scores = segment_scores(segments)

    candidates: list[tuple[float, int, int]] = []  # (score, first index, last index)
    for i in range(len(segments)):
        j = i
        while True:
            span = segments[j].end - segments[i].start
            if span >= MIN_WINDOW_S or j + 1 >= len(segments):
                break
            nxt = segments[j + 1]
            if nxt.start - segments[j].end > MAX_GAP_S or nxt.end - segments[i].start > MAX_WINDOW_S:
                break
            j += 1
        window = segments[i : j + 1]
        span = min(window[-1].end, total) - window[0].start
        if span <= 0:
            continue
        weighted = sum(scores[k] * (segments[k].end - segments[k].start) for k in range(i, j + 1)) / max(
            sum(s.end - s.start for s in window), 1e-6
        )
        score = weighted * _length_factor(span) * _position_factor(window[0].start, window[-1].end, total)
        candidates.append((score, i, j))

    # Best first; ties broken by earlier start so the result is deterministic.
    candidates.sort(key=lambda c: (-c[0], c[1]))
    chosen: list[tuple[float, int, int]] = []
    for cand in candidates:
        if len(chosen) >= limit:
            break
        if all(cand[2] < c[1] or cand[1] > c[2] for c in chosen):
            chosen.append(cand)
    best = max((c[0] for c in chosen), default=0.0) or 1.0

    highlights = []
    for score, i, j in sorted(chosen, key=lambda c: c[1]):
        window = segments[i : j + 1]
        start_ms = max(0, int(window[0].start * 1000))
        end_ms = min(int(round(min(window[-1].end, MAX_WINDOW_S + window[0].start) * 1000)), int(total * 1000))
        if end_ms <= start_ms:
            continue
        text = " ".join(s.text.strip() for s in window)
        top = max(range(i, j + 1), key=lambda k: (scores[k], -k))
        highlights.append(
            Highlight(
                start_ms=start_ms,
                end_ms=end_ms,
                title=_title(segments[top].text),
                score=round(score / best, 4),
                text=text,
                segment_ids=tuple(s.id for s in window),
            )
        )
    return highlights

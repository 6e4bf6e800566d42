"""Sentences out of a transcript whose segments Whisper cut wherever its 30-second windows ended.

Summaries and highlight titles quote sentences, never segments: the segment text is joined, then split again
at sentence ends. Each sentence keeps the time of its first word (Whisper's word timestamps; without them, a time
interpolated inside its segment), so a ``[mm:ss]`` citation of it lands inside a transcript segment.

Where a sentence ends:
- at ``.``, ``!``, ``?`` (and ``。！？``), unless the word is a known abbreviation ("Mr.", "e.g.") or an initial
  ("J."), or the next word starts in lower case (a decimal such as "3.5" is one word, so it never splits);
- at a comma followed by a clear pause (>= 0.5 s) inside a long sentence: Whisper often drops the full stop
  there;
- where there is no punctuation at all (some models and languages), at pauses between words: a run longer than
  ``MAX_WORDS`` is cut at every long pause, then at its largest gaps until each piece is short enough.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from pipelines.video_notes.transcript import Segment, Transcript

MAX_WORDS = 30  # a "sentence" longer than this was not punctuated: cut it at pauses
MIN_WORDS = 4  # pieces cut at pauses are never shorter than this
LONG_SENTENCE_WORDS = 15  # only sentences longer than this are cut at a comma followed by a pause
COMMA_PAUSE_S = 0.5
PAUSE_S = 0.45
HARD_PAUSE_S = 2.0  # silence this long ends an unpunctuated sentence however short

_TERMINAL = ".!?。！？…"
_CLOSERS = "\"'”’)]»"
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st vs etc e.g i.e cf approx no fig jan feb mar apr jun jul aug sep sept oct nov
    dec inc ltd co corp dept est mt rev gen col lt sgt u.s u.k a.m p.m""".split()  # noqa: SIM905 - a word list reads best as words
)


@dataclass(frozen=True)
class Token:
    raw: str  # the word as it appears in the text, with the whitespace before it
    start: float
    end: float
    segment_id: int

    @property
    def text(self) -> str:
        return self.raw.strip()


@dataclass(frozen=True)
class Sentence:
    index: int
    start: float  # the first word's start: the time to cite
    end: float
    text: str  # verbatim from the transcript
    segment_ids: tuple[int, ...]
    word_count: int


def _segment_tokens(segment: Segment) -> list[Token]:
    """The segment's words with times: Whisper's when they spell the segment's text, interpolated otherwise."""
    pieces = segment.text.split()
    if not pieces:
        return []
    lo, hi = segment.start, max(segment.end, segment.start)
    clamp = lambda t: min(max(t, lo), hi)
    words = [w for w in segment.words if w.word.strip()]
    if words and "".join(w.word for w in words).split() == pieces:
        tokens = [Token(w.word, clamp(w.start), clamp(max(w.end, w.start)), segment.id) for w in words]
    elif words and len(words) == len(pieces):
        tokens = [Token(" " + p, clamp(w.start), clamp(max(w.end, w.start)), segment.id) for p, w in zip(pieces, words)]
    else:
        # No usable word times: spread the words over the segment in proportion to their length.
        total = sum(len(p) + 1 for p in pieces)
        tokens, offset = [], 0
        for piece in pieces:
            start = lo + (hi - lo) * offset / total
            offset += len(piece) + 1
            tokens.append(Token(" " + piece, start, lo + (hi - lo) * offset / total, segment.id))
    if not tokens[0].raw[:1].isspace():
        tokens[0] = Token(" " + tokens[0].raw, tokens[0].start, tokens[0].end, tokens[0].segment_id)
    return tokens


def transcript_tokens(transcript: Transcript) -> list[Token]:
    return [t for s in transcript.segments if s.text.strip() for t in _segment_tokens(s)]


def _ends_sentence(word: str, following: str | None) -> bool:
    core = word.rstrip(_CLOSERS)
    if not core or core[-1] not in _TERMINAL:
        return False
    if core[-1] in "!?。！？…" or following is None:
        return True
    stem = core[:-1].lower().lstrip("(\"'“‘")
    if stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
        return False  # "Mr. Smith", "J. R. R. Tolkien"
    first = following.lstrip("(\"'“‘¿¡")[:1]
    return not first.islower()  # "e.g. this" or a clipped "…and so. on" is no boundary


def _gap(tokens: list[Token], i: int) -> float:
    """The pause before ``tokens[i]``."""
    return max(0.0, tokens[i].start - tokens[i - 1].end)


def _cut_at_pauses(tokens: list[Token]) -> list[list[Token]]:
    """An unpunctuated run: cut at every long pause, then pieces still too long at their largest gaps."""
    gaps = [_gap(tokens, i) for i in range(1, len(tokens))]
    typical = statistics.median(gaps) if gaps else 0.0
    threshold = max(PAUSE_S, 2.5 * typical)
    pieces: list[list[Token]] = [[tokens[0]]]
    for i in range(1, len(tokens)):
        gap = _gap(tokens, i)
        if gap >= HARD_PAUSE_S or (gap >= threshold and len(pieces[-1]) >= MIN_WORDS and len(tokens) - i >= MIN_WORDS):
            pieces.append([])
        pieces[-1].append(tokens[i])
    out: list[list[Token]] = []
    for piece in pieces:
        out.extend(_bisect(piece))
    return out


def _bisect(tokens: list[Token]) -> list[list[Token]]:
    if len(tokens) <= MAX_WORDS:
        return [tokens]
    middle = len(tokens) / 2

    def cut_quality(i: int) -> tuple[float, float]:
        comma = 0.3 if tokens[i - 1].text[-1:] in ",;:" else 0.0
        segment_end = 0.2 if tokens[i - 1].segment_id != tokens[i].segment_id else 0.0
        return (_gap(tokens, i) + comma + segment_end, -abs(i - middle))  # longest pause, then nearest the middle

    best = max(range(MIN_WORDS, len(tokens) - MIN_WORDS + 1), key=cut_quality)
    return _bisect(tokens[:best]) + _bisect(tokens[best:])


def _cut_at_comma_pauses(tokens: list[Token]) -> list[list[Token]]:
    if len(tokens) <= LONG_SENTENCE_WORDS:
        return [tokens]
    pieces: list[list[Token]] = [[tokens[0]]]
    for i in range(1, len(tokens)):
        if (tokens[i - 1].text[-1:] in ",;:" and _gap(tokens, i) >= COMMA_PAUSE_S
                and len(pieces[-1]) >= MIN_WORDS + 1 and len(tokens) - i >= MIN_WORDS + 1):
            pieces.append([])
        pieces[-1].append(tokens[i])
    return pieces


def _sentence(index: int, tokens: list[Token]) -> Sentence:
    text = "".join(t.raw for t in tokens).strip()
    if text[-1:] in ",;:":
        text = text[:-1]  # cut at a pause after a comma: the quote ends there
    segment_ids = tuple(dict.fromkeys(t.segment_id for t in tokens))
    return Sentence(index, tokens[0].start, max(t.end for t in tokens), text, segment_ids, len(tokens))


def split_sentences(transcript: Transcript) -> list[Sentence]:
    """The transcript's sentences in time order (empty when there is no speech)."""
    tokens = transcript_tokens(transcript)
    runs: list[list[Token]] = []
    current: list[Token] = []
    for i, token in enumerate(tokens):
        current.append(token)
        following = tokens[i + 1].text if i + 1 < len(tokens) else None
        if _ends_sentence(token.text, following):
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    pieces: list[list[Token]] = []
    for run in runs:
        for part in _cut_at_comma_pauses(run):
            pieces.extend(_cut_at_pauses(part) if len(part) > MAX_WORDS else [part])
    return [_sentence(i, piece) for i, piece in enumerate(pieces)]

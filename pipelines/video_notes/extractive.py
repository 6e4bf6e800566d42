"""Extractive scoring of transcript sentences: which to quote, which keywords name a stretch, where topics change.

No model: TF-IDF over sentences (each sentence a document) with light stemming.
- A sentence's score blends its centrality (mean cosine similarity to the other sentences: TextRank-lite, the
  sentences that share most vocabulary with the rest carry the main thread) with its informativeness (summed IDF of
  its content words, damped by length), times a length factor (fragments like "Banana." say little) and a filler
  factor (greetings and sign-offs: "Hello.", "Thanks for watching").
- Keywords are content words and repeated two-word phrases, weighted by frequency (and, for chapters, by how
  specific they are to the chapter).
- Chapters start at the deepest drops in similarity between the sentences before and after a point (TextTiling),
  helped by long pauses, never shorter than a minimum that grows with the video's duration.
Everything is deterministic: ties break on time order.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from pipelines.video_notes.sentences import Sentence

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    also like well yeah okay oh um uh gonna going get got really thing things know think see say said one two
    lot let us maybe actually basically kind sort way want need make made much many even still back right
    little bit something anything everything else every another often always never sure pretty quite able via
    yes use used using uses including""".split()  # noqa: SIM905 - a word list reads best as words
)
# Words of greeting and sign-off: a sentence made of little else is filler, and they never name a topic.
FILLER_WORDS = frozenset(
    """hello hi hey welcome thanks thank watching subscribe everyone everybody guys bye goodbye cheers folks
    morning afternoon evening today video channel""".split()  # noqa: SIM905 - a word list reads best as words
)
_FILLER_ONLY = frozenset({"hello", "hi", "hey", "thanks", "thank", "bye", "goodbye", "cheers"})
# Edmundson's cue words: sentences that announce the topic or the takeaway.
_CUE_RE = re.compile(
    r"\b(?:this (?:is|video|talk|lecture|episode|tutorial|course|session)|in this (?:video|talk|lecture|episode|"
    r"tutorial|course|session)|today (?:we|i)|we(?:'ll| will| are going to) (?:talk|look|learn|discuss|cover|see)|"
    r"(?:talk|lecture|video|episode) (?:is )?about|in (?:summary|short|conclusion)|to (?:conclude|summari[sz]e)|"
    r"the (?:main|key|most important) (?:point|idea|thing|takeaway)|(?:important|remember) (?:is|that))\b",
    re.IGNORECASE,
)
LEAD_FRACTION = 0.1  # sentences in the first tenth of the talk often state its subject
_WORD_RE = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_CLAUSE_RE = re.compile(r"\s*(?:[,;:()]|\s[-–—]\s|[–—])\s*")


def words_of(text: str) -> list[str]:
    return [m.group(0).lower().replace("’", "'").strip("'-") for m in _WORD_RE.finditer(text)]


def is_content(word: str) -> bool:
    return len(word) > 2 and word not in STOPWORDS and "'" not in word


def content_words(text: str) -> list[str]:
    return [w for w in words_of(text) if is_content(w)]


def stem(word: str) -> str:
    """Plural and possessive endings only: enough to join "parser" and "parsers" without mangling names."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith(("ches", "shes", "xes", "sses", "zzes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class SentenceModel:
    """TF-IDF vectors, scores and keywords of one transcript's sentences."""

    def __init__(self, sentences: Sequence[Sentence]):
        self.sentences = list(sentences)
        self.surface: dict[str, Counter[str]] = defaultdict(Counter)  # stem or phrase -> spoken forms
        self.units: list[list[str]] = []  # per sentence: content stems and repeated phrases, in order
        stems_per_sentence = []
        for s in self.sentences:
            stems = []
            for word in content_words(s.text):
                key = stem(word)
                self.surface[key][word] += 1
                stems.append(key)
            stems_per_sentence.append(stems)
        self.stems = stems_per_sentence
        self._phrases()
        n = len(self.sentences)
        vocab = {w: i for i, w in enumerate(sorted({w for doc in self.stems for w in doc}))}
        df = Counter(w for doc in self.stems for w in set(doc))
        self.idf = {w: 1.0 + math.log((1 + n) / (1 + df[w])) for w in vocab}
        matrix = np.zeros((n, max(1, len(vocab))))
        for row, doc in enumerate(self.stems):
            for word, count in Counter(doc).items():
                matrix[row, vocab[word]] = (1.0 + math.log(count)) * self.idf[word]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.vectors = matrix / np.where(norms == 0, 1.0, norms)
        self.similarity = self.vectors @ self.vectors.T
        np.fill_diagonal(self.similarity, 0.0)
        self.scores = self._score()

    def _phrases(self) -> None:
        """Adjacent content words said together at least twice ("syntax tree") become one keyword unit."""
        pairs: Counter[str] = Counter()
        adjacent_per_sentence = []
        for s in self.sentences:
            words = words_of(s.text)
            found = [f"{stem(a)} {stem(b)}" for a, b in pairwise(words) if is_content(a) and is_content(b)]
            for a, b in pairwise(words):
                if is_content(a) and is_content(b):
                    self.surface[f"{stem(a)} {stem(b)}"][f"{a} {b}"] += 1
            adjacent_per_sentence.append(found)
            pairs.update(found)
        self.phrase_counts = {p: c for p, c in pairs.items() if c >= 2}
        self.units = [
            stems + [p for p in found if p in self.phrase_counts] for stems, found in zip(self.stems, adjacent_per_sentence)
        ]

    def _score(self) -> np.ndarray:
        n = len(self.sentences)
        if n == 0:
            return np.zeros(0)
        centrality = _pagerank(self.similarity)
        info = np.array([
            sum(self.idf[w] for w in set(doc) if w not in FILLER_WORDS) / math.sqrt(max(s.word_count, 6))
            for s, doc in zip(self.sentences, self.stems)
        ])
        # Centrality means little among a handful of sentences: trust it fully from about 20 of them.
        trust = 0.5 * min(1.0, n / 20)
        scores = trust * _unit(centrality) + (1 - trust) * _unit(info)
        end = max(s.end for s in self.sentences) or 1.0
        factors = np.array([
            _length_factor(s.word_count) * self._filler_factor(i)
            * (1.25 if _CUE_RE.search(s.text) else 1.0) * (1.15 if s.start <= LEAD_FRACTION * end else 1.0)
            for i, s in enumerate(self.sentences)
        ])
        return scores * factors

    def _filler_factor(self, index: int) -> float:
        words = words_of(self.sentences[index].text)
        topical = [w for w in self.stems[index] if w not in FILLER_WORDS]
        if not topical:
            return 0.0 if not self.stems[index] or set(words) & _FILLER_ONLY else 0.3
        if len(topical) <= 1 and set(words) & FILLER_WORDS:
            return 0.2  # "Thanks for watching the show."
        return 1.0

    def is_filler(self, index: int) -> bool:
        return self._filler_factor(index) < 1.0

    # -- keywords -----------------------------------------------------------------------------------------------
    def keyword_weights(self, indices: Sequence[int], others: Sequence[Sequence[int]] = ()) -> dict[str, float]:
        """Keyword units of the given sentences, weighted by frequency (x specificity when ``others`` are given)."""
        counts: Counter[str] = Counter(u for i in indices for u in self.units[i] if u.split()[0] not in FILLER_WORDS)
        weights = {}
        for unit, count in counts.items():
            weight = float(count) * (1.5 if " " in unit else 1.0)
            if others:
                spread = sum(1 for group in others if any(unit in self.units[i] for i in group))
                weight *= math.log((2 + len(others)) / (1 + spread))
            weights[unit] = weight
        return weights

    def display(self, unit: str) -> str:
        return self.surface[unit].most_common(1)[0][0] if self.surface.get(unit) else unit

    def top_keywords(self, indices: Sequence[int], limit: int, *, max_words: int | None = None,
                     others: Sequence[Sequence[int]] = ()) -> list[str]:
        """The best keyword units, as spoken: a phrase replaces its own words, ties go to the earlier mention."""
        weights = self.keyword_weights(indices, others)
        first_seen: dict[str, int] = {}
        for i in indices:
            for position, unit in enumerate(self.units[i]):
                first_seen.setdefault(unit, i * 1000 + position)
        ranked = sorted(weights, key=lambda u: (-weights[u], first_seen[u]))
        chosen: list[str] = []
        used_words: set[str] = set()
        for unit in ranked:
            parts = set(unit.split())
            if parts & used_words:
                continue
            if max_words is not None and sum(len(c.split()) for c in chosen) + len(parts) > max_words:
                continue
            chosen.append(unit)
            used_words |= parts
            if len(chosen) >= limit:
                break
        return [self.display(u) for u in chosen]

    def key_phrase(self, index: int, weights: dict[str, float], max_words: int = 10) -> str:
        """The densest clause of a sentence (or the whole of a short one), verbatim but for its edges."""
        text = self.sentences[index].text.strip()
        candidates = [text] + [c for c in _CLAUSE_RE.split(text) if c]

        def density(clause: str) -> float:
            words = words_of(clause)
            units = {stem(w) for w in words if is_content(w)}
            gain = sum(weights.get(u, 0.0) + 0.5 * self.idf.get(u, 0.0) for u in units if u not in FILLER_WORDS)
            return gain / math.sqrt(max(len(words), 6))  # short clauses are not favoured below six words

        fitting = [c for c in candidates if 3 <= len(words_of(c)) <= max_words and density(c) > 0]
        if fitting:
            best = max(fitting, key=lambda c: (density(c), len(c) == len(text), -candidates.index(c)))
        else:
            best = _window(text, max_words)
        return _tidy(best)


def _window(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]).rstrip(",;:") + "…"


def _tidy(phrase: str) -> str:
    phrase = phrase.strip().rstrip(".,;:!?。").strip()
    return phrase[:1].upper() + phrase[1:]


def _pagerank(similarity: np.ndarray, damping: float = 0.85, iterations: int = 50) -> np.ndarray:
    """TextRank: a sentence is central when sentences like it are central. A sentence sharing no words with any
    other keeps the teleport share, so in a short transcript one lucky overlap does not dwarf everything else."""
    n = similarity.shape[0]
    out_weight = similarity.sum(axis=1, keepdims=True)
    transition = np.where(out_weight > 0, similarity / np.where(out_weight == 0, 1.0, out_weight), 1.0 / n)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1 - damping) / n + damping * (transition.T @ rank)
        if np.abs(updated - rank).sum() < 1e-9:
            return updated
        rank = updated
    return rank


def _unit(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else values


def _length_factor(word_count: int) -> float:
    if word_count <= 3:
        return 0.15
    if word_count > 45:
        return 0.85
    return min(1.0, 0.5 + word_count / 16)


def title_case(phrase: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in phrase.split())


# -- chapters ---------------------------------------------------------------------------------------------------
def min_chapter_seconds(duration: float) -> float:
    """One chapter under two minutes; about one per minute and a half at most on longer videos."""
    return max(60.0, duration / 12)


MAX_SEGMENTATION_UNITS = 400  # longer transcripts are segmented in blocks of adjacent sentences


def chapter_starts(model: SentenceModel, duration: float) -> list[int]:
    """Indices of the sentences that open a chapter (always starting with 0).

    Contiguous segmentation by dynamic programming: with K chapters, maximise the summed cohesion of the
    chapters, a chapter's cohesion being |sum of its sentence vectors|^2 / its sentence count (k-means on
    normalised TF-IDF vectors, held to time order). Splitting a stretch on one topic gains about (1 - mean
    similarity) by chance; splitting two topics gains that plus (sentences per side x the similarity lost). A
    chapter is added only while its gain is at least 2.25 times the chance level, and no chapter is shorter than
    :func:`min_chapter_seconds`. A long pause before a sentence adds a little to opening a chapter there.
    """
    sentences = model.sentences
    n = len(sentences)
    min_len = min_chapter_seconds(duration)
    max_chapters = max(1, min(12, int(duration // min_len)))
    if n < 6 or max_chapters < 2:
        return [0] if n else []
    size = max(1, math.ceil(n / MAX_SEGMENTATION_UNITS))
    firsts = list(range(0, n, size))  # the first sentence of each unit
    vectors = np.add.reduceat(model.vectors, firsts, axis=0)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    starts = np.array([sentences[i].start for i in firsts])
    pauses = np.array([0.0] + [max(0.0, sentences[i].start - sentences[i - 1].end) for i in firsts[1:]])
    m = len(firsts)

    gram = vectors @ vectors.T
    prefix = np.zeros((m + 1, m + 1))
    prefix[1:, 1:] = gram.cumsum(axis=0).cumsum(axis=1)
    a, b = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    block = prefix[b, b] - prefix[a, b] - prefix[b, a] + prefix[a, a]
    opens = np.append(starts, starts[-1])
    closes_at = np.where(b < m, opens[np.minimum(b, m)], duration)
    allowed = (b > a) & (closes_at - opens[np.minimum(a, m - 1)] >= min_len)
    bonus = np.minimum(1.0, 0.25 * np.maximum(0.0, pauses - 1.0))
    bonus[0] = 0.0
    cohesion = np.where(allowed, block / np.maximum(b - a, 1) + np.append(bonus, 0.0)[a], -np.inf)

    off_diagonal = (gram.sum() - np.trace(gram)) / max(1, m * (m - 1))
    needed_gain = 2.25 * max(0.2, 1.0 - off_diagonal)
    best = cohesion[0].copy()  # best[j]: the best total for units [0, j) in the current number of chapters
    backs: list[np.ndarray] = []
    total = best[m]
    for _ in range(2, max_chapters + 1):
        candidates = best[:, None] + cohesion
        back, best_next = candidates.argmax(axis=0), candidates.max(axis=0)
        if not np.isfinite(best_next[m]) or best_next[m] - total < needed_gain:
            break
        backs.append(back)
        best, total = best_next, best_next[m]
    cuts, end = [], m
    for back in reversed(backs):
        end = int(back[end])
        cuts.append(end)
    return [0] + [firsts[c] for c in sorted(cuts)]


def is_topic_statement(text: str) -> bool:
    """"This talk is about ...", "In this video we ...", "To conclude, ...": a cue that the sentence states a point."""
    return _CUE_RE.search(text) is not None

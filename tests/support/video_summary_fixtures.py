"""Transcripts shaped like faster-whisper's for the extractive summary tests: word timings, segments cut mid-sentence."""

from __future__ import annotations

import random
import re

from pipelines.video_notes.transcript import Segment, Transcript, Word

SAMPLE_SPEECH = (
    "Hello. This is an example video for your convenience and pleasure. You are allowed to use this voice for any "
    "purpose, including commercial uses, on the bottom right you can see the time. When the time reaches 40 seconds, "
    "I will say banana. Banana."
)

TOPICS = {
    "bread": ["sourdough", "starter", "flour", "dough", "oven", "crust", "hydration", "yeast", "kneading", "loaf",
              "proofing", "gluten"],
    "bicycle": ["bicycle", "chain", "gears", "brakes", "tyres", "derailleur", "spokes", "saddle", "pedals", "wheel",
                "cassette", "handlebars"],
    "astronomy": ["telescope", "planets", "orbit", "jupiter", "moons", "galaxy", "stars", "nebula", "eclipse",
                  "saturn", "comet", "observatory"],
}
_TEMPLATES = [
    "The {a} matters more than people expect when you work with the {b} and the {c}.",
    "Next we check the {a}, then we adjust the {b} and look at the {c} again.",
    "A common mistake is to ignore the {a} while the {b} and the {c} change.",
    "You can see how the {a} affects the {b}, and the {c} shows it too.",
    "Most beginners learn about the {a} before they understand the {b} or the {c}.",
    "When the {a} is ready, the {b} follows, and after that the {c}.",
    "Experts compare the {a} with the {b} to decide what the {c} needs.",
    "So the {a} and the {b} belong together, which is why the {c} is here.",
    "Remember that the {a} depends on the {b} more than on the {c}.",
    "Here the {a} is small, the {b} is large and the {c} sits between them.",
    "If the {a} fails, look at the {b} first and at the {c} second.",
    "Notice how quickly the {a} reacts once the {b} touches the {c}.",
]


def words_with_times(text: str, start: float, *, rate: float = 0.36, pause_after: dict[int, float] | None = None,
                     sentence_pause: float = 0.5) -> list[Word]:
    """Whisper-like words (leading space, times) for ``text``: a pause after each sentence end, extra where asked."""
    words, t = [], start
    for index, token in enumerate(text.split()):
        duration = rate + 0.02 * len(token)
        words.append(Word(round(t, 2), round(t + duration, 2), " " + token, 0.95))
        t += duration
        if re.search(r"[.!?]$", token):
            t += sentence_pause
        t += (pause_after or {}).get(index, 0.0)
    return words


def cut_like_whisper(words: list[Word], cut_after: list[int]) -> tuple[Segment, ...]:
    """Segments ending after the given word indices, wherever those fall in a sentence."""
    segments, first = [], 0
    for number, last in enumerate([*cut_after, len(words) - 1]):
        chunk = words[first : last + 1]
        if chunk:
            segments.append(Segment(number, chunk[0].start, chunk[-1].end, "".join(w.word for w in chunk), tuple(chunk)))
        first = last + 1
    return tuple(segments)


# Word start/end times faster-whisper (base, beam 5) gave for the bundled example.mp4, and where it cut segments.
_SAMPLE_WORD_TIMES = [
    (0.0, 0.48), (1.16, 1.48), (1.48, 1.66), (1.66, 1.86), (1.86, 2.4), (2.4, 2.82), (2.82, 3.12), (3.12, 3.34),
    (3.34, 3.8), (3.8, 4.16), (4.16, 4.56), (5.06, 5.28), (5.28, 5.5), (5.5, 5.9), (5.9, 6.22), (6.22, 6.5),
    (6.5, 6.8), (6.8, 7.14), (7.14, 7.48), (7.48, 7.72), (7.72, 8.2), (8.44, 8.92), (8.92, 9.6), (9.6, 10.08),
    (10.7, 10.82), (10.82, 10.96), (10.96, 11.24), (11.24, 11.58), (11.58, 11.9), (11.9, 12.06), (12.06, 12.34),
    (12.34, 12.5), (12.5, 12.84), (13.7, 14.06), (14.06, 14.24), (14.24, 14.48), (14.48, 14.84), (14.84, 15.32),
    (15.32, 15.84), (16.1, 16.2), (16.2, 16.34), (16.34, 16.62), (16.62, 17.0), (39.76, 40.3),
]
_SAMPLE_SEGMENT_LAST_WORDS = [17, 32]  # "...use this voice" | "for any purpose, ... see the time." | the rest


def sample_transcript(*, with_words: bool = True) -> Transcript:
    """The bundled example.mp4 as Whisper hears it: three segments, the first cut mid-sentence."""
    tokens = SAMPLE_SPEECH.split()
    assert len(tokens) == len(_SAMPLE_WORD_TIMES)
    words = [Word(start, end, " " + token, 0.95) for token, (start, end) in zip(tokens, _SAMPLE_WORD_TIMES)]
    segments = cut_like_whisper(words, _SAMPLE_SEGMENT_LAST_WORDS)
    if not with_words:
        segments = tuple(Segment(s.id, s.start, s.end, s.text) for s in segments)
    return Transcript(language="en", language_probability=0.99, duration=42.411, model="base", segments=segments)


def lecture_transcript(seed: int = 7, sentences_per_topic: int = 28) -> tuple[Transcript, list[float]]:
    """Three topics back to back (bread, bicycles, astronomy) and the times where topics two and three begin."""
    rng = random.Random(seed)
    text_parts, boundaries_at = [], []
    for topic_index, vocabulary in enumerate(TOPICS.values()):
        if topic_index:
            boundaries_at.append(len(" ".join(text_parts).split()))
        for _ in range(sentences_per_topic):
            a, b, c = rng.sample(vocabulary, 3)
            text_parts.append(rng.choice(_TEMPLATES).format(a=a, b=b, c=c))
    text = " ".join(text_parts)
    words = words_with_times(text, 1.0)
    boundary_times = [words[i].start for i in boundaries_at]
    # Whisper cuts roughly every 25 words, not at sentence ends.
    segments = cut_like_whisper(words, list(range(24, len(words) - 1, 25)))
    return Transcript(language="en", language_probability=0.99, duration=words[-1].end + 2.0,
                      segments=segments, model="base"), boundary_times

"""The offline extractive Summary.md and highlight titles: sentences (not Whisper's segments), honest quotes,
real citations, chapters at topic changes."""

from __future__ import annotations

import re

import pytest

from pipelines.video_notes.extractive import SentenceModel, chapter_starts
from pipelines.video_notes.highlights import rank_highlights
from pipelines.video_notes.sentences import split_sentences
from pipelines.video_notes.summary import (
    build_summary,
    cited_timestamps_exist,
    key_point_count,
)
from pipelines.video_notes.transcript import Segment, Transcript, Word
from tests.support.video_summary_fixtures import (
    SAMPLE_SPEECH,
    lecture_transcript,
    sample_transcript,
)


def _section(markdown: str, heading: str) -> list[str]:
    """The non-empty lines under ``## heading`` up to the next heading."""
    body = markdown.split(f"## {heading}\n", 1)[1]
    return [line for line in re.split(r"\n#{2,3} ", body, maxsplit=1)[0].splitlines() if line.strip()]


def _strip_citations(line: str) -> str:
    return re.sub(r"\s*\[\d{1,2}:\d{2}\]", "", line).removeprefix("- ").strip()


def _unpunctuated(transcript: Transcript, *, keep_words: bool = True) -> Transcript:
    """What a model without punctuation would give: lower case, no marks."""
    segments = []
    for s in transcript.segments:
        words = tuple(Word(w.start, w.end, re.sub(r"[^\w\s']", "", w.word).lower(), w.probability) for w in s.words)
        segments.append(Segment(s.id, s.start, s.end, "".join(w.word for w in words), words if keep_words else ()))
    return Transcript(transcript.language, transcript.language_probability, transcript.duration, tuple(segments),
                      transcript.model)


# -- sentences --------------------------------------------------------------------------------------------------
def test_sentences_rejoin_segments_cut_mid_sentence_and_keep_first_word_times():
    sentences = split_sentences(sample_transcript())
    assert [s.text for s in sentences] == [
        "Hello.",
        "This is an example video for your convenience and pleasure.",
        # Whisper dropped the full stop here; the 0.6 s pause after the comma marks the break.
        "You are allowed to use this voice for any purpose, including commercial uses",
        "on the bottom right you can see the time.",
        "When the time reaches 40 seconds, I will say banana.",
        "Banana.",
    ]
    assert [s.start for s in sentences] == [0.0, 1.16, 5.06, 10.7, 13.7, 39.76]
    assert sentences[2].segment_ids == (0, 1)  # spans Whisper's first cut
    assert " ".join(s.text for s in sentences).replace("uses on", "uses, on") == SAMPLE_SPEECH


def test_abbreviations_decimals_and_question_marks():
    text = ("Mr. Smith measured 3.5 litres, e.g. in the lab. Did it work? Yes! Dr. Jones agreed with J. R. Tolkien. "
            "The end")
    transcript = Transcript("en", 0.9, 20.0, (Segment(0, 0.0, 20.0, text),))
    assert [s.text for s in split_sentences(transcript)] == [
        "Mr. Smith measured 3.5 litres, e.g. in the lab.", "Did it work?", "Yes!",
        "Dr. Jones agreed with J. R. Tolkien.", "The end",
    ]


def test_without_word_times_sentence_times_are_interpolated_inside_their_segment():
    transcript = sample_transcript(with_words=False)
    sentences = split_sentences(transcript)
    assert [s.text for s in sentences][:2] == ["Hello.", "This is an example video for your convenience and pleasure."]
    for sentence in sentences:
        segment = next(s for s in transcript.segments if s.id == sentence.segment_ids[0])
        assert segment.start <= sentence.start <= segment.end


def test_no_punctuation_falls_back_to_pauses_between_words():
    sentences = split_sentences(_unpunctuated(sample_transcript()))
    assert [s.text for s in sentences] == [
        "hello this is an example video for your convenience and pleasure",
        "you are allowed to use this voice for any purpose including commercial uses",
        "on the bottom right you can see the time",
        "when the time reaches 40 seconds i will say banana",
        "banana",  # after 22 s of silence
    ]
    lecture = _unpunctuated(lecture_transcript(sentences_per_topic=4)[0], keep_words=False)
    pieces = split_sentences(lecture)
    assert len(pieces) > 3 and all(4 <= s.word_count <= 30 for s in pieces)  # no pauses known: bounded pieces


# -- summary ----------------------------------------------------------------------------------------------------
def test_sample_summary_quotes_whole_sentences_with_real_citations():
    transcript = sample_transcript()
    result = build_summary(transcript, rank_highlights(transcript))
    markdown = result.markdown
    assert result.method == "extractive" and "Extractive summary" in markdown and "No language model" in markdown
    assert cited_timestamps_exist(markdown, transcript) == []
    title = markdown.splitlines()[0]
    assert title == "# This is an example video for your convenience and pleasure"
    sentences = {s.text[:1].upper() + s.text[1:] for s in split_sentences(transcript)}
    key_points = _section(markdown, "Key points")
    assert len(key_points) == key_point_count(transcript.duration) == 3
    assert all(_strip_citations(point) in sentences for point in key_points)  # whole sentences, verbatim
    assert not any("Hello" in point or point.startswith("- Banana") for point in key_points)
    overview = _section(markdown, "Overview")
    assert overview == ["This is an example video for your convenience and pleasure. [00:01]"]
    assert not any(_strip_citations(p) in overview[0] for p in key_points)  # no sentence said twice
    assert _section(markdown, "Chapters") == ["- [00:00] Time, Banana, Example"]  # 42 s: one chapter


def test_highlight_titles_are_key_phrases_not_greetings():
    transcript = sample_transcript()
    highlights = rank_highlights(transcript)
    assert len(highlights) == 1 and highlights[0].title != "Hello."
    assert highlights[0].text.startswith("Hello. This is an example video")  # starts on a sentence boundary
    assert highlights[0].segment_ids == (0, 1)
    assert highlights[0].title in highlights[0].text
    lecture, _ = lecture_transcript()
    for highlight in rank_highlights(lecture):
        words = highlight.title.rstrip("…").split()
        assert 3 <= len(words) <= 10 and highlight.title.rstrip("…").lower() in highlight.text.lower()


def test_lecture_with_three_topics_gets_three_chapters_at_the_boundaries():
    lecture, boundaries = lecture_transcript()
    result = build_summary(lecture, rank_highlights(lecture))
    chapters = _section(result.markdown, "Chapters")
    assert len(chapters) == 3
    starts = [int(m) * 60 + int(s) for m, s in (re.match(r"- \[(\d+):(\d+)\]", c).groups() for c in chapters)]
    assert starts[0] <= 1 and all(abs(a - b) <= 10 for a, b in zip(starts[1:], boundaries))
    names = [c.split("] ", 1)[1] for c in chapters]
    vocabularies = [{"sourdough", "starter", "flour", "dough", "oven", "crust", "hydration", "yeast", "kneading",
                     "loaf", "proofing", "gluten"},
                    {"bicycle", "chain", "gears", "brakes", "tyres", "derailleur", "spokes", "saddle", "pedals",
                     "wheel", "cassette", "handlebars"},
                    {"telescope", "planets", "orbit", "jupiter", "moons", "galaxy", "stars", "nebula", "eclipse",
                     "saturn", "comet", "observatory"}]
    for name, vocabulary in zip(names, vocabularies):
        words = name.replace(",", "").split()
        assert 2 <= len(words) <= 4 and all(w[0].isupper() for w in words)
        assert {w.lower() for w in words} <= vocabulary, name
    # Key points and highlights come from every topic; the title names the topics rather than one sentence.
    key_points = _section(result.markdown, "Key points")
    assert len(key_points) == key_point_count(lecture.duration) == 7
    times = [int(m) * 60 + int(s) for m, s in (re.search(r"\[(\d+):(\d+)\]", p).groups() for p in key_points)]
    assert times == sorted(times) and all(any(b0 <= t < b1 for t in times)
                                          for b0, b1 in zip([0, *boundaries], [*boundaries, 10_000]))
    assert result.markdown.startswith("# Notes: ")
    assert cited_timestamps_exist(result.markdown, lecture) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_chapter_boundaries_are_stable_across_lectures(seed):
    lecture, boundaries = lecture_transcript(seed=seed)
    model = SentenceModel(split_sentences(lecture))
    starts = [model.sentences[i].start for i in chapter_starts(model, lecture.duration)]
    assert len(starts) == 3 and all(abs(a - b) <= 10 for a, b in zip(starts[1:], boundaries))


def test_one_topic_lecture_is_one_chapter_and_short_videos_never_split():
    lecture, boundaries = lecture_transcript(sentences_per_topic=28)
    first_topic = Transcript("en", 0.9, boundaries[0], tuple(s for s in lecture.segments if s.end < boundaries[0]))
    model = SentenceModel(split_sentences(first_topic))
    assert chapter_starts(model, first_topic.duration) == [0]
    short, _ = lecture_transcript(sentences_per_topic=3)  # three topics in about a minute: too short to chapter
    short_model = SentenceModel(split_sentences(short))
    assert chapter_starts(short_model, short.duration) == [0]


def test_key_point_count_scales_with_duration():
    assert [key_point_count(s) for s in (20, 60, 600, 3600, 6 * 3600)] == [3, 3, 7, 10, 10]


def test_unpunctuated_summary_is_still_sentences_with_valid_citations():
    transcript = _unpunctuated(sample_transcript())
    markdown = build_summary(transcript, rank_highlights(transcript)).markdown
    assert cited_timestamps_exist(markdown, transcript) == []
    assert "Hello this is an example video" in markdown.splitlines()[0]
    assert "- When the time reaches 40 seconds i will say banana [00:13]" in markdown


def test_deterministic_and_music_only_unchanged():
    lecture, _ = lecture_transcript()
    assert build_summary(lecture).markdown == build_summary(lecture).markdown
    assert rank_highlights(lecture) == rank_highlights(lecture)
    music = Transcript("en", 0.5, 30.0, (Segment(0, 0.0, 30.0, "   "),))
    result = build_summary(music)
    assert result.method == "no_speech" and "No speech was detected" in result.markdown
    assert rank_highlights(music) == [] and split_sentences(music) == []
    greeting = Transcript("en", 0.9, 3.0, (Segment(0, 0.0, 1.0, " Hello."),))
    only = build_summary(greeting, rank_highlights(greeting)).markdown
    assert "Hello." in only and cited_timestamps_exist(only, greeting) == []

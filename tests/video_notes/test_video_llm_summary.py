"""The language-model summary under bad answers, refusals and long transcripts.

Over real HTTP with the local OpenAI-compatible emulator where the endpoint's behaviour matters (a refusal, the
request's size); with a scripted chat object where only the answer's content does.
"""

from __future__ import annotations

import json

from pipelines.video_notes.citations import parse_clock, strip_invalid_citations
from pipelines.video_notes.summary import build_summary, cited_timestamps_exist
from pipelines.video_notes.summary_llm import transcript_lines
from pipelines.video_notes.transcript import Segment, Transcript
from resources.llm import LLM
from tests.support.video_fixtures import ChatEmulator


def _talk(count: int = 6, seconds: float = 10.0) -> Transcript:
    texts = ["Compilers turn source code into machine code.", "Parsing builds a syntax tree from tokens.",
             "Type checking rejects programs that misuse values.", "Optimisation removes redundant work.",
             "Code generation picks instructions for the target.", "Linking joins the pieces into a program."]
    segments = tuple(Segment(i, i * seconds, i * seconds + seconds - 2, f"{texts[i % len(texts)]} Part {i}.")
                     for i in range(count))
    return Transcript("en", 0.9, count * seconds, segments, "base")


class Scripted:
    """A chat model that answers what the test says."""

    model_name = "scripted"

    def __init__(self, answer: object) -> None:
        self.answer = answer if isinstance(answer, str) else json.dumps(answer)
        self.messages: list[dict[str, str]] = []

    def complete(self, messages):
        self.messages = messages
        return self.answer


def test_invented_citations_in_free_text_are_removed_and_listed():
    transcript = _talk()
    chat = Scripted({"title": "Compilers [99:00]", "overview": "See [45:00] for more; parsing at [00:10].",
                     "key_points": [{"text": "A point [33:33] about parsing", "timestamps": ["00:10", "44:44"]},
                                    {"text": "Only invented", "timestamps": ["50:00"]}],
                     "chapters": [{"start": "00:00", "title": "Start [12:34]"}, {"start": "77:00", "title": "Gone"}]})
    result = build_summary(transcript, chat=chat)
    assert result.method == "llm" and cited_timestamps_exist(result.markdown, transcript) == []
    assert sorted(result.dropped_citations) == sorted(
        ["[99:00]", "[45:00]", "[33:33]", "[44:44]", "[50:00]", "[12:34]", "[77:00]"])
    assert "See for more; parsing at [00:10]." in result.markdown
    assert "- A point about parsing [00:10]" in result.markdown and "Only invented" not in result.markdown
    assert "- [00:00] Start\n" in result.markdown and "Gone" not in result.markdown
    assert result.markdown.startswith("# Compilers\n")


def test_strip_invalid_citations_keeps_valid_ones_in_canonical_form():
    transcript = _talk()
    dropped: list[str] = []
    assert strip_invalid_citations("[0:10] then [9:59:00] end", transcript, dropped) == "[00:10] then end"
    assert dropped == ["[9:59:00]"]
    assert strip_invalid_citations("no citations", transcript, dropped) == "no citations"


def test_answers_of_the_wrong_shape_fall_back_to_the_extractive_summary_with_a_note():
    transcript = _talk()
    for answer, reason in [
        ({"title": "T", "overview": "o", "key_points": ["a string point"], "chapters": []}, "key_points.0"),
        ({"title": ["not", "text"], "overview": "o"}, "title"),
        ("I cannot help with that.", "no JSON object"),
        ('{"title": "T", "overview": ', "no JSON object"),
        ('{"title": "T" "overview": "x"}', "not valid JSON"),
    ]:
        result = build_summary(transcript, chat=Scripted(answer))
        assert result.method == "extractive" and result.model == "scripted" and result.prompt_version, answer
        assert any(reason in note for note in result.notes), (answer, result.notes)
        assert "Extractive summary" in result.markdown and "`scripted` was configured but not used" in result.markdown
        assert cited_timestamps_exist(result.markdown, transcript) == []


def test_a_single_timestamp_string_still_counts_as_a_citation():
    transcript = _talk()
    result = build_summary(transcript, chat=Scripted(
        {"title": "T", "overview": "o", "key_points": [{"text": "Parsing", "timestamps": "00:10"}], "chapters": None}))
    assert result.method == "llm" and "- Parsing [00:10]" in result.markdown


def test_a_refused_request_falls_back_instead_of_failing_the_job():
    transcript = _talk()
    with ChatEmulator(fail_first=[400]) as emulator:
        chat = LLM(base_url=emulator.base_url, model="emulated-1", api_key="sk-test", max_retries=0).chat_model()
        result = build_summary(transcript, chat=chat)
    assert emulator.statuses == [400]
    assert result.method == "extractive" and result.model == "emulated-1"
    assert "refused the request (LLM endpoint answered HTTP 400" in result.notes[0]
    assert "`emulated-1` was configured but not used" in result.markdown and "sk-test" not in result.markdown


def test_a_long_transcript_is_sampled_evenly_to_the_input_budget():
    transcript = _talk(count=400)
    full, note = transcript_lines(transcript)
    assert note is None and len(full) > 20_000
    with ChatEmulator() as emulator:
        llm = LLM(base_url=emulator.base_url, model="emulated-1", max_retries=0, max_input_chars=4_000)
        result = build_summary(transcript, chat=llm.chat_model(), max_input_chars=llm.input_budget())
    user = next(m["content"] for m in emulator.requests[0]["messages"] if m["role"] == "user")
    sent = user.split("one line per segment:\n\n", 1)[1]
    assert len(sent) <= 4_000 < len(full)
    lines = [line for line in sent.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[00:00]") and lines[-1].startswith("[1:06:30]"), "first and last segments are kept"
    minutes = {parse_clock(line[1:].split("]")[0]) // 60 for line in lines}
    assert len(minutes) >= 60, "every part of the 67-minute talk is represented"
    assert sent.startswith("(Transcript condensed to fit the model's input budget of 4000 characters")
    assert result.method == "llm" and any("condensed" in n for n in result.notes) and "condensed" in result.markdown


def test_input_budget_comes_from_the_setting(monkeypatch):
    from resources.settings import get_settings

    monkeypatch.setenv("KILN_LLM_MAX_INPUT_CHARS", "5000")
    get_settings.cache_clear()
    try:
        assert LLM().input_budget() == 5000 and LLM(max_input_chars=2000).input_budget() == 2000
    finally:
        get_settings.cache_clear()

"""Offline script writer: determinism, attribution, limits and typed errors, adversarial inputs, LLM schema."""

from __future__ import annotations

import json
import time

import pytest

from pipelines.episodes.errors import ScriptInvalid, StoryEmpty, StoryTooLong, TooManyScenes
from pipelines.episodes.script import MAX_SCENES, MAX_STORY_CHARS, script_markdown, write_offline_script
from pipelines.episodes.script_schema import LLM_SCRIPT_SCHEMA, script_to_llm_shape, validate_llm_script
from tests.episodes.support import STORY

CAST = ["Mira Okafor", "Leo"]


def write(story: str, cast=CAST):
    return write_offline_script(title="T", episode_number=1, story=story, cast_names=cast)


def dialogue(script):
    return [(ln.speaker, ln.attribution, ln.text) for s in script.scenes for ln in s.lines if ln.kind == "dialogue"]


def test_same_story_gives_the_same_script_and_markdown():
    a, b = write(STORY), write(STORY)
    assert a == b and a.model_dump_json() == b.model_dump_json()
    assert script_markdown(a) == script_markdown(b)
    assert a.offline and a.generator == "offline-v1"
    assert "Written offline" in script_markdown(a)


@pytest.mark.parametrize("story, speaker", [
    ('"Hello," said Mira.', "Mira Okafor"),
    ('"Hello," Mira said.', "Mira Okafor"),
    ('Mira said, "Hello."', "Mira Okafor"),
    ('Mira: "Hello."', "Mira Okafor"),
    ('Then Mira Okafor whispered, "Hello."', "Mira Okafor"),
    ('“Hello,” asked Leo.', "Leo"),
])
def test_attribution_patterns(story, speaker):
    assert dialogue(write(story)) == [(speaker, "explicit", "Hello.")]


def test_unattributed_quote_inherits_the_last_speaker_of_the_scene_only():
    script = write('"Hi," said Leo. "Again." "More," she said.\n\n"Who?"')
    assert dialogue(script) == [("Leo", "explicit", "Hi."), ("Leo", "inherited", "Again."),
                                ("Leo", "inherited", "More."), (None, "unattributed", "Who?")]
    # the attribution words are not left behind as narration
    assert all(ln.kind == "dialogue" for ln in script.scenes[0].lines)


def test_paragraphs_become_scenes_and_the_rest_is_narration():
    script = write("INT. HALL - DAY\n\nMira ran. \"Stop!\" said Mira. She fell.\n\nRain.")
    assert [s.number for s in script.scenes] == [1, 2]
    assert script.scenes[0].heading == "INT. HALL - DAY"
    assert [(ln.kind, ln.text) for ln in script.scenes[0].lines] == [
        ("narration", "Mira ran."), ("dialogue", "Stop!"), ("narration", "She fell.")]


def test_unknown_speaker_is_kept_as_written():
    assert dialogue(write('"Hi," said Zed.')) == [("Zed", "explicit", "Hi.")]


def test_unclosed_quote_is_noted_not_hidden():
    script = write('Mira said, "Wait')
    assert script.scenes[0].notes and script.scenes[0].lines[-1].kind == "narration"


@pytest.mark.parametrize("story, error, code", [
    ("", StoryEmpty, "story_empty"),
    (" \n\n\t\n", StoryEmpty, "story_empty"),
    ("x" * (MAX_STORY_CHARS + 1), StoryTooLong, "story_too_long"),
    ("\n\n".join(["p"] * (MAX_SCENES + 1)), TooManyScenes, "too_many_scenes"),
])
def test_limits_are_typed_errors(story, error, code):
    with pytest.raises(error) as caught:
        write(story)
    assert caught.value.code == code and not caught.value.retryable
    assert "'" not in caught.value.message.replace("'s", "")  # no Python repr in the message


def test_exactly_at_the_limits_is_accepted():
    assert len(write("\n\n".join(["p"] * MAX_SCENES)).scenes) == MAX_SCENES
    assert write("x" * MAX_STORY_CHARS).scenes


@pytest.mark.parametrize("story", [
    '"' * MAX_STORY_CHARS,
    "“" * MAX_STORY_CHARS,
    ('"a" said ' * 20_000)[:MAX_STORY_CHARS],
    ("Mira said " * 20_000)[: MAX_STORY_CHARS - 1] + '"',
    ('A B C said, "x" ' * 10_000)[:MAX_STORY_CHARS],
    "A" * MAX_STORY_CHARS,
    "\n\n" * 49_000 + "x",
    ("Mira: " * 20_000)[:MAX_STORY_CHARS],
])
def test_adversarial_stories_are_linear(story):
    started = time.perf_counter()
    try:
        write(story)
    except TooManyScenes:
        pass
    assert time.perf_counter() - started < 3.0


def test_offline_output_matches_the_llm_schema_and_round_trips():
    script = write(STORY)
    again = validate_llm_script(json.dumps(script_to_llm_shape(script)), title="T", episode_number=1,
                                model="m", cast_names=CAST)
    assert [[ln.text for ln in s.lines] for s in again.scenes] == [[ln.text for ln in s.lines] for s in script.scenes]
    assert not again.offline and again.generator == "m"


def test_llm_schema_is_strict_compatible():
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert set(node["required"]) == set(node["properties"])
            for value in node.values():
                walk(value)
    walk(LLM_SCRIPT_SCHEMA)


@pytest.mark.parametrize("raw, path", [
    ("not json", None),
    ({"scenes": []}, "$.scenes"),
    ({"scenes": [{"heading": None, "lines": [{"kind": "song", "speaker": None, "text": "x"}]}]},
     "$.scenes[0].lines[0].kind"),
    ({"scenes": [{"heading": None, "lines": [{"kind": "dialogue", "text": "x"}]}]}, "$.scenes[0].lines[0].speaker"),
    ({"scenes": [{"heading": None, "lines": [], "extra": 1}]}, "$.scenes[0]"),
])
def test_llm_output_errors_name_the_path(raw, path):
    with pytest.raises(ScriptInvalid) as caught:
        validate_llm_script(raw, title="T", episode_number=1, model="m", cast_names=CAST)
    assert caught.value.code == "script_invalid"
    if path:
        assert caught.value.message.startswith(path)


def test_llm_speakers_are_normalised_and_missing_ones_stay_unattributed():
    raw = {"scenes": [{"heading": None, "lines": [{"kind": "dialogue", "speaker": "Mira", "text": "Hi"},
                                                   {"kind": "dialogue", "speaker": None, "text": "Yo"}]}]}
    script = validate_llm_script(raw, title="T", episode_number=1, model="m", cast_names=CAST)
    assert dialogue(script) == [("Mira Okafor", "explicit", "Hi"), (None, "unattributed", "Yo")]


@pytest.mark.parametrize("story, speaker, narration", [
    ('"Bonjour," dit Élodie. "Salut," said Élodie softly.', "Élodie", ["dit Élodie.", "softly."]),
    ('the lamp flickered as Zoë said, "Hello."', "Zoë", ["the lamp flickered as"]),
    ('"Hello," the old man said.', None, ["the old man said."]),
])
def test_attribution_handles_any_script_and_only_capitalised_names(story, speaker, narration):
    script = write(story, cast=["Élodie", "Zoë"])
    speakers = {ln.speaker for ln in script.scenes[0].lines if ln.kind == "dialogue"}
    assert speaker in speakers
    assert [ln.text for ln in script.scenes[0].lines if ln.kind == "narration"] == narration


def test_markdown_neutralises_story_markup():
    md_text = script_markdown(write('Mira saw <script>alert(1)</script> and [a](http://x).'))
    assert "<script>" not in md_text and "&lt;script&gt;" in md_text
    assert "\\[a\\](http://x)" in md_text  # the link is shown as text, not rendered


def test_windows_newlines_and_control_characters():
    assert write("One.\r\n\r\nTwo.\x00\x07") == write("One.\n\nTwo.")

"""Prompt/config packs: schema (draft 2020-12), first error with its JSON path, offline generator."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from pipelines.linkedin.commentary import validate_commentary
from pipelines.linkedin.packs import (
    OFFLINE_MARKER,
    PACK_SCHEMA,
    PackInvalid,
    Persona,
    generate_offline_draft,
    load_pack,
    pack_errors,
    pack_sha256,
    validate_pack,
)

PACK = {
    "schema_version": 1,
    "name": "default",
    "model": {"name": "gpt-x", "temperature": 0.4},
    "system_prompt": "You write LinkedIn posts for {persona}.",
    "user_prompt_template": "Write a post about {topic} for {audience}.",
    "style": {"max_characters": 1300, "hashtags": {"min": 1, "max": 3}, "call_to_action": "What would you add?"},
    "banned_phrases": ["synergy"],
}
PERSONA = Persona("Ada", tone="direct", audience="data engineers", topics=("data quality", "C# tips"))


def test_schema_is_a_valid_2020_12_schema():
    Draft202012Validator.check_schema(PACK_SCHEMA)
    assert validate_pack(copy.deepcopy(PACK)) == PACK


@pytest.mark.parametrize(
    "mutate, path, keyword",
    [
        (lambda p: p["style"].update(max_characters=5000), "$.style.max_characters", "maximum"),
        (lambda p: p.pop("system_prompt"), "$.system_prompt", "required"),
        (lambda p: p["style"].pop("max_characters"), "$.style.max_characters", "required"),
        (lambda p: p.update(schema_version=2), "$.schema_version", "const"),
        (lambda p: p.update(user_prompt_template="no placeholder"), "$.user_prompt_template", "pattern"),
        (lambda p: p["model"].update(temperature="hot"), "$.model.temperature", "type"),
        (lambda p: p.update(banned_phrases=["a", "a"]), "$.banned_phrases", "uniqueItems"),
        (lambda p: p["style"].update(emojis=True), "$.style.emojis", "additionalProperties"),
        (lambda p: p.update({"bad key": 1}), '$["bad key"]', "additionalProperties"),
        (lambda p: p["style"]["hashtags"].update(min=4, max=2), "$.style.hashtags.min", "min"),
    ],
)
def test_first_error_has_its_json_path(mutate, path, keyword):
    pack = copy.deepcopy(PACK)
    mutate(pack)
    with pytest.raises(PackInvalid) as info:
        validate_pack(pack)
    assert (info.value.error.json_path, info.value.error.keyword) == (path, keyword)
    assert "'" not in info.value.error.message  # our words, not a Python repr


def test_first_error_is_deterministic_across_several():
    pack = copy.deepcopy(PACK)
    pack["style"]["max_characters"] = 5000
    pack["name"] = "Bad Name"
    first = [pack_errors(pack)[0] for _ in range(3)]
    assert len(set(first)) == 1 and first[0].json_path == "$.name"


@pytest.mark.parametrize("raw, message", [(b"{", "line 1"), (b"\xff\xfe", "UTF-8"), (b"[]", "type object")])
def test_load_pack_rejects_unparseable_content(raw, message):
    with pytest.raises(PackInvalid) as info:
        load_pack(raw)
    assert info.value.error.json_path == "$" and message in info.value.error.message


def test_load_pack_size_cap():
    with pytest.raises(PackInvalid):
        load_pack(b" " * (256 * 1024 + 1))
    assert load_pack(json.dumps(PACK)) == PACK


def test_offline_generator_is_deterministic_and_says_so():
    a = generate_offline_draft(PERSONA, "Shipping (safely) at 5 pm", PACK)
    b = generate_offline_draft(PERSONA, "Shipping (safely) at 5 pm", copy.deepcopy(PACK))
    assert a == b and a.offline and a.generator == "offline" and a.pack_sha256 == pack_sha256(PACK)
    assert a.text.startswith(OFFLINE_MARKER)
    assert "Shipping (safely) at 5 pm" in a.text and "data engineers" in a.text and "What would you add?" in a.text
    assert validate_commentary(a.text, max_chars=1300) == []
    assert generate_offline_draft(PERSONA, "Another topic", PACK).text != a.text
    assert 1 <= a.text.count(" #") + a.text.count("\n#") <= 3


def test_offline_generator_respects_pack_limits():
    pack = copy.deepcopy(PACK)
    pack["style"] = {"max_characters": 150, "hashtags": {"min": 2, "max": 2}}
    pack["banned_phrases"] = ["Start small", "obvious"]
    draft = generate_offline_draft(PERSONA, "x" * 500, pack)
    assert len(draft.text) <= 150 and "truncated to the pack's max_characters" in draft.notes
    for topic in ("Deploys", "Reviews", "Teams", "Ops"):
        text = generate_offline_draft(PERSONA, topic, pack).text
        assert "start small" not in text.lower() and "obvious" not in text.lower()
    with pytest.raises(PackInvalid):
        generate_offline_draft(PERSONA, "x", {"schema_version": 1})

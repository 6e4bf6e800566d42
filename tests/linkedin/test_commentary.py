"""Little-text escaping, the draft markup, validation before approval, fingerprints.

The round-trip properties judge Kiln's escaping with the emulator's independent parser.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.linkedin.commentary import (
    RESERVED,
    build_post_body,
    escape_little_text,
    hashtags_in,
    mentions_in,
    render_commentary,
    request_fingerprint,
    utf16_length,
    validate_commentary,
    visible_text,
)
from resources.linkedin_emulator.littletext import parse


def test_every_reserved_character_is_escaped_backslash_first():
    assert escape_little_text(RESERVED) == "".join("\\" + ch for ch in RESERVED)
    assert escape_little_text("a\\(b") == "a\\\\\\(b"  # the backslash itself once, then the paren
    assert escape_little_text("plain text, émoji 🚀 -- ok.") == "plain text, émoji 🚀 -- ok."


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(RESERVED) + list("ab 1\n🚀é-")), max_size=80) | st.text(max_size=80))
def test_escaped_text_is_shown_exactly_as_written(text):
    parsed = parse(escape_little_text(text))
    assert not parsed.truncated and parsed.text == text and not parsed.mentions and not parsed.hashtags


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Step 1) ", "(x)", "#tag", " #Äpfel_2", "C#", "#1", "@", "@[Ada](urn:li:person:a1)",
                                 "@[Bad](http://x)", "@[#Ada](urn:li:person:a2)", "@[A_b (CTO)](urn:li:organization:9)", "{", "}", "\\", " -- ", "🚀", "\n", "word", "_x_", "~", "<b>"]),
                max_size=12))
def test_rendered_draft_shows_its_visible_text(parts):
    draft = "".join(parts)
    parsed = parse(render_commentary(draft))
    assert not parsed.truncated
    assert parsed.text == visible_text(draft)
    assert parsed.hashtags == hashtags_in(draft)
    assert parsed.mentions == mentions_in(draft)


def test_draft_markup_mentions_and_hashtags():
    draft = "Thanks @[Ada Lovelace](urn:li:person:ab12) and @[Kiln](urn:li:organization:42)! #DataEng C# #1 a#b"
    rendered = render_commentary(draft)
    assert "@[Ada Lovelace](urn:li:person:ab12)" in rendered and "@[Kiln](urn:li:organization:42)" in rendered
    assert "{hashtag|\\#|DataEng}" in rendered
    assert "C\\#" in rendered and "\\#1" in rendered and "a\\#b" in rendered
    assert hashtags_in(draft) == ["DataEng"]
    assert "\\#DataEng" in render_commentary(draft, hashtags=False)
    # A literal '@' or '@name' stays literal text.
    assert render_commentary("mail me @ noon, @bob") == "mail me \\@ noon, \\@bob"


def test_validation_before_approval():
    assert validate_commentary("Hello (world) #tag 1) -- 🚀") == []
    assert [i.code for i in validate_commentary("   \n")] == ["commentary_empty"]
    assert [i.code for i in validate_commentary("x" * 3001)] == ["commentary_too_long"]
    assert validate_commentary("x" * 3000) == []
    # Emoji outside the BMP count 2 (UTF-16), as LinkedIn's composer counts.
    assert [i.code for i in validate_commentary("🚀" * 1501)] == ["commentary_too_long"]
    assert validate_commentary("🚀" * 1500) == []
    # A mention counts as its shown name, not its markup.
    mention = "@[A](urn:li:person:" + "z" * 40 + ")"
    assert validate_commentary("x" * 2999 + mention) == []
    bad = validate_commentary("hi @[Ada](https://linkedin.com/in/ada) and @[](urn:li:person:x1)")
    assert [i.code for i in bad] == ["commentary_mention_invalid"] * 2 and bad[0].offset == 3
    assert [i.code for i in validate_commentary("bell \x07")] == ["commentary_control_character"]
    assert [i.code for i in validate_commentary("half \ud83d emoji")] == ["commentary_invalid_character"]
    assert [i.code for i in validate_commentary("#" + "a" * 101)] == ["commentary_hashtag_invalid"]
    for issue in bad:
        assert "<" not in issue.message and "'" not in issue.message  # plain text, no repr


def test_hash_inside_a_mention_name_is_not_a_hashtag():
    draft = "@[#Ada](urn:li:person:a2) #real"
    assert hashtags_in(draft) == ["real"] and mentions_in(draft) == [("#Ada", "urn:li:person:a2")]
    assert parse(render_commentary(draft)).hashtags == ["real"]


def test_utf16_length():
    assert utf16_length("aé🚀") == 4


def test_fingerprint_is_stable_and_content_sensitive():
    a = build_post_body("urn:li:person:x1", "Hello (world)")
    b = dict(reversed(list(build_post_body("urn:li:person:x1", "Hello (world)").items())))
    assert request_fingerprint(a) == request_fingerprint(b)
    assert len(request_fingerprint(a)) == 64
    assert request_fingerprint(a) != request_fingerprint(build_post_body("urn:li:person:x1", "Hello (world)!"))
    assert request_fingerprint(a) != request_fingerprint(build_post_body("urn:li:person:x2", "Hello (world)"))
    assert a["commentary"] == "Hello \\(world\\)" and a["lifecycleState"] == "PUBLISHED"
    assert a["distribution"] == {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []}

"""One sanitiser for every name Kiln writes (pipelines/filenames.py): ZIP entries (the bulk filename
pattern), uploaded names kept on artifacts, Content-Disposition. Security review #7: bulk ZIP entry
names kept bidi controls (U+202E), zero-width characters and a leading '-'."""

from __future__ import annotations

import unicodedata
import zipfile
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.documents.archive import write_zip
from pipelines.documents.tabular import MAX_STEM, FilenameAllocator, sanitize_stem
from pipelines.filenames import DEFAULT_MAX_BYTES, safe_basename, safe_name
from resources.objectstore import content_disposition, sanitize_filename

BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$", "clock$"} | {
    f"{p}{n}" for p in ("com", "lpt") for n in "0123456789\u00b9\u00b2\u00b3"}

# Text that reaches names: anything, weighted toward the characters that matter here.
_pieces = st.one_of(
    st.characters(),
    st.sampled_from(sorted(BIDI_CONTROLS) + list("\u200b\u200d\ufeff\u2028\u2029\x00\x1f\x7f\x85/\\.- :*?\"<>|;%")
                    + ["\u2215", "\uff0f", "\u00b9", "\u0301"]),
    st.sampled_from(["CON", "nul", "Com1", "LPT\u00b9", ".", "..", "-", "é" * 60, ".txt", " .docx"]),
)
hostile = st.lists(_pieces, max_size=60).map("".join)


def assert_safe(name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    assert name, "empty name"
    assert len(name.encode("utf-8")) <= max_bytes
    for ch in name:
        assert unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"), (name, hex(ord(ch)))
        assert ch not in BIDI_CONTROLS
        assert ch not in '/\\<>:"|?*'
    assert name[0] not in "-. " and name[-1] not in ". "
    assert name.split(".", 1)[0].rstrip(" ").lower() not in RESERVED, name
    assert unicodedata.normalize("NFC", name) == name


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_every_sanitised_name_is_safe_and_stable(text):
    for name in (safe_name(text), safe_name(text, replacement="_"), safe_basename(text), sanitize_filename(text)):
        assert_safe(name)
        assert safe_name(name) == name  # sanitising a safe name changes nothing
    stem = sanitize_stem(text)
    if stem:
        assert_safe(stem, MAX_STEM)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["first", "last"]), hostile), st.integers(1, 10**6),
       st.sampled_from(["docx", "pdf"]))
def test_bulk_output_names_are_safe(row, number, extension):
    name = FilenameAllocator("{last}-{first}").allocate(row, number, extension)
    assert_safe(name)
    assert name.endswith(f".{extension}")


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_content_disposition_names_are_safe(text):
    header = content_disposition(text)
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert_safe(unquote(encoded))
    assert all(32 <= ord(ch) < 127 for ch in header)


@pytest.mark.parametrize(("pattern", "row", "expected"), [
    ("{last}-{first}", {"last": "evil\u202etxt", "first": "exe"}, "eviltxt-exe.docx"),
    ("{last}-{first}", {"last": "Do\u200be", "first": "J\u2066o\u2069"}, "Doe-Jo.docx"),
    ("{last}-{first}", {"last": "-", "first": "-"}, "row-1.docx"),  # nothing left but dashes: the fallback
    ("{last}-{first}", {"last": "--help", "first": "x"}, "help-x.docx"),
    ("{last}", {"last": "nul"}, "_nul.docx"),
    ("{last}", {"last": "COM1 .txt"}, "_COM1 .txt.docx"),
    ("{last}-{first}", {"last": "a\u2028b", "first": "c"}, "a_b-c.docx"),
])
def test_bulk_names_drop_bidi_zero_width_and_leading_dashes(pattern, row, expected):
    assert FilenameAllocator(pattern).allocate(row, 1, "docx") == expected


def test_long_names_are_cut_in_utf8_bytes_keeping_the_extension():
    name = safe_name("é" * 500 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= DEFAULT_MAX_BYTES
    assert "\ufffd" not in name  # never half a character


def test_zip_entries_are_sanitised_and_unique(tmp_path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    names = ["ok.docx", "evil\u202eexe.docx", "evilexe.docx", "-rf.docx", "../up.docx", "out/x.docx"]
    with open(tmp_path / "z.zip", "wb") as out:
        write_zip([(source, n) for n in names], out)
    with zipfile.ZipFile(tmp_path / "z.zip") as z:
        got = z.namelist()
    assert got == ["ok.docx", "evilexe.docx", "evilexe-2.docx", "rf.docx", "up.docx", "out/x.docx"]


def test_a_dropped_run_between_spaces_leaves_one_space():
    from pipelines.filenames import safe_name

    for text in ("0 \x00 0", "a \u202e\u200b b", "x \n y"):
        name = safe_name(text)
        assert "  " not in name and safe_name(name) == name, (text, name)

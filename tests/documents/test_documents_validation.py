"""Upload validation: each unsafe .docx is refused with its own typed error and code."""

from __future__ import annotations

import io
import zipfile

from tests.support.corpus import PUBLIC

import pytest

from pipelines.documents.errors import MacroEnabled, NotDocx, TemplateInvalid, UnsafeZipEntry, ZipBomb
from pipelines.documents.validation import validate_docx
from pipelines.errors import InvalidInput

CORPUS = PUBLIC / "docx"
GOOD = CORPUS / "order_tpl.docx"


def rebuild(extra: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None, drop: tuple = ()) -> bytes:
    """A copy of a real template with entries added, replaced or dropped."""
    out = io.BytesIO()
    with zipfile.ZipFile(GOOD) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in drop:
                continue
            dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info)))
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.docx")), ids=lambda p: p.name)
def test_every_corpus_template_is_accepted(path):
    info = validate_docx(path.read_bytes())
    assert "word/document.xml" in info.parts


def test_not_a_zip_is_not_docx():
    with pytest.raises(NotDocx) as caught:
        validate_docx(b"%PDF-1.7 definitely not a zip")
    assert caught.value.code == "not_docx" and isinstance(caught.value, InvalidInput)


def test_zip_without_word_parts_is_not_docx():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(NotDocx, match="word/document.xml"):
        validate_docx(out.getvalue())


def test_zip_bomb_is_refused():
    # 200 MiB of zeros compresses to ~200 KiB: both the declared size and the ratio give it away.
    out = io.BytesIO()
    with zipfile.ZipFile(GOOD) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open("word/media/bomb.bin", "w") as fh:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(200):
                fh.write(chunk)
    assert len(out.getvalue()) < 2 * 1024 * 1024
    with pytest.raises(ZipBomb) as caught:
        validate_docx(out.getvalue())
    assert caught.value.code == "zip_bomb"


def test_high_ratio_entry_is_refused_even_when_total_is_small():
    bomb = b"A" * (20 * 1024 * 1024)  # 20 MiB of one letter: ratio ~1000x, under the total cap
    with pytest.raises(ZipBomb, match="expands more than"):
        validate_docx(rebuild(extra={"word/media/x.bin": bomb}))


@pytest.mark.parametrize("name", ["../evil.xml", "word/../../evil.xml", "/etc/passwd", "word\\evil.xml", "C:/evil.xml"])
def test_unsafe_entry_names_are_refused(name):
    with pytest.raises(UnsafeZipEntry) as caught:
        validate_docx(rebuild(extra={name: b"<x/>"}))
    assert caught.value.code == "unsafe_zip_entry"


def test_macro_project_is_refused():
    with pytest.raises(MacroEnabled) as caught:
        validate_docx(rebuild(extra={"word/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"}))
    assert caught.value.code == "macro_enabled"


def test_docm_content_type_is_refused():
    with zipfile.ZipFile(GOOD) as z:
        types = z.read("[Content_Types].xml").decode()
    docm = types.replace("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
                         "application/vnd.ms-word.document.macroEnabled.main+xml")
    assert docm != types
    with pytest.raises(MacroEnabled):
        validate_docx(rebuild(replace={"[Content_Types].xml": docm.encode()}))


def test_entity_expansion_is_refused():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
              b"<w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>")
    with pytest.raises(TemplateInvalid) as caught:
        validate_docx(rebuild(replace={"word/document.xml": laughs}))
    assert caught.value.code == "template_invalid" and "DTD" in caught.value.message


def test_external_entity_is_refused():
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>&x;</w:body></w:document>')
    with pytest.raises(TemplateInvalid):
        validate_docx(rebuild(replace={"word/document.xml": xxe}))


def test_malformed_xml_is_template_invalid():
    with pytest.raises(TemplateInvalid, match="not well-formed"):
        validate_docx(rebuild(replace={"word/document.xml": b"<w:document><unclosed>"}))


def corrupt_deflate(data: bytes, entry: str = "word/document.xml") -> bytes:
    """``data`` with the first bytes of ``entry``'s compressed stream flipped (its CRC left as it was)."""
    damaged = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(entry)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 2, start + 12):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def test_corrupt_compressed_entry_is_not_docx():
    with pytest.raises(NotDocx) as caught:  # zlib.error before: a 500
        validate_docx(corrupt_deflate(rebuild()))
    assert caught.value.code == "not_docx" and "word/document.xml" in caught.value.message

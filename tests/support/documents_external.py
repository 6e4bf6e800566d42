"""Builders for templates that reference content outside their package (tests only)."""

from __future__ import annotations

import io
import re
import struct
import zlib
import zipfile

import docx
from docx.shared import Mm


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def base_docx(text: str = "Hello {{ name }}", picture: bool = False) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    if picture:
        document.add_picture(io.BytesIO(png()), width=Mm(20))
    document.add_section()
    document.sections[0].header.paragraphs[0].text = "header"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def edit(data: bytes, **changes) -> bytes:
    """A copy with parts replaced: ``changes`` maps a part name to bytes, or to a function of the old bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for name in names:
            old = src.read(name)
            new = changes.pop(name, old)
            dst.writestr(name, new(old) if callable(new) else new)
        for name, new in changes.items():
            dst.writestr(name, new(b"") if callable(new) else new)
    return out.getvalue()


def external_picture(target: str, attribute: str = "r:embed") -> bytes:
    """A template whose picture is an external relationship to ``target`` (the review's SSRF)."""
    data = base_docx(picture=True)

    def rels(old: bytes) -> bytes:
        return re.sub(rb'(<Relationship [^>]*Type="[^"]*/image"[^>]*?)Target="[^"]*"',
                      lambda m: m.group(1) + b'Target="' + target.encode() + b'" TargetMode="External"', old)

    def body(old: bytes) -> bytes:
        return old.replace(b"r:embed=", attribute.encode() + b"=") if attribute != "r:embed" else old

    return edit(data, **{"word/_rels/document.xml.rels": rels, "word/document.xml": body})


def text_of(data: bytes, part: str = "word/document.xml") -> str:
    """The part's text (its w:t elements joined), XML-unescaped."""
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        root = etree.fromstring(archive.read(part))
    ns = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"
    return "".join(t.text or "" for t in root.iter(ns))

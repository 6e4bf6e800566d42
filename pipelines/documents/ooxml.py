"""Small WordprocessingML helpers shared by field detection and rendering.

The XML is parsed with lxml and a parser that resolves no entities, loads no DTD and touches no
network; ``validation.validate_docx`` has already refused DTDs before we get here.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lxml import etree

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
XML_NS = "http://www.w3.org/XML/1998/namespace"
W = "{%s}" % W_NS


def w(tag: str) -> str:
    return W + tag


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

# Parts that hold user-visible text that templates may put tags in.
TEMPLATE_PART = re.compile(r"^word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml$")


def part_area(part: str) -> str:
    """'body', 'header', 'footer' or 'footnote' for a part name."""
    name = part.rsplit("/", 1)[-1]
    if name.startswith("header"):
        return "header"
    if name.startswith("footer"):
        return "footer"
    if name.startswith(("footnotes", "endnotes")):
        return "footnote"
    return "body"


def _part_order(part: str) -> tuple[int, str]:
    rank = {"body": 0, "header": 1, "footer": 2, "footnote": 3}[part_area(part)]
    return rank, part


def read_template_parts(source: bytes | BinaryIO | str) -> dict[str, bytes]:
    """The XML of the document, header, footer and note parts, in a stable order."""
    with zipfile.ZipFile(source) as archive:
        names = sorted((n for n in archive.namelist() if TEMPLATE_PART.match(n)), key=_part_order)
        return {name: archive.read(name) for name in names}


def parse_xml(data: bytes) -> etree._Element:
    return etree.fromstring(data, parser=_PARSER)


@dataclass
class Paragraph:
    element: etree._Element
    index: int  # position among the part's paragraphs, in document order (0-based)
    in_table: bool

    @property
    def text(self) -> str:
        return "".join(t.text or "" for t in own_texts(self.element))


def own_texts(paragraph: etree._Element) -> list[etree._Element]:
    """The w:t elements that belong to this paragraph (not to a nested text-box paragraph)."""
    return [t for t in paragraph.iter(w("t")) if _closest_paragraph(t) is paragraph]


def _closest_paragraph(element: etree._Element) -> etree._Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != w("p"):
        parent = parent.getparent()
    return parent


def paragraphs(root: etree._Element) -> Iterator[Paragraph]:
    for index, p in enumerate(root.iter(w("p"))):
        in_table = any(anc.tag == w("tbl") for anc in p.iterancestors())
        yield Paragraph(p, index, in_table)


def rewrite_paragraph(
    paragraph: etree._Element,
    pattern: re.Pattern[str],
    on_tag: Callable[[re.Match[str]], str],
    on_literal: Callable[[str], str] = lambda s: s,
) -> int:
    """Rewrite tags that Word may have split across runs.

    Every match of ``pattern`` in the paragraph's joined text is moved whole into the run where it
    starts (so it keeps that run's formatting) and replaced by ``on_tag(match)``; the text between
    tags passes through ``on_literal``. Returns the number of tags rewritten.
    """
    texts = own_texts(paragraph)
    if not texts:
        return 0
    owner: list[int] = []
    for i, t in enumerate(texts):
        owner.extend([i] * len(t.text or ""))
    full = "".join(t.text or "" for t in texts)
    matches = list(pattern.finditer(full))
    if not matches and on_literal(full) == full:
        return 0
    pieces: list[list[str]] = [[] for _ in texts]
    pos = 0
    for m in matches:
        for i in range(pos, m.start()):
            pieces[owner[i]].append(full[i])
        pieces[owner[m.start()]].append("\x00" + on_tag(m))
        pos = m.end()
    for i in range(pos, len(full)):
        pieces[owner[i]].append(full[i])
    for t, chars in zip(texts, pieces):
        # Literal stretches are escaped per run; tag replacements (marked by NUL) are inserted as is.
        out, literal = [], []
        for piece in chars:
            if piece.startswith("\x00"):
                out.append(on_literal("".join(literal)))
                literal = []
                out.append(piece[1:])
            else:
                literal.append(piece)
        out.append(on_literal("".join(literal)))
        t.text = "".join(out)
        t.set("{%s}space" % XML_NS, "preserve")
    return len(matches)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)

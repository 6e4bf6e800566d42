"""Refuse every reference a template makes to something outside its own package.

LibreOffice (and Word) follow such references when they open a document: an external image
relationship is fetched over HTTP from the converter's host (SSRF), a ``file://`` target reads
whatever file the converter can see (another workspace's objects), an ``INCLUDETEXT`` field pulls in
a local file. Kiln renders templates its users uploaded on shared workers, so a template may only
reference parts of its own package. Refused (``external_reference``, naming the part and target):

- a relationship with ``TargetMode="External"`` of any type, in any ``.rels`` part (images,
  attached templates, subdocuments, frames, OLE links, altChunks, mail-merge sources...), except
  plain hyperlinks (type ``.../hyperlink``): those become clickable links in the output and are never
  fetched while rendering. A hyperlink relationship used by anything but a hyperlink element (an
  image's ``r:embed`` pointing at it) is refused too;
- an internal relationship whose target is a URL (``file:///...``) or climbs out of the package;
- field codes that load content: ``INCLUDEPICTURE``, ``INCLUDETEXT``/``INCLUDE``, ``IMPORT``,
  ``LINK``, ``DDE``, ``DDEAUTO``, ``DATABASE``, ``RD``, in ``w:fldSimple/@w:instr`` and in complex
  fields (``w:instrText`` runs joined, so a keyword split across runs is still found; any case);
- linked OLE objects (``o:OLEObject Type="Link"``), ``r:link`` attributes (linked pictures, media),
  URL- or path-valued ``href``/``src`` attributes (VML ``v:imagedata``, ``o:href``, ``v:fill``);
- in XML pictures (SVG under ``word/media/``): ``href``/``src`` URLs and style sheets reaching out
  (``url(http://...)``, ``@import``); ``data:`` URIs are inline and fine;
- ``w:altChunk`` (imported HTML/MHT/RTF, which can carry its own external images);
- ``w:linkStyles`` (styles pulled from the attached template) and mail-merge data sources
  (``w:dataSource``, ``w:query``, ``w:connectString``, ``w:headerSource``, ``w:odso`` in ``w:mailMerge``).

The check runs on the uploaded template (``validation.validate_docx``) and again on every filled
document (``render.render_docx``), so a template that builds such XML at fill time (``|safe``) is
caught as well.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterable

from lxml import etree

from pipelines.documents.errors import ExternalReference, TemplateInvalid

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W = "{%s}" % W_NS
_O_OLE = "{urn:schemas-microsoft-com:office:office}OLEObject"
# Transitional and Strict OOXML name the relationships namespace differently; both end like this.
_REL_NS_SUFFIX = "/relationships"
_HYPERLINK_ELEMENTS = frozenset(("hyperlink", "hlinkClick", "hlinkHover", "hlinkMouseOver"))
_LOADING_FIELDS = frozenset(("INCLUDEPICTURE", "INCLUDETEXT", "INCLUDE", "IMPORT", "LINK", "DDE", "DDEAUTO",
                             "DATABASE", "RD"))
_FIELD_WORD = re.compile(r"^\s*\\?([A-Za-z]+)")
_URL_SCHEME = re.compile(r"^\s*(?!data:)[A-Za-z][A-Za-z0-9+.\-]*:", re.IGNORECASE)  # data: URIs are inline
# Style sheets inside XML parts (an SVG picture's <style> or style="..."): url(...) to a URL, @import.
# Possessive quantifiers: a run of spaces is matched one way only (the plain pattern backtracked quadratically:
# 'url(' + 8,000 spaces took 1.4 s). Matched on the style text of the parsed tree (decoded, entities resolved)
# after CSS escapes are undone, so neither a UTF-16 picture nor '\75 rl(' hides a reference.
_CSS_REFERENCE = re.compile(r"url\(\s*+['\"]?+\s*+(?!data:|#)(?:[a-z][a-z0-9+.\-]*+:|//|/)|@import", re.IGNORECASE)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(.))", re.DOTALL)


def _css_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(2)
        code = int(m.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return _CSS_ESCAPE.sub(one, text)


def _style_texts(root: etree._Element):
    """The style sheet text of a picture: <style> elements, style attributes, xml-stylesheet instructions."""
    for node in root.iter():
        if isinstance(node, etree._ProcessingInstruction):
            yield f"@import {node.text or ''}" if node.target == "xml-stylesheet" else ""
            continue
        if _local(node.tag) == "style":
            yield "".join(node.itertext())
        for name, value in node.attrib.items():
            if _local(name) == "style":
                yield value
_PATH_ATTRS = frozenset(("href", "src", "althref"))
_MAIL_MERGE_SOURCES = frozenset(("dataSource", "headerSource", "query", "connectString", "odso"))
_SHOWN_TARGET = 200  # targets are attacker-written: the message carries at most this much of one


def _shown(target: str) -> str:
    target = "".join(ch if ch.isprintable() else "?" for ch in target.strip())
    return target if len(target) <= _SHOWN_TARGET else target[:_SHOWN_TARGET] + "..."


def _refuse(part: str, what: str, target: str = "") -> ExternalReference:
    shown = _shown(target)
    message = f"Part {part} {what}" + (f" ({shown})" if shown else "") + (
        ". Templates may only use content stored inside the .docx: embed the image or text instead.")
    return ExternalReference(message, part=part, target=shown)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _is_rel_attr(name: str) -> bool:
    return name.startswith("{") and name[1:name.index("}")].endswith(_REL_NS_SUFFIX)


def source_of_rels(rels_part: str) -> str:
    """``word/_rels/document.xml.rels`` -> ``word/document.xml`` (the part whose ids it defines)."""
    folder, name = posixpath.split(rels_part)
    parent = posixpath.dirname(folder)
    return posixpath.join(parent, name[: -len(".rels")]) if name.endswith(".rels") else ""


def _climbs_out(path: str) -> bool:
    """A package path that goes above the package root (``normpath`` would silently clamp it)."""
    depth = 0
    for segment in path.split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment not in ("", "."):
            depth += 1
    return False


def _check_rels(part: str, root: etree._Element) -> set[str]:
    """Raise for a non-hyperlink external or escaping target; return the ids of external hyperlinks."""
    hyperlinks: set[str] = set()
    base = posixpath.dirname(source_of_rels(part))
    for rel in root.iter():
        if _local(rel.tag) != "Relationship":
            continue
        target = rel.get("Target") or ""
        kind = (rel.get("Type") or "").strip()
        if (rel.get("TargetMode") or "").strip().lower() == "external":
            if kind.lower().endswith("/hyperlink"):
                hyperlinks.add(rel.get("Id") or "")
                continue
            raise _refuse(part, f"has an external relationship of type {_shown(kind.rsplit('/', 1)[-1])}",
                          target)
        if _URL_SCHEME.match(target) or target.strip().startswith("//") or "\\" in target:
            raise _refuse(part, "has a relationship whose target is a URL or a path outside the document", target)
        if _climbs_out(target if target.startswith("/") else f"{base}/{target}"):
            raise _refuse(part, "has a relationship whose target climbs out of the document", target)
    return hyperlinks


def _field_instructions(root: etree._Element) -> Iterable[str]:
    """Every field's instruction: simple fields whole, complex fields with their instrText runs
    joined (nested fields each on their own)."""
    stack: list[list[str] | None] = []  # per open complex field: its instruction, None once past 'separate'
    for el in root.iter(_W + "fldSimple", _W + "fldChar", _W + "instrText", _W + "delInstrText"):
        local = _local(el.tag)
        if local == "fldSimple":
            yield el.get(_W + "instr") or ""
        elif local in ("instrText", "delInstrText"):
            if stack and stack[-1] is not None:
                stack[-1].append(el.text or "")
            elif not stack:
                yield el.text or ""  # stray instruction text: judged on its own
        else:
            kind = el.get(_W + "fldCharType")
            if kind == "begin":
                stack.append([])
            elif kind == "separate" and stack and stack[-1] is not None:
                yield "".join(stack[-1])
                stack[-1] = None
            elif kind == "end" and stack:
                top = stack.pop()
                if top is not None:
                    yield "".join(top)
    for pending in stack:
        if pending is not None:
            yield "".join(pending)


def _check_xml(part: str, root: etree._Element, hyperlinks: set[str], picture: bool = False) -> None:
    for text in _style_texts(root) if picture else ():
        text = _css_unescape(text)
        css = _CSS_REFERENCE.search(text)
        if css:
            raise _refuse(part, "has a style sheet reference to content outside the document",
                          text[css.start():css.start() + 200])
    for instr in _field_instructions(root):
        m = _FIELD_WORD.match(instr)
        if m and m.group(1).upper() in _LOADING_FIELDS:
            raise _refuse(part, f"has a {m.group(1).upper()} field, which loads content from outside the document",
                          instr)
    for el in root.iter():
        local = _local(el.tag)
        if not local:
            continue  # comments, processing instructions
        if el.tag == _O_OLE and (el.get("Type") or "").strip().lower() == "link":
            raise _refuse(part, "has a linked OLE object", el.get("ProgID") or "")
        if el.tag == _W + "altChunk":
            raise _refuse(part, "imports another file's content (altChunk), which is not supported in templates")
        if el.tag == _W + "linkStyles":
            raise _refuse(part, "takes its styles from an attached template (linkStyles)")
        if el.tag.startswith(_W) and local in _MAIL_MERGE_SOURCES and any(
                _local(a.tag) == "mailMerge" for a in el.iterancestors()):
            raise _refuse(part, f"has a mail-merge data source ({local})", el.get(_W + "val") or "")
        for name, value in el.attrib.items():
            attr = _local(name)
            if _is_rel_attr(name):
                if attr in ("link", "href"):
                    raise _refuse(part, f"links (r:{attr}) to content outside the document from {local}", value)
                if value in hyperlinks and local not in _HYPERLINK_ELEMENTS:
                    raise _refuse(part, f"uses an external hyperlink as the content of {local}", value)
            elif attr.lower() in _PATH_ATTRS and (_URL_SCHEME.match(value) or value.strip().startswith(("/", "\\"))):
                raise _refuse(part, f"has a {attr} attribute on {local} that points outside the document", value)


def looks_like_xml(name: str, data: bytes) -> bool:
    if name.lower().endswith((".xml", ".rels", ".vml")):
        return True
    head = data[:4].lstrip()
    return head.startswith((b"<", b"\xef\xbb\xbf<", b"\xff\xfe", b"\xfe\xff"))


def check_parts(parts: dict[str, bytes]) -> None:
    """Raise ``ExternalReference`` for the first external reference in these package parts."""
    roots: dict[str, etree._Element] = {}
    for name, data in parts.items():
        if not looks_like_xml(name, data):
            continue
        try:
            roots[name] = etree.fromstring(data, parser=_PARSER)
        except etree.XMLSyntaxError as exc:
            if name.lower().endswith((".xml", ".rels")):
                # Well-formed for expat (validation), yet refused by libxml2, which every later
                # reader uses: elements nested over 256 deep, names or text nodes over its limits.
                raise TemplateInvalid(f"Part {name} cannot be read: {_shown(str(exc.msg or exc))}.",
                                      part=name) from None
            continue  # a binary part that happens to start with '<'
    hyperlinks: dict[str, set[str]] = {}
    for name, root in roots.items():
        if name.lower().endswith(".rels"):
            hyperlinks[source_of_rels(name)] = _check_rels(name, root)
    for name, root in roots.items():
        if not name.lower().endswith(".rels"):
            # Style sheets only matter in pictures: document text may well mention "@import".
            picture = name.lower().startswith("word/media/") or _local(root.tag) == "svg"
            _check_xml(name, root, hyperlinks.get(name, set()), picture)


# What a fill writes: docxtpl renders the body, headers, footers, footnotes and document properties,
# and adds relationships (pictures). Every other part is the upload's, checked already.
_FILLED_PART = re.compile(r"^(word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml|docProps/[^/]+\.xml"
                          r"|\[Content_Types\]\.xml|(.*/)?_rels/[^/]+\.rels)$")


def check_filled_docx(data: bytes) -> None:
    """``check_parts`` for the parts a fill wrote (a few ms; the whole package would double a fill)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()
                 if _FILLED_PART.match(info.filename)}
    check_parts(parts)

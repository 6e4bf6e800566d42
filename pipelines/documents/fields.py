"""Detect the fields of a DOCX template, whatever syntax its author used.

Syntaxes, detected per template in this order (the first present wins, one syntax per template):
- ``jinja``: docxtpl's Jinja tags ``{{ x }}``, ``{% for/if %}``, the ``{%tr/tc/p/r %}`` and
  ``{{r/p }}`` forms; comments ``{# #}`` are not fields. Analysed exactly as docxtpl reads them:
  docxtpl's own ``patch_xml`` (which joins tags Word split across runs) then Jinja's parser.
- ``mergefield``: Word ``MERGEFIELD`` fields, simple (``w:fldSimple``) and complex (``w:fldChar`` +
  ``w:instrText`` across runs), names quoted with spaces included.
- ``dollar``: ``${placeholder}``.
- ``docxtemplater``: single-brace ``{tag}``, sections ``{#loop}..{/loop}``, inverted ``{^x}``, images ``{%img}``.
Text is always read per paragraph with its runs joined, so tags Word split across runs are found.
Broken tags never raise: the analysis comes back ``invalid`` with errors naming part and paragraph.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import jinja2
from docxtpl import DocxTemplate
from jinja2 import meta, nodes

from pipelines.documents import ooxml

JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
JINJA_EXPR_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
DOLLAR_TAG = re.compile(r"\$\{\s*([^{}$]+?)\s*\}")
# docxtemplater: {name}, {#section}, {/section}, {^inverted}, {%image}, {@raw}
BRACE_TAG = re.compile(r"\{([#/^%@]?)\s*([^{}]*?)\s*\}")
MERGEFIELD_INSTR = re.compile(r'^\s*MERGEFIELD\s+(?:"([^"]+)"|(\S+))', re.IGNORECASE)
IDENTIFIER = re.compile(r"(?<![.\w'\"])([A-Za-z_]\w*)")
IMAGE_NAME = re.compile(r"(image|img|logo|photo|picture|signature)", re.IGNORECASE)

JINJA_WORDS = frozenset(
    "if elif else endif for endfor in not and or is true false none True False None set endset with endwith "
    "macro endmacro call endcall filter endfilter block endblock raw endraw tr tc p r loop defined undefined "
    "colspan cellbg vm hm".split())
SYNTAXES = ("jinja", "mergefield", "dollar", "docxtemplater")
KINDS = ("value", "loop", "condition", "image")
KIND_RANK = {"condition": 0, "value": 1, "image": 2, "loop": 3}  # a name used several ways takes the highest


@dataclass
class Field:
    name: str
    kind: str = "value"
    locations: list[str] = field(default_factory=list)  # body, table, header, footer, footnote
    required: bool = True
    children: list[str] = field(default_factory=list)  # fields read from each item of a loop
    parts: list[str] = field(default_factory=list)


@dataclass
class LocatedError:
    part: str
    paragraph: int | None  # 0-based index among the part's paragraphs
    message: str
    snippet: str = ""


@dataclass
class TemplateAnalysis:
    syntax: str  # one of SYNTAXES, or "none" when the document holds no tags
    fields: list[Field]
    errors: list[LocatedError]

    @property
    def status(self) -> str:
        return "invalid" if self.errors else "valid"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def required_names(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def to_dict(self) -> dict:
        return {"syntax": self.syntax, "status": self.status,
                "fields": [asdict(f) for f in self.fields], "errors": [asdict(e) for e in self.errors]}


class _Collector:
    """Merges per-part findings into one Field per name (first-seen order kept, output sorted)."""

    def __init__(self) -> None:
        self.fields: dict[str, Field] = {}

    def add(self, name: str, kind: str, part: str, location: str, required: bool = True) -> Field:
        f = self.fields.get(name)
        if f is None:
            f = self.fields[name] = Field(name=name, kind=kind, required=required)
        elif KIND_RANK[kind] > KIND_RANK[f.kind]:
            f.kind = kind
        f.required = f.required or required
        if location not in f.locations:
            f.locations.append(location)
        if part not in f.parts:
            f.parts.append(part)
        return f

    def result(self) -> list[Field]:
        out = sorted(self.fields.values(), key=lambda f: f.name)
        for f in out:
            f.locations.sort()
            f.children = sorted(set(f.children))
        return out


def _location(part: str, paragraph: ooxml.Paragraph | None) -> str:
    area = ooxml.part_area(part)
    if area == "body" and paragraph is not None and paragraph.in_table:
        return "table"
    return area


def detect_syntax(parts: dict[str, bytes]) -> str:
    texts, has_mergefield = [], False
    for data in parts.values():
        root = ooxml.parse_xml(data)
        texts.append("\n".join(p.text for p in ooxml.paragraphs(root)))
        if _mergefields(root):
            has_mergefield = True
    joined = "\n".join(texts)
    if JINJA_TAG.search(joined):
        return "jinja"
    if has_mergefield:
        return "mergefield"
    if DOLLAR_TAG.search(joined):
        return "dollar"
    if BRACE_TAG.search(joined):
        return "docxtemplater"
    return "none"


# --- Jinja (docxtpl) -------------------------------------------------------------------------

def patched_jinja_source(xml: bytes) -> str:
    """The part's XML as docxtpl hands it to Jinja, one paragraph per line."""
    text = ooxml.etree.tostring(ooxml.parse_xml(xml), encoding="unicode")
    text = DocxTemplate.patch_xml(None, text)  # patch_xml uses no instance state
    return re.sub(r"<w:p([ >])", r"\n<w:p\1", text)


def _root_name(expr: nodes.Node) -> str | None:
    while isinstance(expr, (nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Call)):
        expr = expr.node
    return expr.name if isinstance(expr, nodes.Name) else None


def _jinja_part(part: str, xml: bytes, collector: _Collector, errors: list[LocatedError]) -> None:
    env = jinja2.Environment()
    source = patched_jinja_source(xml)
    root = ooxml.parse_xml(xml)
    paras = list(ooxml.paragraphs(root))
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        line = source.splitlines()[exc.lineno - 1] if exc.lineno and exc.lineno <= len(source.splitlines()) else ""
        snippet = re.sub(r"<[^>]+>", "", line).strip()
        index = next((p.index for p in paras if snippet and snippet in p.text), None)
        errors.append(LocatedError(part, index, f"Jinja syntax error: {exc.message}", snippet[:200]))
        # Still list the names the tags mention, so the user sees what the template asks for.
        for p in paras:
            for tag in JINJA_EXPR_TAG.findall(p.text):
                for ident in IDENTIFIER.findall(tag):
                    if ident not in JINJA_WORDS:
                        collector.add(ident, "value", part, _location(part, p))
        return
    undeclared = meta.find_undeclared_variables(tree)
    loops: dict[str, set[str]] = {}
    for loop in tree.find_all(nodes.For):
        name = _root_name(loop.iter)
        if name in undeclared:
            children = loops.setdefault(name, set())
            targets = {n.name for n in loop.target.find_all(nodes.Name)} | (
                {loop.target.name} if isinstance(loop.target, nodes.Name) else set())
            for node in loop.find_all(nodes.Getattr):
                if isinstance(node.node, nodes.Name) and node.node.name in targets:
                    children.add(node.attr)
    outputs = {n.name for out in tree.find_all(nodes.Output) for n in out.find_all(nodes.Name)}
    tests = set()
    for cond in list(tree.find_all(nodes.If)) + list(tree.find_all(nodes.CondExpr)):
        tests |= {n.name for n in cond.test.find_all(nodes.Name)} | (
            {cond.test.name} if isinstance(cond.test, nodes.Name) else set())
    optional = set()
    for flt in tree.find_all(nodes.Filter):
        if flt.name in ("default", "d") and isinstance(flt.node, nodes.Name):
            optional.add(flt.node.name)
    for test in tree.find_all(nodes.Test):
        if test.name in ("defined", "undefined", "none") and isinstance(test.node, nodes.Name):
            optional.add(test.node.name)

    where: dict[str, set[str]] = {}
    for p in paras:
        for tag in JINJA_EXPR_TAG.findall(p.text):
            for ident in IDENTIFIER.findall(tag):
                if ident in undeclared:
                    where.setdefault(ident, set()).add(_location(part, p))
    for name in sorted(undeclared):
        if name in loops:
            kind = "loop"
        elif name in outputs:
            kind = "image" if IMAGE_NAME.search(name) else "value"
        elif name in tests:
            kind = "condition"
        else:
            kind = "value"
        for location in sorted(where.get(name) or {ooxml.part_area(part)}):
            f = collector.add(name, kind, part, location, required=name not in optional)
        f.children.extend(loops.get(name, ()))


# --- MERGEFIELD ------------------------------------------------------------------------------

def _mergefields(root) -> list[tuple[str, object]]:
    """(name, element) for each MERGEFIELD, simple or complex, in document order."""
    found: list[tuple[str, object]] = []
    stack: list[list] = []  # per open complex field: [instruction text, begin element]
    for el in root.iter(ooxml.w("fldSimple"), ooxml.w("fldChar"), ooxml.w("instrText")):
        if el.tag == ooxml.w("fldSimple"):
            m = MERGEFIELD_INSTR.match(el.get(ooxml.w("instr"), ""))
            if m:
                found.append(((m.group(1) or m.group(2)).strip(), el))
        elif el.tag == ooxml.w("instrText"):
            if stack:
                stack[-1][0] += el.text or ""
        else:
            kind = el.get(ooxml.w("fldCharType"))
            if kind == "begin":
                stack.append(["", el])
            elif kind == "end" and stack:
                instr, begin = stack.pop()
                m = MERGEFIELD_INSTR.match(instr)
                if m:
                    found.append(((m.group(1) or m.group(2)).strip(), begin))
    return found


def _mergefield_part(part: str, xml: bytes, collector: _Collector) -> None:
    root = ooxml.parse_xml(xml)
    by_element = {p.element: p for p in ooxml.paragraphs(root)}
    for name, el in _mergefields(root):
        para = next((by_element[a] for a in el.iterancestors(ooxml.w("p")) if a in by_element), None)
        collector.add(name, "value", part, _location(part, para))


# --- ${placeholder} and docxtemplater {tag} --------------------------------------------------

def _dollar_part(part: str, xml: bytes, collector: _Collector) -> None:
    for p in ooxml.paragraphs(ooxml.parse_xml(xml)):
        for m in DOLLAR_TAG.finditer(p.text):
            collector.add(m.group(1), "image" if IMAGE_NAME.search(m.group(1)) else "value", part, _location(part, p))


def _docxtemplater_part(part: str, xml: bytes, collector: _Collector, errors: list[LocatedError]) -> None:
    stack: list[tuple[str, Field | None, int]] = []  # (section name, top-level field, paragraph)
    for p in ooxml.paragraphs(ooxml.parse_xml(xml)):
        for m in BRACE_TAG.finditer(p.text):
            prefix, name = m.group(1), m.group(2)
            if not name:
                errors.append(LocatedError(part, p.index, "Empty tag '{}'.", p.text[:200]))
                continue
            if prefix == "/":
                if not stack or stack[-1][0] != name:
                    opened = stack[-1][0] if stack else None
                    msg = f"Closing tag {{/{name}}} does not match " + (f"open section {{#{opened}}}." if opened
                                                                         else "any open section.")
                    errors.append(LocatedError(part, p.index, msg, p.text[:200]))
                else:
                    stack.pop()
                continue
            kind = {"#": "loop", "^": "condition", "%": "image"}.get(prefix, "value")
            if stack:
                top = stack[0][1]
                if top is not None and name not in (s[0] for s in stack):
                    top.children.append(name)
                if prefix in ("#", "^"):
                    stack.append((name, top, p.index))
                continue
            f = collector.add(name, kind, part, _location(part, p))
            if prefix in ("#", "^"):
                stack.append((name, f, p.index))
    for name, _, index in stack:
        errors.append(LocatedError(part, index, f"Section {{#{name}}} is never closed.", ""))


def analyze_template(source: bytes | BinaryIO | str) -> TemplateAnalysis:
    """Detect the syntax and fields of a validated .docx (call ``validate_docx`` first)."""
    parts = ooxml.read_template_parts(source)
    syntax = detect_syntax(parts)
    collector, errors = _Collector(), []
    for part, xml in parts.items():
        if syntax == "jinja":
            _jinja_part(part, xml, collector, errors)
        elif syntax == "mergefield":
            _mergefield_part(part, xml, collector)
        elif syntax == "dollar":
            _dollar_part(part, xml, collector)
        elif syntax == "docxtemplater":
            _docxtemplater_part(part, xml, collector, errors)
    return TemplateAnalysis(syntax=syntax, fields=collector.result(), errors=errors)


def missing_required(analysis: TemplateAnalysis, provided: set[str] | dict) -> list[str]:
    """Required field names absent from ``provided`` (keys of a values dict or column names)."""
    return sorted(name for name in analysis.required_names() if name not in provided)

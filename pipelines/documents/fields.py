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
Jinja templates that name an unknown filter or test, or reach for a ``_private`` attribute (which
the sandbox refuses), are ``invalid`` too: they could never fill.

Kinds: a name used in ``{% for %}`` is a ``loop``; printed, a ``value`` (an ``image`` when its name
says so, see ``image_name``); only tested in ``{% if %}``, a ``condition``. A condition that is only
ever used for its truth (``{% if paid %}``, ``not paid``, ``paid and vip``) is optional: a missing
or empty value is false, and true/false-like text ("yes", "0", "off"...) is taken as a boolean.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import jinja2
from docxtpl import DocxTemplate
from jinja2 import nodes

from pipelines.documents import ooxml
from pipelines.documents.analysis_limits import (
    DEEP_MESSAGE, MAX_ERRORS, AnalysisLimits, Budget, bound_fields, bound_message,
)
from pipelines.documents.errors import clean_message
from pipelines.documents.jinja_env import ENV, undeclared_names
from pipelines.documents.tags import BRACE_TAG, DOLLAR_OPEN, DOLLAR_TAG, MERGEFIELD_INSTR, jinja_tags

IDENTIFIER = re.compile(r"(?<![.\w'\"])([A-Za-z_]\w*)")
_IMAGE_WORDS = ("image", "img", "logo", "photo", "picture", "signature")
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

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


def image_name(name: str) -> str | None:
    """``"definite"`` when the name's last word ends with an image word (``logo``, ``company_logo``,
    ``companyLogo``, ``myimage``, ``signature_image``), ``"loose"`` when a word merely contains
    ``image``/``img`` (``myimageratio``), else None: ``signature_date`` and ``photographer`` are text.

    Both kinds are image fields; a definite one refuses text that is not an image (it is most likely
    a mistake), a loose one prints such text as it is.
    """
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    if not words:
        return None
    if words[-1].endswith(_IMAGE_WORDS):
        return "definite"
    if any("image" in w or "img" in w for w in words):
        return "loose"
    return None


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
    if jinja_tags(joined, limit=1):
        return "jinja"
    if has_mergefield:
        return "mergefield"
    if DOLLAR_TAG.search(joined) or DOLLAR_OPEN.search(joined):
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


def _located(part: str, source: str, paras: list, lineno: int | None, message: str) -> LocatedError:
    """An error at ``lineno`` of the patched source (one paragraph per line), tied to its paragraph."""
    lines = source.splitlines()
    line = lines[lineno - 1] if lineno and lineno <= len(lines) else ""
    snippet = re.sub(r"<[^>]+>", "", line).strip()
    index = next((p.index for p in paras if snippet and snippet in p.text), None)
    return LocatedError(part, index, message, snippet[:200])


def _unusable(tree: nodes.Template) -> list[tuple[int, str]]:
    """(line, message) for what would fail every fill: unknown filters/tests, private attributes,
    other templates (there are none to include)."""
    found = []
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        found.append((node.lineno, "Templates cannot include, import or extend other templates."))
    for flt in tree.find_all(nodes.Filter):
        if flt.name not in ENV.filters:
            found.append((flt.lineno, f"Unknown filter '{flt.name}'."))
    for test in tree.find_all(nodes.Test):
        if test.name not in ENV.tests:
            found.append((test.lineno, f"Unknown test '{test.name}'."))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attr, str) and attr.startswith("_"):
            found.append((node.lineno, f"Attribute '{attr}' is private: templates may not use names starting with '_'."))
    return sorted(found)


def _truth_names(test: nodes.Node) -> list[nodes.Name]:
    """The names a condition uses only for their truth: ``x``, ``not x``, ``x and/or y``."""
    if isinstance(test, nodes.Name):
        return [test]
    if isinstance(test, nodes.Not):
        return _truth_names(test.node)
    if isinstance(test, (nodes.And, nodes.Or)):
        return _truth_names(test.left) + _truth_names(test.right)
    return []


def _jinja_part(part: str, xml: bytes, collector: _Collector, errors: list[LocatedError], budget: Budget) -> None:
    source = patched_jinja_source(xml)
    over = budget.spend(jinja_tags(source, limit=budget.limits.max_tags + 1), source)
    if over:  # before Jinja's parser, whose time grows with the tags and whose recursion with the nesting
        errors.append(LocatedError(part, None, over))
        return
    root = ooxml.parse_xml(xml)
    paras = list(ooxml.paragraphs(root))
    try:
        tree = ENV.parse(source)
        undeclared = undeclared_names(tree)
    except jinja2.TemplateError as exc:  # syntax, or e.g. an assertion Jinja's code generator makes
        errors.append(_located(part, source, paras, getattr(exc, "lineno", None), f"Jinja syntax error: {exc.message}"))
        # Still list the names the tags mention, so the user sees what the template asks for.
        for p in paras:
            for tag in jinja_tags(p.text, expressions_only=True):
                for ident in IDENTIFIER.findall(tag):
                    if ident not in JINJA_WORDS:
                        collector.add(ident, "value", part, _location(part, p))
        return
    for lineno, message in _unusable(tree):
        errors.append(_located(part, source, paras, lineno, message))
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
    truth_uses: dict[str, int] = {}
    for cond in list(tree.find_all(nodes.If)) + list(tree.find_all(nodes.CondExpr)):
        tests |= {n.name for n in cond.test.find_all(nodes.Name)} | (
            {cond.test.name} if isinstance(cond.test, nodes.Name) else set())
        for n in _truth_names(cond.test):
            truth_uses[n.name] = truth_uses.get(n.name, 0) + 1
    uses: dict[str, int] = {}
    for n in tree.find_all(nodes.Name):
        if n.ctx == "load":
            uses[n.name] = uses.get(n.name, 0) + 1
    # Used only for its truth: absent means false, so the field is optional.
    flags = {name for name, count in truth_uses.items() if uses.get(name) == count}
    optional = set(flags)
    for flt in tree.find_all(nodes.Filter):
        if flt.name in ("default", "d") and isinstance(flt.node, nodes.Name):
            optional.add(flt.node.name)
    for test in tree.find_all(nodes.Test):
        if test.name in ("defined", "undefined", "none") and isinstance(test.node, nodes.Name):
            optional.add(test.node.name)

    where: dict[str, set[str]] = {}
    for p in paras:
        for tag in jinja_tags(p.text, expressions_only=True):
            for ident in IDENTIFIER.findall(tag):
                if ident in undeclared:
                    where.setdefault(ident, set()).add(_location(part, p))
    for name in sorted(undeclared):
        if name in loops:
            kind = "loop"
        elif name in flags:  # {{ 'PAID' if paid }} is a condition too
            kind = "condition"
        elif name in outputs:
            kind = "image" if image_name(name) else "value"
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

def _dollar_part(part: str, xml: bytes, collector: _Collector, errors: list[LocatedError], budget: Budget) -> None:
    paras = list(ooxml.paragraphs(ooxml.parse_xml(xml)))
    over = budget.spend([t for p in paras for t in re.findall(r"\$\{", p.text)])
    if over:
        errors.append(LocatedError(part, None, over))
        return
    for p in paras:
        for m in DOLLAR_TAG.finditer(p.text):
            collector.add(m.group(1), "image" if image_name(m.group(1)) else "value", part, _location(part, p))
        for start in (m.start() for m in re.finditer(r"\$\{", p.text)):
            if not DOLLAR_TAG.match(p.text, start):
                errors.append(LocatedError(part, p.index, "Placeholder '${' is never closed with '}'.",
                                           p.text[start:start + 200]))


def _docxtemplater_part(part: str, xml: bytes, collector: _Collector, errors: list[LocatedError],
                        budget: Budget) -> None:
    stack: list[tuple[str, Field | None, int]] = []  # (section name, top-level field, paragraph)
    paras = list(ooxml.paragraphs(ooxml.parse_xml(xml)))
    over = budget.spend([m.group(0) for p in paras for m in BRACE_TAG.finditer(p.text)])
    if over:
        errors.append(LocatedError(part, None, over))
        return
    for p in paras:
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
                    if len(stack) > budget.limits.max_nesting:
                        errors.append(LocatedError(part, p.index, f"Sections nest more than "
                                                   f"{budget.limits.max_nesting} levels deep.", p.text[:200]))
                        return
                continue
            f = collector.add(name, kind, part, _location(part, p))
            if prefix in ("#", "^"):
                stack.append((name, f, p.index))
    for name, _, index in stack:
        errors.append(LocatedError(part, index, f"Section {{#{name}}} is never closed.", ""))


def analyze_template(source: bytes | BinaryIO | str, limits: AnalysisLimits | None = None) -> TemplateAnalysis:
    """Detect the syntax and fields of a validated .docx (call ``validate_docx`` first).

    Bounded by ``limits`` (see ``analysis_limits``): going over a bound is a located error, never
    an exception, and the fields listed stay within ``limits.max_fields``.
    """
    limits = limits or AnalysisLimits()
    parts = ooxml.read_template_parts(source)
    size = sum(len(xml) for xml in parts.values())
    if size > limits.max_chars:
        return TemplateAnalysis(syntax="none", fields=[], errors=[LocatedError(
            "word/document.xml", None, f"The template's text parts hold {size:,} bytes of XML; "
            f"at most {limits.max_chars:,} are analysed.")])
    syntax = detect_syntax(parts)
    collector, errors, budget = _Collector(), [], Budget(limits)
    for part, xml in parts.items():
        if budget.exhausted:
            break
        late = budget.expired()
        if late:
            errors.append(LocatedError(part, None, late))
            break
        try:
            if syntax == "jinja":
                _jinja_part(part, xml, collector, errors, budget)
            elif syntax == "mergefield":
                _mergefield_part(part, xml, collector)
            elif syntax == "dollar":
                _dollar_part(part, xml, collector, errors, budget)
            elif syntax == "docxtemplater":
                _docxtemplater_part(part, xml, collector, errors, budget)
        except RecursionError:  # a + a + a ..., x|f|f|f...: deep trees the bracket count does not see
            errors.append(LocatedError(part, None, DEEP_MESSAGE))
        except Exception as exc:  # noqa: BLE001 - whatever else an upload trips stays a located error, not a 500
            errors.append(LocatedError(part, None, f"The part could not be analysed ({type(exc).__name__}: {exc})."))
    fields, problems = bound_fields(collector.result(), limits)
    errors.extend(LocatedError(part, None, message) for part, message in problems)
    for e in errors:
        e.message = clean_message(bound_message(e.message))
    if len(errors) > MAX_ERRORS:
        extra = len(errors) - MAX_ERRORS + 1
        errors = errors[:MAX_ERRORS - 1] + [LocatedError(errors[-1].part, None, f"... and {extra:,} more errors.")]
    return TemplateAnalysis(syntax=syntax, fields=fields, errors=errors)


def missing_required(analysis: TemplateAnalysis, provided: set[str] | dict) -> list[str]:
    """Required field names absent from ``provided`` (keys of a values dict or column names)."""
    return sorted(name for name in analysis.required_names() if name not in provided)

"""Fill a DOCX template with values, for any detected syntax, through one renderer: docxtpl.

Jinja templates render as they are. MERGEFIELD, ``${x}`` and docxtemplater ``{tag}`` templates are
first *translated* once into an equivalent docxtpl template (``prepare_template``): each tag, even one
Word split across runs, is moved whole into the run where it starts (so it keeps that run's
formatting) and rewritten as a Jinja expression that looks the name up at render time. So every
syntax gets docxtpl's handling of runs, tables, headers and footers, and the same escaping: the Jinja
environment autoescapes, so user text such as ``</w:t><w:r>`` arrives in Word as literal text. That
environment is sandboxed and bounded (``pipelines/documents/jinja_env.py``): a template is code its
uploader wrote, and one that misbehaves fails its own document with ``render_failed``, nothing more.

Literal text in translated templates that looks like Jinja (``{{``, ``{%``, ``{#``) is escaped so it
stays literal. Names reach Jinja as string literals (hex-encoded when they hold unusual characters).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import jinja2
from docxtpl import DocxTemplate
from jinja2.sandbox import SecurityError
from lxml import etree

from pipelines.documents import external_refs, ooxml
from pipelines.documents.analysis_limits import AnalysisLimits
from pipelines.documents.errors import MissingFields, NotDocx, RenderFailed, TemplateSyntaxInvalid
from pipelines.documents.fields import (
    BRACE_TAG, DOLLAR_TAG, MERGEFIELD_INSTR, TemplateAnalysis, analyze_template, image_name, missing_required,
)
from pipelines.documents.images import ImageValue, parse_image_value
from pipelines.documents.jinja_env import ENV, fill_budget
from pipelines.errors import KilnError

_LITERAL_DELIMS = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
_DELIM_ESCAPES = {"{{": "{_{", "}}": "}_}", "{%": "{_%", "%}": "%_}", "{#": "{{ '{#' }}", "#}": "{{ '#}' }}"}
_SAFE_NAME = re.compile(r"[\w .\-]+")


def escape_literal(text: str) -> str:
    """Keep literal Jinja delimiters literal (docxtpl turns ``{_{`` back into ``{{`` after rendering)."""
    return _LITERAL_DELIMS.sub(lambda m: _DELIM_ESCAPES[m.group()], text)


def _name_literal(name: str) -> str:
    if _SAFE_NAME.fullmatch(name):
        return f"'{name}'"
    return "'~" + name.encode("utf-8").hex() + "'"


def _decode_name(name: str) -> str:
    return bytes.fromhex(name[1:]).decode("utf-8") if name.startswith("~") else name


def _lookup(name: str, *scopes: Any) -> Any:
    """Resolve ``name`` (dotted allowed) through scopes, innermost first, like docxtemplater does."""
    name = _decode_name(name)
    head, _, rest = name.partition(".")
    for scope in scopes:
        if isinstance(scope, dict) and (name in scope or head in scope):
            value = scope[name] if name in scope else scope[head]
            if rest and name not in scope:
                for attr in rest.split("."):
                    value = value.get(attr) if isinstance(value, dict) else None
            return "" if value is None else value
    return ""


def _sequence(value: Any) -> list:
    """A section's items: a list as is, a dict once, a truthy scalar once (as a condition), else none."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return [value]
    return [{}] if _truthy(value) else []


_FALSE_WORDS = frozenset(("", "0", "false", "no", "n", "off", "none"))
_BOOLEAN_WORDS = _FALSE_WORDS | {"1", "true", "yes", "y", "on"}


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def _rows_for(names: list[str], root: dict) -> list:
    """A table row of MERGEFIELDs repeats once per item when one of its names holds a list of dicts."""
    for name in names:
        value = root.get(_decode_name(name))
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
    return [root]


HELPERS = {"_v": _lookup, "_seq": _sequence, "_truthy": _truthy, "_rows": _rows_for}


# --- translation -------------------------------------------------------------------------

def _scopes(depth: int) -> str:
    return ", ".join([f"_s{d}" for d in range(depth, 0, -1)] + ["_root"])


def _translate_dollar(root: etree._Element) -> None:
    for p in ooxml.paragraphs(root):
        ooxml.rewrite_paragraph(
            p.element, DOLLAR_TAG, lambda m: "{{ _v(%s, _root) }}" % _name_literal(m.group(1)), escape_literal)


def _translate_docxtemplater(root: etree._Element) -> None:
    # First pass: pair sections, and note the ones whose open and close tags each fill a paragraph
    # (those become docxtpl {%p %} tags, which drop the paragraph instead of leaving it empty).
    tags: list[dict] = []
    stack: list[dict] = []
    paras = list(ooxml.paragraphs(root))
    for p in paras:
        text = p.text
        for m in BRACE_TAG.finditer(text):
            tag = {"prefix": m.group(1), "name": m.group(2), "alone": text.strip() == m.group(0), "pair": None}
            if tag["prefix"] in ("#", "^"):
                stack.append(tag)
            elif tag["prefix"] == "/" and stack:
                opened = stack.pop()
                tag["pair"], opened["pair"] = opened, tag
            tags.append(tag)
    queue = iter(tags)
    depth = 0

    def on_tag(_m: re.Match) -> str:
        nonlocal depth
        tag = next(queue)
        prefix, lit = tag["prefix"], _name_literal(tag["name"])
        pair = tag["pair"]
        para = "p " if pair is not None and tag["alone"] and pair["alone"] else " "
        if prefix == "#":
            depth += 1
            return "{%%%sfor _s%d in _seq(_v(%s, %s)) %%}" % (para, depth, lit, _scopes(depth - 1))
        if prefix == "^":
            depth += 1
            # Keep the scope numbering aligned with loops: an inverted section binds a dummy scope.
            return "{%%%sfor _s%d in ([{}] if not _truthy(_v(%s, %s)) else []) %%}" % (
                para, depth, lit, _scopes(depth - 1))
        if prefix == "/":
            depth = max(depth - 1, 0)
            return "{%%%sendfor %%}" % para
        return "{{ _v(%s, %s) }}" % (lit, _scopes(depth))

    for p in paras:
        ooxml.rewrite_paragraph(p.element, BRACE_TAG, on_tag, escape_literal)


def _new_run(template_run: etree._Element | None, text: str) -> etree._Element:
    run = etree.Element(ooxml.w("r"))
    if template_run is not None:
        rpr = template_run.find(ooxml.w("rPr"))
        if rpr is not None:
            run.append(etree.fromstring(etree.tostring(rpr)))
    t = etree.SubElement(run, ooxml.w("t"))
    t.text = text
    t.set("{%s}space" % ooxml.XML_NS, "preserve")
    return run


def _translate_mergefields(root: etree._Element) -> None:
    for t in root.iter(ooxml.w("t")):
        if t.text:
            t.text = escape_literal(t.text)
    fields: list[tuple[str, list[etree._Element], etree._Element | None]] = []  # name, runs to replace, style run
    for simple in list(root.iter(ooxml.w("fldSimple"))):
        m = MERGEFIELD_INSTR.match(simple.get(ooxml.w("instr"), ""))
        if m:
            fields.append(((m.group(1) or m.group(2)).strip(), [simple], simple.find(ooxml.w("r"))))
    collected: list[etree._Element] = []
    depth, instr, style_run, after_separate = 0, "", None, False
    for run in list(root.iter(ooxml.w("r"))):
        char = run.find(ooxml.w("fldChar"))
        kind = char.get(ooxml.w("fldCharType")) if char is not None else None
        if depth == 0 and kind != "begin":
            continue
        collected.append(run)
        if kind == "begin":
            depth += 1
            if depth == 1:
                instr, style_run, after_separate = "", run, False
        elif kind == "separate" and depth == 1:
            after_separate = True
        elif kind == "end":
            depth -= 1
            if depth == 0:
                m = MERGEFIELD_INSTR.match(instr)
                if m:
                    fields.append(((m.group(1) or m.group(2)).strip(), collected, style_run))
                collected = []
        elif depth == 1:
            instr += "".join(x.text or "" for x in run.iter(ooxml.w("instrText")))
            if after_separate and run.find(ooxml.w("t")) is not None:
                style_run = run  # the displayed result carries the formatting the author chose
    rows: dict[etree._Element, list[str]] = {}
    for name, elements, style in fields:
        row = next(elements[0].iterancestors(ooxml.w("tr")), None)
        if row is not None:
            rows.setdefault(row, []).append(name)
        scope = "_row, _root" if row is not None else "_root"
        replacement = _new_run(style, "{{ _v(%s, %s) }}" % (_name_literal(name), scope))
        first = elements[0]
        first.getparent().insert(first.getparent().index(first), replacement)
        for el in elements:
            el.getparent().remove(el)
    for row, names in rows.items():
        names_list = "[" + ", ".join(_name_literal(n) for n in dict.fromkeys(names)) + "]"
        parent = row.getparent()
        parent.insert(parent.index(row), _marker_row("{%%tr for _row in _rows(%s, _root) %%}" % names_list))
        parent.insert(parent.index(row) + 1, _marker_row("{%tr endfor %}"))


def _marker_row(text: str) -> etree._Element:
    row = etree.Element(ooxml.w("tr"))
    cell = etree.SubElement(row, ooxml.w("tc"))
    para = etree.SubElement(cell, ooxml.w("p"))
    para.append(_new_run(None, text))
    return row


_TRANSLATORS = {"dollar": _translate_dollar, "docxtemplater": _translate_docxtemplater,
                "mergefield": _translate_mergefields}


def _translate(source: bytes, syntax: str) -> bytes:
    import zipfile

    parts = ooxml.read_template_parts(io.BytesIO(source))
    rewritten = {}
    for name, xml in parts.items():
        root = ooxml.parse_xml(xml)
        _TRANSLATORS[syntax](root)
        rewritten[name] = ooxml.serialize(root)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, rewritten.get(info.filename, src.read(info.filename)))
    return out.getvalue()


# --- public API ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedTemplate:
    """A template ready to render many times: analysed once, translated once."""

    analysis: TemplateAnalysis
    docx: bytes  # docxtpl-ready bytes (the original for Jinja templates)

    @property
    def syntax(self) -> str:
        return self.analysis.syntax


def prepare_template(source: bytes, analysis: TemplateAnalysis | None = None,
                     limits: AnalysisLimits | None = None) -> PreparedTemplate:
    """Analyse (unless given, within ``limits``) and translate a validated template; raise if its tags are broken."""
    try:
        analysis = analysis or analyze_template(io.BytesIO(source), limits)
    except Exception as exc:  # only validated uploads get here; a damaged copy still fails typed
        raise NotDocx(f"The template cannot be read ({type(exc).__name__}: {exc}).") from exc
    if analysis.errors:
        first = analysis.errors[0]
        raise TemplateSyntaxInvalid(
            f"{first.message} ({first.part}, paragraph {first.paragraph})",
            errors=[e.__dict__ for e in analysis.errors])
    docx = _translate(source, analysis.syntax) if analysis.syntax in _TRANSLATORS else source
    return PreparedTemplate(analysis=analysis, docx=docx)


def _image_or_text(value: Any, name: str, label: str) -> Any:
    """The checked image; or, for a name that only loosely says image, text that is plainly not
    one (no data URI, no JSON object) left as text."""
    if image_name(name) == "loose" and not isinstance(value, (dict, ImageValue)):
        text = str(value).lstrip()
        if not text.lower().startswith("data:") and not text.startswith("{"):
            return value
    image = parse_image_value(value, label)
    return "" if image is None else image


def check_images(analysis: TemplateAnalysis, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every image field's value checked and decoded (``ImageValue``; '' when empty).

    Image fields are the fields of kind ``image`` and, inside a loop's items, the keys that name an
    image (``image``, ``logo``, ``photo``...; see ``fields.image_name``). Raises ``InvalidImage`` for
    anything that is not a usable PNG/JPEG data URI (see ``pipelines/documents/images.py``), except
    plain text for a name that only loosely says image, which stays text.
    """
    checked = None
    for f in analysis.fields:
        if f.kind == "image" and f.name in values:
            checked = checked if checked is not None else dict(values)
            checked[f.name] = _image_or_text(values[f.name], f.name, f.name)
        elif f.kind == "loop" and isinstance(values.get(f.name), list):
            keys = [c for c in f.children if image_name(c)]
            if not keys:
                continue
            checked = checked if checked is not None else dict(values)
            items = []
            for item in values[f.name]:
                if isinstance(item, dict):
                    item = dict(item)
                    for key in keys:
                        if key in item:
                            item[key] = _image_or_text(item[key], key, f"{f.name}.{key}")
                items.append(item)
            checked[f.name] = items
    return values if checked is None else checked


def coerce_conditions(analysis: TemplateAnalysis, values: dict[str, Any]) -> dict[str, Any]:
    """Optional conditions (``{% if paid %}``) take true/false-like text as booleans: a spreadsheet
    cell "no", "0", "false", "off" or empty is false (as text, any non-empty string would be true)."""
    flags = [f.name for f in analysis.fields if f.kind == "condition" and not f.required]
    if not any(isinstance(values.get(name), str) for name in flags):
        return values
    values = dict(values)
    for name in flags:
        value = values.get(name)
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
            values[name] = _truthy(value)
    return values


def _inline_images(doc: DocxTemplate, values: dict[str, Any]) -> dict[str, Any]:
    """Checked images become docxtpl InlineImages bound to this document (top level and loop items)."""
    from docx.shared import Mm
    from docxtpl import InlineImage

    def inline(value: Any) -> Any:
        if isinstance(value, ImageValue):
            return InlineImage(doc, io.BytesIO(value.data),
                               width=Mm(value.width_mm) if value.width_mm else None,
                               height=Mm(value.height_mm) if value.height_mm else None)
        if isinstance(value, list):
            return [{k: inline(v) for k, v in item.items()} if isinstance(item, dict) else item for item in value]
        return value

    return {k: inline(v) for k, v in values.items()}


def render_docx(
    template: PreparedTemplate, values: dict[str, Any], out: str | BinaryIO | None = None,
    *, check_required: bool = True,
) -> bytes | None:
    """Fill ``template`` with ``values``; returns the DOCX bytes, or writes to ``out`` and returns None.

    Raises ``MissingFields`` (listing them) when required fields have no key in ``values``,
    ``InvalidImage`` when an image field's value is not a usable PNG/JPEG data URI, and
    ``RenderFailed`` for anything else that stops the fill: the template errs with these values
    (``1/0``, an undefined filter...), breaks a sandbox rule or exceeds its budget.
    """
    if check_required:
        missing = missing_required(template.analysis, values)
        if missing:
            raise MissingFields(f"Missing values for required fields: {', '.join(missing)}.", missing=missing)
    values = coerce_conditions(template.analysis, check_images(template.analysis, values))
    try:
        doc = DocxTemplate(io.BytesIO(template.docx))
        if any(isinstance(v, (ImageValue, list)) for v in values.values()):
            values = _inline_images(doc, values)
        context = {**HELPERS, "_root": dict(values)} if template.syntax in _TRANSLATORS else dict(values)
        with fill_budget():
            doc.render(context, jinja_env=ENV)
        buffer = io.BytesIO()
        doc.save(buffer)
        # Values are escaped and images embedded, but a template can still build XML at fill time
        # (``|safe``): the filled document gets the same external-reference check as the upload.
        external_refs.check_filled_docx(buffer.getvalue())
    except KilnError:
        raise
    except SecurityError as exc:
        raise RenderFailed(f"The template did something templates may not do: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise RenderFailed(f"The template could not be filled: {exc}") from exc
    except RecursionError as exc:
        raise RenderFailed("The values or the template nest too deeply to be filled.") from exc
    except Exception as exc:  # user templates can raise anything (1/0, int('x')): the fill fails
        raise RenderFailed(f"The values do not fit the template: {type(exc).__name__}: {exc}") from exc
    if out is None:
        return buffer.getvalue()
    if isinstance(out, (str, os.PathLike)):
        with open(out, "wb") as fh:
            fh.write(buffer.getvalue())
    else:
        out.write(buffer.getvalue())
    return None

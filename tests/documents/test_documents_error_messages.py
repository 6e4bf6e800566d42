"""Macro-enabled and template main content types are refused at upload (parsed, any casing or
spacing), and no typed error of document generation carries a Python repr in its message."""

from __future__ import annotations

import re

import pytest

from pipelines.documents.errors import MacroEnabled
from pipelines.documents.render import prepare_template, render_docx
from pipelines.documents.validation import validate_docx
from pipelines.errors import KilnError
from tests.support.documents_external import base_docx, edit

MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
REPR = re.compile(r"object at 0x|<class |<zipfile|<_io\.|<function |Traceback")


def with_main_type(content_type: str) -> bytes:
    return edit(base_docx("{{ x }}"), **{"[Content_Types].xml": lambda old: old.replace(
        f'ContentType="{MAIN}"'.encode(), f"ContentType='{content_type}'".encode())})


MAIN_TYPES = {
    "docm": "application/vnd.ms-word.document.macroEnabled.main+xml",
    "docm-upper": "APPLICATION/VND.MS-WORD.DOCUMENT.MACROENABLED.MAIN+XML",
    "docm-spaced": "  application/vnd.ms-word.document.macroEnabled.main+xml ",
    "dotm": "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
    "dotx": "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
}


@pytest.mark.parametrize("case", MAIN_TYPES, ids=list(MAIN_TYPES))
def test_non_document_main_types_are_refused_at_upload(case):
    with pytest.raises(MacroEnabled) as caught:
        validate_docx(with_main_type(MAIN_TYPES[case]))
    assert caught.value.code == "macro_enabled"


def test_a_vba_project_declared_only_by_content_type_is_refused():
    data = edit(base_docx(), **{"[Content_Types].xml": lambda old: old.replace(
        b"</Types>", b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')})
    with pytest.raises(MacroEnabled):
        validate_docx(data)


def test_the_plain_document_type_in_another_casing_is_accepted():
    validate_docx(with_main_type(MAIN.upper()))


def broken_inputs():
    """(label, callable raising a typed error) for inputs that reach each stage of document generation."""
    macro = with_main_type(MAIN_TYPES["docm"])
    yield "macro-validate", lambda: validate_docx(macro)
    # The macro main type past validation (as before the fix): python-docx's error names a BytesIO.
    yield "macro-render", lambda: render_docx(prepare_template(macro), {"x": "a"})
    yield "not-a-zip-prepare", lambda: prepare_template(b"PK\x03\x04 garbage")
    yield "not-a-zip-validate", lambda: validate_docx(b"PK\x03\x04 garbage")
    yield "type-error", lambda: render_docx(prepare_template(base_docx("{{ x + 1 }}")), {"x": "a"})
    yield "call-non-callable", lambda: render_docx(prepare_template(base_docx("{{ x() }}")), {"x": "a"})
    yield "attribute-of-object", lambda: render_docx(prepare_template(base_docx("{{ x.y.z }}")), {"x": {"y": None}})
    yield "bad-image", lambda: render_docx(prepare_template(base_docx("{{ logo }}")), {"logo": {"data": []}})
    yield "missing", lambda: render_docx(prepare_template(base_docx("{{ x }}")), {})


@pytest.mark.parametrize("label,raise_it", list(broken_inputs()), ids=[label for label, _ in broken_inputs()])
def test_no_error_message_carries_a_python_repr(label, raise_it):
    try:
        raise_it()
    except KilnError as exc:
        texts = [exc.message, *map(str, exc.extra.values())]
        assert not any(REPR.search(text) for text in texts), texts
    else:
        if label not in ("attribute-of-object",):  # Jinja prints an undefined attribute as nothing
            pytest.fail(f"{label} raised nothing")

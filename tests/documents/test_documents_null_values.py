"""A null value (JSON null; an empty XLSX cell) renders as nothing, never as the text "None", in every
template syntax Kiln reads."""

from __future__ import annotations

import pytest

from pipelines.documents.render import prepare_template, render_docx
from tests.support.documents_external import base_docx, edit, text_of

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def mergefield_docx() -> bytes:
    body = ('<w:p><w:r><w:t xml:space="preserve">[</w:t></w:r>'
            '<w:fldSimple w:instr=" MERGEFIELD name "><w:r><w:t>«name»</w:t></w:r></w:fldSimple>'
            '<w:r><w:t xml:space="preserve">]</w:t></w:r></w:p>')
    return edit(base_docx(), **{"word/document.xml":
                                f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>'.encode()})


TEMPLATES = {
    "jinja": lambda: base_docx("[{{ name }}]"),
    "jinja-attribute": lambda: base_docx("[{{ person.name }}]"),
    "jinja-loop": lambda: base_docx("[{% for p in people %}{{ p.name }}{% endfor %}]"),
    "mergefield": mergefield_docx,
    "dollar": lambda: base_docx("[${name}]"),
    "docxtemplater": lambda: base_docx("[{name}]"),
    "docxtemplater-loop": lambda: base_docx("[{#people}{name}{/people}]"),
}
VALUES = {"name": None, "person": {"name": None}, "people": [{"name": None}]}


@pytest.mark.parametrize("syntax", TEMPLATES, ids=list(TEMPLATES))
def test_null_renders_empty(syntax):
    template = prepare_template(TEMPLATES[syntax]())
    values = {k: v for k, v in VALUES.items() if k in template.analysis.names}
    text = text_of(render_docx(template, values))
    assert "None" not in text
    assert "[]" in text, text

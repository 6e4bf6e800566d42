"""Rendering every syntax through docxtpl, checked against the corpus' expected output."""

from __future__ import annotations

import io
import json
import zipfile

from tests.support.corpus import PUBLIC as CORPUS_PUBLIC

import pytest

from pipelines.documents import ooxml
from pipelines.documents.errors import MissingFields, TemplateSyntaxInvalid
from pipelines.documents.render import prepare_template, render_docx
from pipelines.documents.validation import validate_docx
from tests.documents.test_documents_fields import _with_body

PUBLIC = CORPUS_PUBLIC
EXPECTED = json.loads((PUBLIC / "expected.json").read_text())["items"]


def part_paragraphs(docx: bytes) -> dict[str, list[str]]:
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        return {n: [p.text.replace("\xa0", " ") for p in ooxml.paragraphs(ooxml.parse_xml(z.read(n)))]
                for n in z.namelist() if ooxml.TEMPLATE_PART.match(n)}


def plain_context(context: dict) -> dict:
    """Corpus contexts describe docxtpl objects (RichText, InlineImage) as dicts: use their text."""
    return {k: (v.get("text", "") if isinstance(v, dict) and "__type__" in v else v) for k, v in context.items()}


def render_key(key: str, context: dict | None = None, **kw) -> bytes:
    template = prepare_template((PUBLIC / key).read_bytes())
    return render_docx(template, plain_context(context if context is not None else EXPECTED[key]["test_context"]), **kw)


@pytest.mark.parametrize("key", sorted(k for k, v in EXPECTED.items() if v.get("expected_substrings_after_render")))
def test_expected_substrings_after_render(key):
    output = render_key(key)
    validate_docx(output)  # still a valid, safe docx
    text = "\n".join(t for texts in part_paragraphs(output).values() for t in texts)
    for expected in EXPECTED[key]["expected_substrings_after_render"]:
        assert expected in text
    assert "{{" not in text and "{%" not in text and "${" not in text


def test_docxtemplater_tags_split_across_runs_per_part():
    output = part_paragraphs(render_key("docx/tag-example.docx"))
    for part, expected in EXPECTED["docx/tag-example.docx"]["expected_text_after_render"].items():
        assert "".join(output[part]) == expected


def test_docxtemplater_nested_loops():
    output = part_paragraphs(render_key("docx/tag-product-loop.docx"))
    assert "".join(output["word/document.xml"]) == EXPECTED["docx/tag-product-loop.docx"]["expected_text_after_render"]


@pytest.mark.parametrize("key", ["docx/test_macword2011.docx", "docx/test_merge_table_rows.docx"])
def test_mergefield_paragraphs_after_merge(key):
    # The source tests leave unknown fields empty (study_name, state=None): no required check here.
    output = part_paragraphs(render_key(key, check_required=False))
    assert output["word/document.xml"] == EXPECTED[key]["expected_paragraphs_after_merge"]


def test_preserve_spaces_text():
    output = part_paragraphs(render_key("docx/preserve_spaces_tpl.docx"))
    assert EXPECTED["docx/preserve_spaces_tpl.docx"]["expected_text_after_render"] in output["word/document.xml"]


def test_missing_required_fields_are_listed():
    template = prepare_template((PUBLIC / "docx/get_undeclared_variables.docx").read_bytes())
    case = EXPECTED["docx/get_undeclared_variables.docx"]["partial_context_case"]
    with pytest.raises(MissingFields) as caught:
        render_docx(template, case["context"])
    # has_degree is only tested ({% if has_degree %}): absent, it is false, not missing.
    expected = [n for n in case["expected_missing"] if n != "has_degree"]
    assert caught.value.code == "missing_fields" and caught.value.extra["missing"] == expected


def test_broken_template_cannot_be_prepared():
    with pytest.raises(TemplateSyntaxInvalid) as caught:
        prepare_template((PUBLIC / "docx/template_error_tpl.docx").read_bytes())
    assert caught.value.extra["errors"][0]["part"] == "word/document.xml"


INJECTION = '</w:t></w:r><w:r><w:t>pwned</w:t></w:r><w:r><w:t> & "quotes" <b>'


@pytest.mark.parametrize("key,field", [("docx/preserve_spaces_tpl.docx", "tag_1"), ("docx/hello.docx", "name"),
                                       ("docx/tag-example.docx", "first_name"), ("docx/test_spaces.docx", "Singleword")])
def test_user_text_cannot_inject_word_xml(key, field):
    names = EXPECTED[key]["fields"]
    output = render_key(key, {**{n: "x" for n in names}, field: INJECTION})
    validate_docx(output)
    text = "\n".join(t for texts in part_paragraphs(output).values() for t in texts)
    assert INJECTION in text  # arrived as literal text, not as markup


def test_literal_jinja_text_in_other_syntaxes_stays_literal():
    # Unpaired delimiters: the template is not Jinja (a paired {{ }} would make it one), so they are text.
    template = prepare_template(_with_body(["Price ${amount} {% and }} and {# alone"]))
    assert template.syntax == "dollar"
    output = part_paragraphs(render_docx(template, {"amount": "5"}))
    assert output["word/document.xml"] == ["Price 5 {% and }} and {# alone"]


def test_dollar_split_runs_keep_first_run_formatting():
    body = _with_body(["Dear $", "{first", "_name}", "!"])
    output = render_docx(prepare_template(body), {"first_name": "Ada"})
    assert part_paragraphs(output)["word/document.xml"] == ["Dear Ada!"]

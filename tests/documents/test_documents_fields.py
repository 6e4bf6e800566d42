"""Field detection against the public corpus (the acceptance set) and hand-made edge cases."""

from __future__ import annotations

import io
import json
import zipfile

from tests.support.corpus import PUBLIC as CORPUS_PUBLIC

import pytest

from pipelines.documents.fields import analyze_template, missing_required

PUBLIC = CORPUS_PUBLIC
EXPECTED = json.loads((PUBLIC / "expected.json").read_text())["items"]
TEMPLATES = sorted(k for k, v in EXPECTED.items() if v["kind"] == "docx_template")
SYNTAX = {"test_macword2011.docx": "mergefield", "test_merge_table_rows.docx": "mergefield",
          "test_spaces.docx": "mergefield", "tag-example.docx": "docxtemplater",
          "tag-product-loop.docx": "docxtemplater", "hello.docx": "dollar"}


@pytest.mark.parametrize("key", TEMPLATES)
def test_detected_names_equal_expected(key):
    analysis = analyze_template(PUBLIC / key)
    assert sorted(analysis.names) == sorted(EXPECTED[key]["fields"])
    assert analysis.syntax == SYNTAX.get(key.split("/")[1], "jinja")


@pytest.mark.parametrize("key", [k for k in TEMPLATES if "template_error" not in k])
def test_valid_templates_have_no_errors(key):
    assert analyze_template(PUBLIC / key).status == "valid"


def test_broken_template_fails_with_located_error():
    analysis = analyze_template(PUBLIC / "docx/template_error_tpl.docx")
    assert analysis.status == "invalid"
    [error] = analysis.errors
    assert error.part == "word/document.xml"
    assert error.paragraph == 4
    assert "endif" in error.message and "{% endif %}" in error.snippet


def test_richtext_literal_single_brace_is_not_a_field():
    analysis = analyze_template(PUBLIC / "docx/richtext_tpl.docx")
    assert analysis.names == ["example"]
    assert "context_variable" not in analysis.names


def test_comments_are_not_fields():
    analysis = analyze_template(PUBLIC / "docx/comments_tpl.docx")
    assert analysis.fields == [] and analysis.status == "valid"


def test_kinds_locations_and_loop_children():
    fields = {f.name: f for f in analyze_template(PUBLIC / "docx/get_undeclared_variables.docx").fields}
    assert fields["projects"].kind == "loop"
    assert set(fields["projects"].children) == {"name", "year", "description"}
    assert fields["is_student"].kind == "condition"
    assert fields["name"].kind == "value" and fields["name"].locations == ["body"]
    assert fields["company_name"].locations == ["header"] and fields["company_name"].parts == ["word/header1.xml"]
    assert fields["author"].locations == ["footer"]
    expected_parts = EXPECTED["docx/get_undeclared_variables.docx"]["parts"]
    for part, names in expected_parts.items():
        for name in names:
            assert part in fields[name].parts


def test_table_location_and_images():
    fields = {f.name: f for f in analyze_template(PUBLIC / "docx/inline_image_tpl.docx").fields}
    assert fields["frameworks"].kind == "loop" and "table" in fields["frameworks"].locations
    assert fields["myimage"].kind == "image"
    order = {f.name: f for f in analyze_template(PUBLIC / "docx/order_tpl.docx").fields}
    assert "table" in order["items"].locations


def test_docxtemplater_nested_loops_and_split_runs():
    products = analyze_template(PUBLIC / "docx/tag-product-loop.docx").fields[0]
    assert products.kind == "loop"
    assert {"title", "name", "reference", "avantages", "proof", "reason"} <= set(products.children)
    tags = {f.name: f for f in analyze_template(PUBLIC / "docx/tag-example.docx").fields}
    assert tags["phone"].locations == ["footer", "header"]  # every tag there is split across runs


def test_mergefield_names_with_spaces_and_table_location():
    assert analyze_template(PUBLIC / "docx/test_spaces.docx").names == ["Hello world", "More than one space", "Singleword"]
    fields = {f.name: f for f in analyze_template(PUBLIC / "docx/test_merge_table_rows.docx").fields}
    assert fields["class_code"].locations == ["table"] and fields["student_name"].locations == ["body"]


def test_missing_required_matches_partial_context_case():
    case = EXPECTED["docx/get_undeclared_variables.docx"]["partial_context_case"]
    analysis = analyze_template(PUBLIC / "docx/get_undeclared_variables.docx")
    # docxtpl's list is every name the context lacks; has_degree is only tested ({% if has_degree %}),
    # so without a value it is simply false and not required.
    assert sorted(set(analysis.names) - set(case["context"])) == case["expected_missing"]
    assert missing_required(analysis, case["context"]) == [n for n in case["expected_missing"] if n != "has_degree"]


def _with_body(text_runs: list[str]) -> bytes:
    """The corpus' simplest template with its body replaced by one paragraph made of these runs."""
    runs = "".join(f'<w:r><w:t xml:space="preserve">{t}</w:t></w:r>' for t in text_runs)
    body = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p>{runs}</w:p></w:body></w:document>")
    out = io.BytesIO()
    with zipfile.ZipFile(PUBLIC / "docx/preserve_spaces_tpl.docx") as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, body if info.filename == "word/document.xml" else src.read(info))
    return out.getvalue()


def test_optional_jinja_fields_are_not_required():
    analysis = analyze_template(io.BytesIO(_with_body(["{{ nick|default('x') }} {{ na", "me }}"])))
    fields = {f.name: f for f in analysis.fields}
    assert fields["name"].required and not fields["nick"].required


def test_unclosed_docxtemplater_section_is_located():
    analysis = analyze_template(io.BytesIO(_with_body(["{#items}", "{x}"])))
    assert analysis.status == "invalid"
    assert analysis.errors[0].part == "word/document.xml" and analysis.errors[0].paragraph == 0


def test_dollar_placeholder_split_across_runs():
    analysis = analyze_template(io.BytesIO(_with_body(["Dear $", "{first", "_name}", "!"])))
    assert analysis.syntax == "dollar" and analysis.names == ["first_name"]


@pytest.mark.parametrize("text, message", [
    ("Total {{ amount|currency }}", "Unknown filter 'currency'"),
    ("{% if amount is nosuchtest %}x{% endif %}{{ amount }}", "Unknown test 'nosuchtest'"),
    ("{{ user._secret }}", "'_secret' is private"),
    ("{% include 'other.docx' %}{{ amount }}", "cannot include"),
])
def test_tags_that_could_never_fill_are_located_at_upload(text, message):
    analysis = analyze_template(io.BytesIO(_with_body([text])))
    assert analysis.status == "invalid"
    [error] = analysis.errors
    assert message in error.message and (error.part, error.paragraph) == ("word/document.xml", 0)
    assert "amount" in analysis.names or "user" in analysis.names  # the fields are still listed


def test_listing_fields_does_not_evaluate_the_template():
    # Jinja folds constant expressions while it lists names; in the sandbox this one is not folded.
    analysis = analyze_template(io.BytesIO(_with_body(["{{ 7 ** 999999999 }} {{ 'x'|center(999999999) }} {{ n }}"])))
    assert analysis.names == ["n"] and analysis.status == "valid"


def test_unclosed_dollar_placeholder_is_located():
    analysis = analyze_template(io.BytesIO(_with_body(["Dear ${name, welcome"])))
    assert analysis.syntax == "dollar" and analysis.status == "invalid"
    assert analysis.errors[0].paragraph == 0 and "never closed" in analysis.errors[0].message

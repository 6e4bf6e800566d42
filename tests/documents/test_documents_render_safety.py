"""Uploaded templates are code: the sandbox, the fill budget, and errors that stay one document's (or row's)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from assets.documents.bulk_render import render_row
from pipelines.documents import jinja_env
from pipelines.documents.errors import RenderFailed
from pipelines.documents.fields import TemplateAnalysis, analyze_template, image_name
from pipelines.documents.images import InvalidImage
from pipelines.documents.render import prepare_template, render_docx
from tests.support.corpus import PUBLIC
from tests.documents.test_documents_images import data_uri, png_bytes


def tpl(*paragraphs: str) -> bytes:
    """The corpus' simplest template with these paragraphs as its body (text is XML-escaped by the caller)."""
    body = "".join(f'<w:p><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>' for p in paragraphs)
    xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           f"<w:body>{body}</w:body></w:document>")
    out = io.BytesIO()
    with zipfile.ZipFile(PUBLIC / "docx/preserve_spaces_tpl.docx") as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, xml if info.filename == "word/document.xml" else src.read(info))
    return out.getvalue()


def body_text(docx: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        return z.read("word/document.xml").decode()


def unchecked(source: bytes):
    """Prepared without the upload-time analysis, as if a template slipped past it: the sandbox must hold."""
    return prepare_template(source, analysis=TemplateAnalysis(syntax="jinja", fields=[], errors=[]))


SSTI = "{{ cycler.__init__.__globals__.os.popen('echo KILN_PWNED').read() }}"


def test_code_execution_template_is_invalid_at_upload_with_its_location():
    analysis = analyze_template(io.BytesIO(tpl("intro", SSTI)))
    assert analysis.status == "invalid"
    assert analysis.errors[0].paragraph == 1 and "private" in analysis.errors[0].message


@pytest.mark.parametrize("source, values, why", [
    (SSTI, {}, "may not"),
    # Names computed at fill time are invisible to the upload check: the sandbox refuses them then.
    ("{{ (cycler|attr(a)|attr(b))['os'].popen('echo KILN_PWNED').read() }}", {"a": "__init__", "b": "__globals__"},
     "no attribute '__globals__'"),
    ("{{ items.append(1) }}{{ items }}", {"items": [0]}, "may not"),  # the immutable sandbox: no mutation either
])
def test_sandbox_refuses_python_internals_at_fill_time(source, values, why):
    with pytest.raises(RenderFailed) as caught:
        render_docx(unchecked(tpl(source)), values)
    assert caught.value.code == "render_failed" and caught.value.http_status == 422
    assert why in caught.value.message


@pytest.mark.parametrize("source, why", [
    ("{% for i in range(10**9) %}x{% endfor %}", "range()"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}"
     + "{% endfor %}", "loops more than"),
    ("{% for c in 'ab' * 10**8 %}{% endfor %}", "Repeating"),
    ("{{ 7 ** (10**9) }}", "too large"),
])
def test_runaway_templates_fail_their_document(source, why):
    with pytest.raises(RenderFailed) as caught:
        render_docx(prepare_template(tpl(source)), {})
    assert why in caught.value.message


@pytest.mark.parametrize("source, why", [
    # Widths taken from the arguments, not written in the format string.
    ("{{ '%*s' % (3000000, 'x') }}", "width"),
    ("{{ '%*s'|format(3000000, 'x') }}", "width"),
    ("{{ '{:{}}'.format('x', 3000000) }}", "width"),
    ("{{ '{:{w}}'.format_map({'w': 3000000}) }}", "width"),
    # Quadratic growth through replace, as a filter and as a method.
    ("{{ ('x' * 5000)|replace('x', 'y' * 5000) }}", "Replacing"),
    ("{{ ('x' * 5000).replace('x', 'y' * 5000) }}", "Replacing"),
    ("{{ lipsum(20000) }}", "lipsum"),
])
def test_size_bombs_that_bypass_the_loop_budget_fail_their_document(source, why):
    with pytest.raises(RenderFailed) as caught:
        render_docx(unchecked(tpl(source)), {})
    assert why in caught.value.message


@pytest.mark.parametrize("source, expected", [
    ("{{ '%*s' % (5, 'x') }}|", "    x|"),
    ("{{ '%d'|format(5000000) }}", "5000000"),  # big numbers are fine as values, only not as widths
    ("{{ '{:>{}}'.format('x', 3) }}|", "  x|"),
    ("{{ 'abc'|replace('b', 'xyz') }}", "axyzc"),
    ("{{ 'a-b-c'.replace('-', '+') }}", "a+b+c"),
])
def test_ordinary_formatting_and_replacing_still_work(source, expected):
    assert expected in body_text(render_docx(unchecked(tpl(source)), {}))


def test_a_few_paragraphs_of_lipsum_still_work():
    assert "<w:t" in body_text(render_docx(unchecked(tpl("{{ lipsum(2, html=False) }}")), {}))


def test_loop_budget_counts_every_loop_of_one_document_and_resets_for_the_next(monkeypatch):
    monkeypatch.setattr(jinja_env, "MAX_LOOP_ITERATIONS", 10)
    template = prepare_template(tpl("{% for i in items %}{{ i }}{% endfor %}", "{% for i in items %}{{ i }}{% endfor %}"))
    assert "01234" in body_text(render_docx(template, {"items": list(range(5))}))  # 10 iterations in all: allowed
    assert "01234" in body_text(render_docx(template, {"items": list(range(5))}))  # a new document, a new budget
    with pytest.raises(RenderFailed, match="loops more than"):
        render_docx(template, {"items": list(range(6))})


def test_output_is_bounded_per_part(monkeypatch):
    monkeypatch.setattr(jinja_env, "MAX_OUTPUT_CHARS", 50_000)
    template = prepare_template(tpl("{% for i in range(20000) %}{{ word }}{% endfor %}"))
    with pytest.raises(RenderFailed, match="would exceed"):
        render_docx(template, {"word": "long"})


@pytest.mark.parametrize("source, values", [
    ("{{ 1/(n|int) }}", {"n": "0"}),
    ("{{ name + 1 }}", {"name": "a"}),
    ("{{ '%d'|format(n) }}", {"n": "x"}),
])
def test_any_runtime_error_is_render_failed_not_a_crash(source, values):
    with pytest.raises(RenderFailed) as caught:
        render_docx(prepare_template(tpl(source)), values)
    assert caught.value.code == "render_failed" and caught.value.message


def test_one_bad_row_fails_only_that_row(tmp_path: Path, monkeypatch):
    template = prepare_template(tpl("{{ name }}: {{ 1/(n|int) }}", "{% for x in items %}{{ x }}{% endfor %}"))
    good = render_row(template, 1, {"name": "Ann", "n": "2", "items": "[1]"}, tmp_path / "1.docx")
    assert good.error is None and "Ann: 0.5" in body_text((tmp_path / "1.docx").read_bytes())
    zero = render_row(template, 2, {"name": "Bob", "n": "0", "items": "[]"}, tmp_path / "2.docx")
    assert zero.error.code == "render_failed" and "ZeroDivisionError" in zero.error.message
    deep = render_row(template, 3, {"name": "Cy", "n": "1", "items": "[" * 200_000}, tmp_path / "3.docx")
    assert deep.error.code == "wrong_type"

    def explode(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("assets.documents.bulk_render.render_docx", explode)  # render_row lives there
    odd = render_row(template, 4, {"name": "Di", "n": "1", "items": "[]"}, tmp_path / "4.docx")
    assert odd.error.code == "render_failed" and "RecursionError" in odd.error.message


# --- conditions ---------------------------------------------------------------------------

PAID = tpl("{% if paid %}PAID{% else %}UNPAID{% endif %} {{ name }}", "{{ 'VIP' if vip else 'std' }}")


def test_truth_only_conditions_are_optional_conditions():
    fields = {f.name: f for f in prepare_template(PAID).analysis.fields}
    assert (fields["paid"].kind, fields["paid"].required) == ("condition", False)
    assert (fields["vip"].kind, fields["vip"].required) == ("condition", False)
    assert fields["name"].required


@pytest.mark.parametrize("cell, shown", [
    ("false", "UNPAID"), ("0", "UNPAID"), ("no", "UNPAID"), ("N", "UNPAID"), ("off", "UNPAID"), ("", "UNPAID"),
    ("true", "PAID"), ("1", "PAID"), ("Yes", "PAID"), ("y", "PAID"), ("on", "PAID"), ("paid in full", "PAID"),
])
def test_bulk_cells_drive_conditions_as_booleans(tmp_path: Path, cell, shown):
    pending = render_row(prepare_template(PAID), 1, {"name": "Ann", "paid": cell, "vip": "no"}, tmp_path / "r.docx")
    assert pending.error is None
    text = body_text((tmp_path / "r.docx").read_bytes())
    assert f">{shown} Ann<" in text and ">std<" in text


def test_a_missing_condition_column_is_false(tmp_path: Path):
    assert render_row(prepare_template(PAID), 1, {"name": "Ann"}, tmp_path / "r.docx").error is None
    assert ">UNPAID Ann<" in body_text((tmp_path / "r.docx").read_bytes())


def test_compared_values_stay_text_and_required():
    template = prepare_template(tpl("{% if status == 'paid' %}P{% else %}U{% endif %}{% if paid %}!{% endif %}"
                                    "{{ paid }}"))
    fields = {f.name: f for f in template.analysis.fields}
    assert fields["status"].required and fields["paid"].kind == "value" and fields["paid"].required
    assert ">P!no<" in body_text(render_docx(template, {"status": "paid", "paid": "no"}))


# --- image fields -------------------------------------------------------------------------

@pytest.mark.parametrize("name, strength", [
    ("signature_date", None), ("photographer", None), ("logout_url", None), ("photo_caption", None),
    ("logo", "definite"), ("company_logo", "definite"), ("companyLogo", "definite"), ("signature", "definite"),
    ("signature_image", "definite"), ("myimage", "definite"), ("profile-photo", "definite"),
    ("myimageratio", "loose"), ("image_caption", "loose"),
])
def test_image_names_are_whole_words(name, strength):
    assert image_name(name) == strength


def test_text_fields_that_merely_mention_an_image_word_take_text():
    template = prepare_template(tpl("{{ signature_date }} {{ photographer }} {{ image_caption }}"))
    kinds = {f.name: f.kind for f in template.analysis.fields}
    assert kinds == {"image_caption": "image", "photographer": "value", "signature_date": "value"}
    out = body_text(render_docx(template, {"signature_date": "2024-05-01", "photographer": "Ann",
                                           "image_caption": "Figure 1"}))
    assert "2024-05-01 Ann Figure 1" in out


def test_loose_image_field_still_takes_and_checks_images():
    template = prepare_template(tpl("{{ image_caption }}"))
    assert "<w:drawing>" in body_text(render_docx(template, {"image_caption": data_uri(png_bytes())}))
    with pytest.raises(InvalidImage):
        render_docx(template, {"image_caption": "data:image/png;base64,%%%"})


def test_definite_image_field_refuses_text():
    with pytest.raises(InvalidImage) as caught:
        render_docx(prepare_template(tpl("{{ company_logo }}")), {"company_logo": "see attached"})
    assert "'company_logo'" in caught.value.message

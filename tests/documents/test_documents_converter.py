"""DOCX -> PDF with real LibreOffice: rendered corpus templates, a corrupt file, a hang."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.corpus import PUBLIC as CORPUS_PUBLIC

import pytest

from pipelines.documents.errors import ConversionFailed, ConversionTimeout, ConverterUnavailable
from pipelines.documents.render import prepare_template, render_docx
from resources.converter import DocumentConverter

PUBLIC = CORPUS_PUBLIC / "docx"

# LibreOffice is a declared system dependency (.ci/system-deps.sh installs it); its absence is a
# broken environment, reported as a failure rather than a skip.
if shutil.which("soffice") is None:
    raise RuntimeError("soffice not found: run .ci/system-deps.sh (see docs) before these tests")


@pytest.fixture(scope="module")
def converter():
    conv = DocumentConverter(batch_size=10)
    yield conv
    conv.close()


def pdf_text(path: Path) -> str:
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return ""


def test_rendered_templates_convert_in_one_batch(converter, tmp_path):
    filled = {
        "hello.docx": {"name": "Ivan Bicalho"},
        "preserve_spaces_tpl.docx": {"tag_1": "looking", "tag_2": "too"},
        "tag-example.docx": {"first_name": "Hipp", "last_name": "Edgar", "phone": "0652455478", "description": "Web"},
    }
    paths = []
    for name, values in filled.items():
        out = tmp_path / name
        render_docx(prepare_template((PUBLIC / name).read_bytes()), values, out)
        paths.append(out)
    pdfs = converter.convert_many(paths)
    assert [p.name for p in pdfs] == [p.with_suffix(".pdf").name for p in paths]
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and b"/Type /Page" in data.replace(b"/Type/Page", b"/Type /Page")
    assert "Hello Ivan Bicalho!" in pdf_text(pdfs[0])
    assert "The propeller is looking for spicy food too." in pdf_text(pdfs[1])


def test_corrupt_docx_fails_alone_with_a_typed_error(converter, tmp_path):
    good = tmp_path / "good.docx"
    shutil.copy(PUBLIC / "order_tpl.docx", good)
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04" + b"\x00garbage" * 100)
    results = converter.convert_batch([bad, good])
    assert isinstance(results[0].error, ConversionFailed) and results[0].error.code == "conversion_failed"
    assert results[1].error is None and results[1].pdf.read_bytes().startswith(b"%PDF-")
    with pytest.raises(ConversionFailed):
        converter.convert_one(bad)


def test_hang_is_killed_and_reported_as_retryable(tmp_path):
    # A stand-in soffice that never answers: the batch timeout must kill it, not wait forever.
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\nsleep 60\n")
    fake.chmod(0o755)
    doc = tmp_path / "a.docx"
    shutil.copy(PUBLIC / "hello.docx", doc)
    conv = DocumentConverter(soffice_path=str(fake), timeout_base_s=0.5, timeout_per_document_s=0.1)
    try:
        with pytest.raises(ConversionTimeout) as caught:
            conv.convert_one(doc)
    finally:
        conv.close()
    assert caught.value.retryable and caught.value.code == "conversion_timeout"


def test_each_instance_has_its_own_profile(tmp_path):
    a, b = DocumentConverter(), DocumentConverter()
    try:
        assert a._profile_path() != b._profile_path()
    finally:
        a.close()
        b.close()


def test_missing_soffice_is_unavailable(tmp_path):
    conv = DocumentConverter(soffice_path=str(tmp_path / "no-such-soffice"))
    with pytest.raises(ConverterUnavailable, match="system-deps"):
        conv.convert_one(PUBLIC / "hello.docx")

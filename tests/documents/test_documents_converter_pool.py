"""PDF on every core: a pool of converters, each its own LibreOffice profile, converts the parts of a
batch at the same time and hands the results back in input order."""

from __future__ import annotations

import io
import shutil
import threading
import time
import zipfile

import dagster as dg
import pytest


from pipelines.documents.render import prepare_template, render_docx
from resources.converter import DocumentConverter
from resources.converter_pool import ConverterPool, _split, converter_count
from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.support.documents_product import name_email_template, run_bulk_cycle

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

if shutil.which("soffice") is None:
    raise RuntimeError("soffice not found: run .ci/system-deps.sh (see docs) before these tests")


def test_split_keeps_order_and_balances():
    assert _split(list(range(7)), 2) == [[0, 1, 2, 3], [4, 5, 6]]
    assert _split([1], 4) == [[1]]
    assert _split([], 3) == []
    assert converter_count(3) == 3 and converter_count(None) >= 1


def test_parts_convert_concurrently_on_distinct_profiles_and_come_back_in_order(tmp_path, monkeypatch):
    calls: list[tuple[str, float, float, list[str]]] = []
    lock = threading.Lock()
    real = DocumentConverter._run_soffice

    def spy(self, staged, outdir, timeout):
        started = time.monotonic()
        try:
            return real(self, staged, outdir, timeout)
        finally:
            with lock:
                calls.append((str(self._profile), started, time.monotonic(), [p.name for p in staged]))

    monkeypatch.setattr(DocumentConverter, "_run_soffice", spy)
    template = prepare_template(name_email_template())
    paths = []
    for i in range(4):
        out = tmp_path / f"d{i}.docx"
        render_docx(template, {"name": f"Person {i}", "email": f"p{i}@example.test"}, out)
        paths.append(out)
    pool = ConverterPool(2)
    try:
        assert pool.batch_size == 2 * pool.converters[0].batch_size
        results = pool.convert_batch(paths)
    finally:
        pool.close()
    assert [r.source for r in results] == [p.resolve() for p in paths]
    assert all(r.error is None and r.pdf.read_bytes().startswith(b"%PDF-") for r in results)
    assert [r.pdf.name for r in results] == [f"d{i}.pdf" for i in range(4)]
    assert len(calls) == 2 and calls[0][0] != calls[1][0], "each converter has its own profile"
    (_, a_start, a_end, _), (_, b_start, b_end, _) = calls
    assert a_start < b_end and b_start < a_end, "the two parts converted at the same time"
    assert sorted(len(c[3]) for c in calls) == [2, 2]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bulk_pdf_run_on_a_pool_hands_each_converter_a_batch_and_keeps_row_order(api, db_url, monkeypatch):
    monkeypatch.setenv("KILN_DOCUMENTS_PDF_BATCH_SIZE", "2")
    get_settings.cache_clear()
    parts: list[int] = []
    real = DocumentConverter.convert_batch
    monkeypatch.setattr(DocumentConverter, "convert_batch", lambda self, paths: (parts.append(len(paths)), real(self, paths))[1])
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers, files={"file": ("t.docx", name_email_template(), DOCX)})
    rows = b"name,email\r\nA1,a@x.test\r\nA2,b@x.test\r\nA3,\r\nA4,d@x.test\r\nA5,e@x.test\r\n"
    run = api.client.post(f"/v1/templates/{r.json()['id']}/bulk-runs", headers=owner.headers,
                          data={"format": "pdf", "filename_pattern": "{name}"},
                          files={"file": ("p.csv", rows, "text/csv")}).json()
    pool = ConverterPool(2, factory=lambda: DocumentConverter(batch_size=2))
    try:
        with dg.instance_for_test() as instance:
            ((_, result),) = run_bulk_cycle(instance, {"database": DatabaseResource(url=db_url),
                                                       "object_store": api.store}, converter=pool)
    finally:
        pool.close()
        get_settings.cache_clear()
    assert result.success
    # Rows 1-4 are one batch of 2 x 2 (row 3 fails before conversion: 3 documents, split 2 + 1), row 5 the next.
    assert parts == [2, 1, 1], parts
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["succeeded_rows"], done["failed_rows"]) == (4, 1)
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert z.namelist() == ["A1.pdf", "A2.pdf", "A4.pdf", "A5.pdf"]
        assert all(z.read(n).startswith(b"%PDF-") for n in z.namelist())

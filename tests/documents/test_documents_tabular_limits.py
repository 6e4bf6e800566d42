"""Spreadsheet reading at the edges: XLSX under a server-made name, XLSX zip bombs, and CSV encodings
that only show after the first 64 KiB."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from pipelines.documents import xlsx_limits
from pipelines.documents.errors import TabularInvalid, XlsxBomb
from pipelines.documents.tabular import (
    SCAN_CHUNK,
    SNIFF_BYTES,
    iter_rows,
    sniff_file_encoding,
    validate_row,
)
from tests.support.documents_product import xlsx_bytes


def test_xlsx_under_a_name_without_extension_is_read(tmp_path):
    # Uploads are stored (and downloaded by the API and the worker) as a file named just "rows".
    path = tmp_path / "rows"
    path.write_bytes(xlsx_bytes([["name", "email"], ["Renée", "r@example.test"], ["Bob", "b@example.test"]]))
    columns, rows = iter_rows(path)
    assert columns == ["name", "email"]
    assert list(rows) == [{"name": "Renée", "email": "r@example.test"}, {"name": "Bob", "email": "b@example.test"}]


def _bomb(path: Path, shared_strings_mib: int) -> None:
    """A valid workbook plus a shared-strings part of ``shared_strings_mib`` MiB of one letter."""
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([["name"], ["x"]]))) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            out.writestr(info.filename, data)
        with out.open("xl/sharedStrings.xml", "w") as fh:
            fh.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>')
            for _ in range(shared_strings_mib):
                fh.write(b"A" * (1024 * 1024))
            fh.write(b"</t></si></sst>")


def test_xlsx_bomb_is_refused_before_openpyxl_loads_it(tmp_path, monkeypatch):
    path = tmp_path / "rows"
    _bomb(path, 40)
    assert path.stat().st_size < 200 * 1024
    import openpyxl

    def must_not_load(*args, **kwargs):
        raise AssertionError("openpyxl was handed a zip bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", must_not_load)
    with pytest.raises(XlsxBomb) as caught:
        iter_rows(path)
    assert caught.value.code == "xlsx_zip_bomb" and caught.value.http_status == 422
    assert "xl/sharedStrings.xml" in caught.value.message


def test_xlsx_parts_loaded_whole_are_capped_even_at_a_modest_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx_limits, "MAX_XLSX_LOADED_WHOLE", 2 * 1024 * 1024)
    path = tmp_path / "rows"
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([["name"], ["x"]]))) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:  # stored: ratio 1, only the size cap can stop it
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
        out.writestr("xl/sharedStrings.xml", b"<sst>" + b"B" * (3 * 1024 * 1024) + b"</sst>")
    with pytest.raises(XlsxBomb, match="shared strings"):
        iter_rows(path)


def test_xlsx_with_too_many_entries_is_refused(tmp_path):
    path = tmp_path / "rows"
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([["name"], ["x"]]))) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
        for i in range(2001):
            out.writestr(f"xl/media/pad{i}.bin", b"")
    with pytest.raises(XlsxBomb, match="entries"):
        iter_rows(path)


def test_damaged_xlsx_is_a_typed_error_without_the_server_path(tmp_path):
    path = tmp_path / "rows"
    good = xlsx_bytes([["name"], ["x"]])
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            out.writestr(info.filename, b"<worksheet><oops" if info.filename.startswith("xl/worksheets/") else data)
    with pytest.raises(TabularInvalid) as caught:
        iter_rows(path)
    assert caught.value.code == "tabular_invalid" and str(tmp_path) not in caught.value.message


def _late_accents_csv(encoding: str) -> bytes:
    lines = ["name,email"] + [f"Person{i},p{i}@x.test" for i in range(3000)] + ["José,j@x.test", "Zoë,z@x.test"]
    data = "\r\n".join(lines).encode(encoding)
    assert data[:SNIFF_BYTES].isascii() and len(data) > SNIFF_BYTES
    return data


def test_cp1252_accents_after_the_sniff_window_decode(tmp_path):
    path = tmp_path / "rows"
    path.write_bytes(_late_accents_csv("cp1252"))
    rows = list(iter_rows(path)[1])
    assert rows[-2:] == [{"name": "José", "email": "j@x.test"}, {"name": "Zoë", "email": "z@x.test"}]
    assert [validate_row(r, ["name"]) for r in rows[-2:]] == [None, None]


def test_late_utf8_stays_utf8_and_a_stray_latin1_byte_fails_only_its_row(tmp_path):
    head = _late_accents_csv("utf-8")  # valid multi-byte UTF-8 after the window: the file is UTF-8
    path = tmp_path / "rows"
    path.write_bytes(head + "\r\nRenée,r@x.test\r\n".encode("latin-1"))
    rows = list(iter_rows(path)[1])
    assert rows[-3]["name"] == "José" and rows[-2]["name"] == "Zoë"
    assert validate_row(rows[-1], ["name"]).code == "bad_encoding"


def test_encoding_scan_reads_in_bounded_chunks(tmp_path):
    path = tmp_path / "rows"
    path.write_bytes(b"name,email\r\n" + b"Person,p@x.test\r\n" * (3 * SCAN_CHUNK // 17) + "Zoë,z\r\n".encode("cp1252"))
    reads: list[int] = []

    class Recording(io.BufferedReader):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    with Recording(io.FileIO(path, "rb")) as fh:
        encoding = sniff_file_encoding(fh)
    assert encoding != "utf-8" and "ë" == "ë".encode("cp1252").decode(encoding)
    assert reads and all(0 < size <= SCAN_CHUNK for size in reads), "never the whole file at once"

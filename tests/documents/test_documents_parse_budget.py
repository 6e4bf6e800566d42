"""Parsing untrusted spreadsheets is linear and bounded, and never blocks the API's event loop.

Security review #7: a 64 KB CSV of quotes made ``csv.Sniffer`` backtrack for ~60 s while holding the
GIL, freezing every request. Also here: the regular expressions run on cells and format strings
(linear on MiB inputs), adversarial CSVs (typed outcomes, fast), and the row limit checked at submit.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pipelines.documents import jinja_env
from pipelines.documents.errors import TabularInvalid
from pipelines.documents.tabular import detect_delimiter, is_formula, iter_rows, validate_row
from tests.support.documents_product import docx_with_paragraphs
from tests.support.server import serve
from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import system_session
from warehouse.documents import BulkRun
from warehouse.models import Artifact, Job

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
REVIEW_PAYLOAD = ("first_name,last_name,amount\n" + '"\n' * 32000).encode()
MIB = 1024 * 1024


def _timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


# --------------------------------------------------------------------------- delimiter detection

@pytest.mark.parametrize(("sample", "delimiter"), [
    ("a,b,c\n1,2,3\n", ","),
    ("name;amount\nAda;1,50\nBob;2,75\n", ";"),  # decimal commas do not fool it
    ("a\tb\n1\t2\n", "\t"),
    ('a|b|c\n"x|y"|2|3\n', "|"),  # a delimiter inside quotes does not count
    ('name,note\n"Doe; Jane","a;b;c"\n', ","),
    ('a,b\n"line one\nline two",2\n', ","),  # a quoted newline is not a line end
    ("name\nAda\nBob\n", ","),  # one column
    ("a;b", ";"),  # a header without a line end
    ("", ","),
])
def test_delimiter_detection(sample, delimiter):
    assert detect_delimiter(sample) == delimiter


@pytest.mark.parametrize("sample", [
    REVIEW_PAYLOAD.decode(),
    '"' * (64 * 1024),
    '"a",' * 16000,
    ",;\t|" * 16000 + "\n",
    "a," * 20000 + "\n" + '"",' * 20000,
])
def test_delimiter_detection_is_linear_on_hostile_samples(sample):
    _, seconds = _timed(detect_delimiter, sample)
    assert seconds < 0.5


# --------------------------------------------------------------------------- adversarial CSV files

ADVERSARIAL_CSVS = {
    "review_payload": REVIEW_PAYLOAD,
    "only_quotes": b'"' * (2 * MIB),
    "long_line_no_newline": b"a" * (8 * MIB),
    "many_columns": b",".join(b"c%d" % i for i in range(50_000)) + b"\n" + b"1," * 49_999 + b"1\n",
    "nul_bytes": b"name,email\n" + b"A\x00n,a@b\n" * 1000 + b"\x00" * MIB,
    "lone_cr": b"name,email" + b"\rAnn,a@b" * 100_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_CSVS))
def test_hostile_csv_files_read_fast_with_typed_outcomes(tmp_path, name):
    path = tmp_path / "rows"
    path.write_bytes(ADVERSARIAL_CSVS[name])
    started = time.perf_counter()
    try:
        columns, rows = iter_rows(path)
        for row in rows:
            validate_row(row, [])  # the per-row checks run on every cell
    except TabularInvalid:
        pass  # a typed 422; anything else fails the test
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------- regexes on user text

@pytest.mark.parametrize("cell", [
    "-" + "1" * MIB + "x",  # was quadratic: the phone/date pattern
    "-" + "a" * MIB,  # was quadratic: the function-call pattern
    "+" + " " * MIB + "x",
    "-" + "1 " * (MIB // 2) + "x",
    "-" + "11." * (MIB // 3) + "e",
    "@" + "a(" * (MIB // 2),
])
def test_formula_check_is_linear_on_mebibyte_cells(cell):
    _, seconds = _timed(is_formula, cell)
    assert seconds < 1


@pytest.mark.parametrize("fmt", ["{" + ":" * 200_000, "{" + ":1" * 100_000, "{:" + "1" * 6 + "x" * 200_000,
                                 "%" + " " * 200_000, "{:" * 100_000])
def test_format_width_checks_are_linear(fmt):
    _, seconds = _timed(jinja_env._check_format, fmt)
    assert seconds < 0.5


def test_format_width_checks_still_refuse_wide_formats():
    for fmt in ("{:99999999}", "{0:>10000000}", "%99999999s"):
        with pytest.raises(jinja_env.SecurityError):
            jinja_env._check_format(fmt)
    jinja_env._check_format("{:>10}")  # a modest width is fine


# --------------------------------------------------------------------------- the API

def _template(api, owner) -> str:
    data = docx_with_paragraphs([["{{ first_name }} {{ last_name }}: {{ amount }}"]])
    r = api.client.post("/v1/templates", headers=owner.headers, files={"file": ("t.docx", data, DOCX)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


BIG_QUOTES = ("first_name,last_name,amount\n" + '"\n' * 1_000_000).encode()  # 2 MB: the streamed path
MANY_ROWS = b"first_name,last_name,amount\n" + b"Ada,Lovelace,12.50\n" * 100_000  # at the default limit


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hostile_uploads_answer_fast_and_the_event_loop_keeps_serving(api, db_url):
    owner = api.tenant()
    url = f"/v1/templates/{_template(api, owner)}/bulk-runs"
    with serve(api.app) as base, httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/healthz").status_code == 200
        for payload, limit in ((REVIEW_PAYLOAD, 2), (BIG_QUOTES, 3), (MANY_ROWS, 5)):
            outcome: dict = {}

            def submit(payload=payload, outcome=outcome) -> None:
                started = time.perf_counter()
                r = client.post(url, headers=owner.headers, files={"file": ("r.csv", payload, "text/csv")})
                outcome.update(status=r.status_code, body=r.json(), seconds=time.perf_counter() - started)

            health_times: list[float] = []
            thread = threading.Thread(target=submit)
            thread.start()
            while thread.is_alive() and len(health_times) < 500:
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                health_times.append(time.perf_counter() - started)
            thread.join(60)
            assert outcome["status"] in (202, 422), outcome  # a typed answer, never a 500
            assert outcome["seconds"] < limit, (len(payload), outcome)
            assert health_times and max(health_times) < 1, health_times


@pytest.mark.parametrize("name", ["only_quotes", "nul_bytes", "many_columns", "long_line_no_newline"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hostile_csv_uploads_get_typed_answers(api, db_url, name):
    owner = api.tenant()
    url = f"/v1/templates/{_template(api, owner)}/bulk-runs"
    started = time.perf_counter()
    r = api.client.post(url, headers=owner.headers, files={"file": ("r.csv", ADVERSARIAL_CSVS[name], "text/csv")})
    assert time.perf_counter() - started < 5
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["code"] in ("missing_columns", "tabular_invalid")


def _xlsx(rows: int) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["first_name", "last_name", "amount"])
    for i in range(rows):
        sheet.append([f"F{i}", f"L{i}", str(i)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _counts(api) -> tuple[int, int, int]:
    with system_session(api.system) as s:
        return (s.scalar(select(func.count()).select_from(BulkRun)), s.scalar(select(func.count()).select_from(Job)),
                s.scalar(select(func.count()).select_from(Artifact).where(Artifact.kind == "input")))


def _stored_files(api) -> list[Path]:
    return [p for p in Path(api.store.root).rglob("*") if p.is_file()]


def test_row_limit_is_checked_at_submit_and_keeps_nothing(api):
    api.settings.documents_max_rows = 3
    owner = api.tenant()
    url = f"/v1/templates/{_template(api, owner)}/bulk-runs"
    before, files_before = _counts(api), len(_stored_files(api))
    csv_rows = b"first_name,last_name,amount\n" + b"Ada,Lovelace,1\n" * 4 + b"\n\n"
    for data, kind in ((csv_rows, "text/csv"), (_xlsx(4), "application/octet-stream")):
        r = api.client.post(url, headers=owner.headers, files={"file": ("r", data, kind)})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "too_many_rows" and r.json()["max_rows"] == 3
        assert "3" in r.json()["detail"]
    assert _counts(api) == before and len(_stored_files(api)) == files_before
    # At the limit (blank lines are not rows) the run is accepted.
    r = api.client.post(url, headers=owner.headers,
                        files={"file": ("r.csv", b"first_name,last_name,amount\n" + b"Ada,Lovelace,1\n" * 3 + b"\n",
                                        "text/csv")})
    assert r.status_code == 202, r.text
    r = api.client.post(url, headers=owner.headers, files={"file": ("r.xlsx", _xlsx(3), "application/octet-stream")})
    assert r.status_code == 202, r.text


def test_control_characters_in_the_form_are_refused_before_reading(api):
    owner = api.tenant()
    url = f"/v1/templates/{_template(api, owner)}/bulk-runs"
    before = _counts(api)
    r = api.client.post(url, headers=owner.headers, data={"filename_pattern": "{last_name}\x00{row}"},
                        files={"file": ("r.csv", b"first_name,last_name,amount\nA,B,1\n", "text/csv")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_filename_pattern", r.text
    assert _counts(api) == before

"""Bulk runs under stress: a worker SIGKILLed mid-run then resumed, and a CSV full of bad rows."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from resources.dagster_resources import DatabaseResource
from sensors.documents import bulk_runs_dispatch_sensor
from tests.support.documents_product import (
    CSV_DIR, docx_text, docx_with_paragraphs, name_email_template, run_bulk_cycle, country_template,
)
from tests.support.api import api, path_of  # noqa: F401 - fixture
from warehouse import jobs
from warehouse.db import system_session
from warehouse.documents import BulkRow
from warehouse.models import Artifact, Job

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
REPO = Path(__file__).resolve().parents[2]


def _template(api, tenant, data: bytes) -> str:
    r = api.client.post("/v1/templates", headers=tenant.headers, files={"file": ("t.docx", data, DOCX)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _bulk(api, tenant, template_id, csv_bytes: bytes, **form) -> dict:
    r = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=tenant.headers, data=form,
                        files={"file": ("rows.csv", csv_bytes, "text/csv")})
    assert r.status_code == 202, r.text
    return r.json()


def _report(api, run: dict) -> list[dict]:
    text = api.client.get(path_of(run["report_url"])).content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def _zip_names(api, run: dict) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(run["zip_url"])).content)) as z:
        assert z.testzip() is None
        return z.namelist()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigkill_mid_run_then_resume_produces_each_row_exactly_once(api, db_url, tmp_path, monkeypatch):
    owner = api.tenant()
    template_id = _template(api, owner, name_email_template())
    lines = ["name,email"] + [f"Person {i % 300},p{i}@example.test" for i in range(1000)]  # names repeat
    run = _bulk(api, owner, template_id, ("\r\n".join(lines) + "\r\n").encode(), filename_pattern="{name}")
    run_id = uuid.UUID(run["id"])

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "KILN_DATABASE_URL": db_url,
           "KILN_OBJECTS_DIR": api.store.root, "KILN_DOCUMENTS_ROWS_PER_COMMIT": "10", "PYTHONPATH": str(REPO)}
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    resources = {"database": DatabaseResource(url=db_url), "object_store": api.store}
    with dg.DagsterInstance.get() as instance:
        tick = bulk_runs_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        (request,) = tick.run_requests
        spec = json.dumps({"job_name": request.job_name, "partition_key": request.partition_key, "tags": request.tags})
        worker = subprocess.Popen([sys.executable, "-m", "tests.support.documents_bulk_worker", spec], cwd=REPO, env=env)

        def recorded() -> int:
            with system_session(api.system) as s:
                return s.scalar(select(func.count()).select_from(BulkRow).where(BulkRow.bulk_run_id == run_id))

        try:
            while recorded() < 100 and worker.poll() is None:
                time.sleep(0.02)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        done_before_kill = recorded()
        assert 100 <= done_before_kill < 1000, "the worker must die mid-run"

        # What Dagster's run monitoring + the run-status sensor do for a lost worker: a retryable failure.
        with system_session(api.system) as s:
            assert jobs.fail_job(s, uuid.UUID(run["job_id"]), error_code="worker_lost", message="killed", retryable=True,
                                 policy=jobs.RetryPolicy(base_seconds=0, max_seconds=0)) == "retrying"
        mid = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
        assert mid["status"] == "retrying" and mid["succeeded_rows"] == done_before_kill

        ((retry_request, result),) = run_bulk_cycle(instance, resources)
        assert result.success and retry_request.run_key.endswith(":2")

    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"]) == ("succeeded", 1000, 1000, 0)
    names = _zip_names(api, done)
    assert len(names) == 1000 and len({n.lower() for n in names}) == 1000
    assert {"Person 0.docx", "Person 0-2.docx", "Person 0-4.docx"} <= set(names)
    report = _report(api, done)
    assert [int(r["row"]) for r in report] == list(range(1, 1001))
    assert {r["status"] for r in report} == {"succeeded"} and sorted(r["output_filename"] for r in report) == sorted(names)
    with system_session(api.system) as s:
        per_row = s.scalar(select(func.count()).select_from(Artifact).where(
            Artifact.job_id.in_(select(Job.id).where(Job.subject_id == run_id)), Artifact.kind == "intermediate"))
        assert per_row == 1000, "no row's file was recorded twice"
    stored = [p for p in Path(api.store.root).rglob("row-*.docx")]
    assert len(stored) == 1000, "a redone batch overwrote its objects instead of orphaning copies"


def _bad_rows_csv() -> bytes:
    good = lambda i: f'Good {i},g{i}@example.test,"[1, 2]"'.encode()  # noqa: E731
    rows = [b"name,email,items", good(1),
            b"Missing Email,,[]",
            b'Wrong Type,w@example.test,"not a list"',
            b"Big," + b"x" * (10 * 1024 * 1024) + b",[]",
            b'"=HYPERLINK(""http://evil"",""click"")",f@example.test,[]',
            "Caf\u00e9 UTF-8,c@example.test,[]".encode("utf-8"),
            "Caf\u00e9 Latin-1,l@example.test,[]".encode("latin-1"),
            good(2),
            b'-Smith,"+44 20 7946 0958",[]',  # leading - and + that are not formulas
            b"\"'=1+1\",literal@example.test,[]",  # a formula escaped the spreadsheet way: literal text
            b"@handle,h@example.test,[]"]
    return b"\r\n".join(rows) + b"\r\n"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_rows_fail_alone_with_clear_errors(api, db_url):
    owner = api.tenant()
    template = docx_with_paragraphs([["Dear {{ name }} ({{ email }})"],
                                     ["{% for i in items %}{{ i }};{% endfor %}"]])
    template_id = _template(api, owner, template)
    run = _bulk(api, owner, template_id, _bad_rows_csv(), filename_pattern="{name}")
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, {"database": DatabaseResource(url=db_url), "object_store": api.store})
    assert result.success, "bad rows never fail the run"
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"]) == (
        "partially_succeeded", 11, 6, 5)
    failed = api.client.get(f"/v1/bulk-runs/{run['id']}/rows?status=failed&limit=2", headers=owner.headers).json()
    more = api.client.get(f"/v1/bulk-runs/{run['id']}/rows?status=failed&cursor={failed['next_cursor']}",
                          headers=owner.headers).json()
    codes = {r["row"]: r["error_code"] for r in failed["items"] + more["items"]}
    assert codes == {2: "missing_values", 3: "wrong_type", 4: "cell_too_large", 5: "formula_injection",
                     7: "bad_encoding"}
    assert all(r["error_message"] for r in failed["items"] + more["items"])
    formula = next(r for r in failed["items"] + more["items"] if r["row"] == 5)
    assert "'name'" in formula["error_message"] and "apostrophe" in formula["error_message"]
    report = _report(api, done)
    assert next(r for r in report if r["row"] == "5")["error_code"] == "formula_injection"
    # No output name starts with '-' (the one file-name sanitiser drops it); '@' stays, defanged in the report.
    assert next(r for r in report if r["row"] == "9")["output_filename"] == "Smith.docx"
    assert "'@handle.docx" in {r["output_filename"] for r in report}, "defanged in the report"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in report for cell in r.values())
    names = _zip_names(api, done)
    assert len(names) == 6 and {"Café UTF-8.docx", "Smith.docx", "@handle.docx"} <= set(names)
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert "1;2;" in docx_text(z.read("Good 1.docx"))
        assert "+44 20 7946 0958" in docx_text(z.read("Smith.docx"))
        assert "Dear =1+1 (" in docx_text(z.read("'=1+1.docx")), "the escaping apostrophe is dropped"


def _country_codes_with_two_bad_rows() -> bytes:
    """The corpus CSV (249 good rows) plus rows 250 and 251, which fail on every attempt: one without
    the required English name, one whose name is a formula."""
    raw = (CSV_DIR / "country-codes.csv").read_bytes()
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))

    def row(**cells: str) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([cells.get(c, "") for c in header])
        return out.getvalue().encode()

    return (raw + row(**{"ISO3166-1-Alpha-2": "XA"})
            + row(**{"ISO3166-1-Alpha-2": "XB", "official_name_en": '=HYPERLINK("http://evil","x")'}))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_country_codes_249_rows_and_retry_failed_touches_only_failed_rows(api, db_url):
    owner = api.tenant()
    template_id = _template(api, owner, country_template())
    run = _bulk(api, owner, template_id, _country_codes_with_two_bad_rows(),
                filename_pattern="{ISO3166-1-Alpha-2} {official_name_en}")
    resources = {"database": DatabaseResource(url=db_url), "object_store": api.store}
    with dg.instance_for_test() as instance:
        run_bulk_cycle(instance, resources)
        done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
        assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"]) == (
            "partially_succeeded", 251, 249, 2)
        failed = api.client.get(f"/v1/bulk-runs/{run['id']}/rows?status=failed&limit=500",
                                headers=owner.headers).json()["items"]
        assert {r["row"]: r["error_code"] for r in failed} == {250: "missing_values", 251: "formula_injection"}
        with system_session(api.system) as s:
            before = {r.row_index: r.updated_at for r in s.scalars(select(BulkRow).where(
                BulkRow.bulk_run_id == uuid.UUID(run["id"]), BulkRow.status == "succeeded"))}
        assert len(before) == 249
        r = api.client.post(f"/v1/bulk-runs/{run['id']}/retry-failed", headers=owner.headers)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        ((_, result),) = run_bulk_cycle(instance, resources)
        assert result.success
        with system_session(api.system) as s:
            after = {r.row_index: (r.updated_at, r.attempts, r.status) for r in s.scalars(select(BulkRow).where(
                BulkRow.bulk_run_id == uuid.UUID(run["id"])))}
        assert all(after[i][0] == before[i] and after[i][1] == 1 for i in before), "succeeded rows were not touched"
        assert {i: after[i][1:] for i in (250, 251)} == {250: (2, "failed"), 251: (2, "failed")}, \
            "each failed row was tried once more, and fails again"
    final = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (final["status"], final["succeeded_rows"], final["failed_rows"]) == ("partially_succeeded", 249, 2)
    assert len(_zip_names(api, final)) == 249
    assert [int(r["row"]) for r in _report(api, final)] == list(range(1, 252))

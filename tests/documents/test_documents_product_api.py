"""Document generation through the real API: templates, versions, single fills, bulk runs end to end."""

from __future__ import annotations

import csv
import uuid
import io
import zipfile

import dagster as dg
import pytest

from resources.dagster_resources import DatabaseResource
from tests.support.corpus import expected
from tests.support.documents_product import CSV_DIR, DOCX_DIR, docx_text, name_email_template, run_bulk_cycle
from tests.support.api import api, counted_statements, path_of  # noqa: F401 - fixture
from warehouse.db import system_session
from warehouse.documents import BulkRun

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def upload(api, tenant, data: bytes, name="letter.docx", url="/v1/templates", **form):
    return api.client.post(url, headers=tenant.headers, data=form, files={"file": (name, data, DOCX)})


def test_template_upload_fields_versions_and_sha_addressing(api):
    owner = api.tenant()
    key = "docx/order_tpl.docx"
    r = upload(api, owner, (DOCX_DIR / "order_tpl.docx").read_bytes(), name="order.docx")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "valid" and body["name"] == "order"
    version = body["latest_version"]
    assert [f["name"] for f in version["fields"]] == sorted(expected()[key]["fields"])
    items = next(f for f in version["fields"] if f["name"] == "items")
    assert items["kind"] == "loop" and items["required"] and items["locations"] == ["table"]

    again = upload(api, owner, (DOCX_DIR / "order_tpl.docx").read_bytes(), url=f"/v1/templates/{body['id']}/versions")
    assert again.status_code == 200 and again.json()["id"] == version["id"] and again.json()["version"] == 1
    second = upload(api, owner, name_email_template(), url=f"/v1/templates/{body['id']}/versions")
    assert second.status_code == 201 and second.json()["version"] == 2
    got = api.client.get(f"/v1/templates/{body['id']}", headers=owner.headers).json()
    assert got["latest_version"]["version"] == 2
    assert [f["name"] for f in got["latest_version"]["fields"]] == ["email", "name"]
    v1 = api.client.get(f"/v1/templates/{body['id']}/versions/1", headers=owner.headers)
    assert v1.status_code == 200 and v1.json()["content_sha256"] == expected()[key]["sha256"]
    assert api.client.get(f"/v1/templates/{body['id']}/versions/3", headers=owner.headers).status_code == 404
    listing = api.client.get("/v1/templates?limit=1", headers=owner.headers).json()
    assert [t["id"] for t in listing["items"]] == [body["id"]] and listing["next_cursor"] is None


def test_broken_tags_are_stored_invalid_with_a_located_error(api):
    owner = api.tenant()
    r = upload(api, owner, (DOCX_DIR / "template_error_tpl.docx").read_bytes())
    assert r.status_code == 201, r.text
    version = r.json()["latest_version"]
    assert r.json()["status"] == "invalid"
    (error,) = version["errors"]
    assert error["part"] == "word/document.xml" and isinstance(error["paragraph"], int) and "endif" in error["message"]
    render = api.client.post(f"/v1/templates/{r.json()['id']}/render", headers=owner.headers, json={"values": {}})
    assert render.status_code == 422 and render.json()["code"] == "template_invalid"


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("data, status, code", [
    (b"%PDF-1.7 not a docx", 422, "not_docx"),
    (_zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<a/>", "../evil": "x"}), 422, "unsafe_zip_entry"),
    (_zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<a/>", "word/vbaProject.bin": "x"}), 422,
     "macro_enabled"),
    (_zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<a>" + "x" * (120 * 1024 * 1024) + "</a>"}),
     413, "zip_bomb"),
    (_zip({"[Content_Types].xml": "<Types/>", "word/document.xml":
           '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'}), 422, "template_invalid"),
], ids=["not-zip", "dotdot", "macro", "zip-bomb", "entities"])
def test_unsafe_uploads_get_typed_errors_and_leave_nothing(api, data, status, code):
    owner = api.tenant()
    r = upload(api, owner, data)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert api.client.get("/v1/templates", headers=owner.headers).json()["items"] == []
    assert not [p for p in __import__("pathlib").Path(api.store.root).rglob("*") if p.is_file()]


def test_single_fill_docx_escapes_values_and_lists_missing_fields(api):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    url = f"/v1/templates/{template_id}/render"
    r = api.client.post(url, headers=owner.headers, json={"values": {"name": "Ann"}})
    assert r.status_code == 422 and r.json()["code"] == "missing_fields" and r.json()["missing"] == ["email"]
    r = api.client.post(url, headers=owner.headers, json={"values": {}})
    assert r.status_code == 422 and r.json()["code"] == "missing_fields" and r.json()["missing"] == ["email", "name"]
    evil = '</w:t></w:r><w:r><w:t>INJECTED & <b>'
    r = api.client.post(url, headers=owner.headers, json={"values": {"name": evil, "email": "a@b.c"}})
    assert r.status_code == 200 and r.headers["content-type"] == DOCX
    assert "attachment" in r.headers["content-disposition"]
    xml = docx_text(r.content)
    assert "&lt;/w:t&gt;&lt;/w:r&gt;&lt;w:r&gt;&lt;w:t&gt;INJECTED &amp; &lt;b&gt;" in xml and "a@b.c" in xml


def test_single_fill_pdf(api):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    r = api.client.post(f"/v1/templates/{template_id}/render", headers=owner.headers,
                        json={"values": {"name": "Ann", "email": "a@b.c"}, "format": "pdf"})
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"%PDF-") and r.headers["content-type"] == "application/pdf"


def _resources(api, db_url):
    return {"database": DatabaseResource(url=db_url), "object_store": api.store}


def test_bulk_run_end_to_end_with_the_bom_csv(api, db_url):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    csv_bytes = (CSV_DIR / "mailmerge_database_with_BOM.csv").read_bytes()
    r = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers={**owner.headers, "Idempotency-Key": "k1"},
                        data={"format": "docx", "filename_pattern": "{name}"},
                        files={"file": ("people.csv", csv_bytes, "text/csv")})
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "queued" and run["job_id"] and run["zip_url"] is None
    replay = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers={**owner.headers, "Idempotency-Key": "k1"},
                             data={"format": "docx", "filename_pattern": "{name}"},
                             files={"file": ("people.csv", csv_bytes, "text/csv")})
    assert replay.status_code == 200 and replay.json()["id"] == run["id"]
    conflict = api.client.post(f"/v1/templates/{template_id}/bulk-runs",
                               headers={**owner.headers, "Idempotency-Key": "k1"}, data={"format": "pdf"},
                               files={"file": ("people.csv", csv_bytes, "text/csv")})
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"

    with dg.instance_for_test() as instance:
        ((request, result),) = run_bulk_cycle(instance, _resources(api, db_url))
        assert result.success and request.job_name == "bulk_docx_job" and request.partition_key == run["id"]
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"], done["progress"]) == (
        "succeeded", 1, 1, 0, 100)
    archive = api.client.get(path_of(done["zip_url"]))
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert z.namelist() == ["My Name.docx"]
        assert "My Name" in docx_text(z.read("My Name.docx")) and "to@test.com" in docx_text(z.read("My Name.docx"))
    report = api.client.get(path_of(done["report_url"])).content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [(r["row"], r["status"], r["output_filename"]) for r in rows] == [("1", "succeeded", "My Name.docx")]
    listed = api.client.get(f"/v1/bulk-runs/{run['id']}/rows", headers=owner.headers).json()["items"]
    assert listed[0]["docx_url"] and listed[0]["status"] == "succeeded"
    assert api.client.get(f"/v1/bulk-runs/{run['id']}/rows?status=failed", headers=owner.headers).json()["items"] == []
    again = api.client.post(f"/v1/bulk-runs/{run['id']}/retry-failed", headers=owner.headers)
    assert again.status_code == 409 and again.json()["code"] == "nothing_to_retry"


def test_bulk_submit_checks_columns_and_source_urls_first(api):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    url = f"/v1/templates/{template_id}/bulk-runs"
    r = api.client.post(url, headers=owner.headers, files={"file": ("c.csv", b"name,phone\nAnn,1\n", "text/csv")})
    assert r.status_code == 422 and r.json()["code"] == "missing_columns" and r.json()["missing"] == ["email"]
    assert r.json()["type"].endswith("/missing_columns") and "email" in r.json()["detail"]
    r = api.client.post(url, headers=owner.headers, files={"file": ("c.csv", b"phone\n1\n", "text/csv")})
    assert r.status_code == 422 and r.json()["missing"] == ["email", "name"]
    r = api.client.post(url, headers=owner.headers, data={"filename_pattern": "{surname}"},
                        files={"file": ("c.csv", b"name,email\nAnn,a@b\n", "text/csv")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_filename_pattern"
    r = api.client.post(url, headers=owner.headers,
                        data={"source_url": "https://docs.google.com/spreadsheets/d/x/export?format=csv"})
    assert r.status_code == 422 and r.json()["code"] == "fetch_not_allowed"
    assert "KILN_FETCH_ALLOWED_HOSTS" in r.json()["detail"]
    assert api.client.get("/v1/bulk-runs", headers=owner.headers).json()["items"] == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bulk_run_both_formats_goes_to_the_libreoffice_pool(api, db_url):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    rows = b"name,email\r\nAnn,a@x.test\r\nann,b@x.test\r\nBob,c@x.test\r\n"
    run = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=owner.headers,
                          data={"format": "both", "filename_pattern": "{name}"},
                          files={"file": ("p.csv", rows, "text/csv")}).json()
    with dg.instance_for_test() as instance:
        ((request, result),) = run_bulk_cycle(instance, _resources(api, db_url))
    assert result.success and request.job_name == "bulk_pdf_job" and request.tags["kiln/pool"] == "libreoffice"
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["succeeded_rows"], done["failed_rows"]) == (3, 0)
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert z.namelist() == ["Ann.docx", "Ann.pdf", "ann-2.docx", "ann-2.pdf", "Bob.docx", "Bob.pdf"]
        assert z.read("Bob.pdf").startswith(b"%PDF-")
    report = list(csv.DictReader(io.StringIO(api.client.get(path_of(done["report_url"])).content.decode("utf-8-sig"))))
    assert [r["pdf_filename"] for r in report] == ["Ann.pdf", "ann-2.pdf", "Bob.pdf"]


def _list_cost(api, tenant, path: str, limit: int) -> tuple[list[dict], int]:
    """A list page's items and the SQL statements its request sent."""
    with counted_statements(api.app.state.engine) as statements:
        r = api.client.get(f"{path}?limit={limit}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"], len(statements)


def test_bulk_run_and_template_lists_cost_the_same_queries_for_1_or_20_items(api):
    owner = api.tenant()
    template_id = upload(api, owner, name_email_template()).json()["id"]
    run_ids = [api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=owner.headers,
                               files={"file": ("p.csv", b"name,email\nAnn,a@x.test\n", "text/csv")}).json()["id"]
               for _ in range(20)]
    outputs = {run_id: (api.artifact(owner), api.artifact(owner)) for run_id in run_ids}
    with system_session(api.system) as s:  # finished outputs, so every item signs its links
        for run_id, (zip_id, report_id) in outputs.items():
            run = s.get(BulkRun, uuid.UUID(run_id))
            run.zip_artifact_id, run.report_artifact_id = zip_id, report_id
    for _ in range(19):
        upload(api, owner, name_email_template())
    api.client.get("/v1/bulk-runs?limit=1", headers=owner.headers)  # warm-up: token bookkeeping happens once

    one, one_cost = _list_cost(api, owner, "/v1/bulk-runs", 1)
    twenty, twenty_cost = _list_cost(api, owner, "/v1/bulk-runs", 20)
    assert (len(one), len(twenty)) == (1, 20)
    assert twenty_cost == one_cost, "a bulk-run page must load its jobs, versions and artifacts in bulk"
    assert [item["id"] for item in twenty] == run_ids[::-1]
    assert all(item["zip_url"] and item["report_url"] and item["template_id"] == template_id
               and item["source_address"] is None and "source_url" not in item for item in twenty)

    one, one_cost = _list_cost(api, owner, "/v1/templates", 1)
    twenty, twenty_cost = _list_cost(api, owner, "/v1/templates", 20)
    assert (len(one), len(twenty)) == (1, 20)
    assert twenty_cost == one_cost, "a template page must load its versions and fields in bulk"
    assert all([f["name"] for f in t["latest_version"]["fields"]] == ["email", "name"] for t in twenty)

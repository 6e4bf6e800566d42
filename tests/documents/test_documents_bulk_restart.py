"""Bulk runs through the API: XLSX uploads, resume and retry-failed semantics, restarts after
retention, concurrent restarts, and the TTL each artifact kind gets."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import timedelta

import dagster as dg
import pytest
from sqlalchemy import delete, func, select, update

import api.routes.bulk_runs as bulk_routes
from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from tests.support.documents_product import (
    docx_text,
    name_email_template,
    run_bulk_cycle,
    xlsx_bytes,
)
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.documents.test_documents_tabular_limits import _bomb
from warehouse import jobs
from warehouse.db import system_session, utcnow
from warehouse.documents import BulkRow, BulkRun
from warehouse.models import Artifact, Job

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Row 2 has no email (a required field): it fails with missing_values every time it is tried.
FOUR_ROWS = b"name,email\r\nAnn,a@example.test\r\nBob,\r\nCid,c@example.test\r\nDan,d@example.test\r\n"



def _template(api, tenant) -> str:
    r = api.client.post("/v1/templates", headers=tenant.headers,
                        files={"file": ("t.docx", name_email_template(), DOCX)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _submit(api, tenant, template_id: str, data: bytes, name: str = "rows.csv", content_type: str = "text/csv"):
    return api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=tenant.headers,
                           data={"filename_pattern": "{name}"}, files={"file": (name, data, content_type)})


def _resources(api, db_url) -> dict:
    return {"database": DatabaseResource(url=db_url), "object_store": api.store}


def _get(api, tenant, run_id: str) -> dict:
    return api.client.get(f"/v1/bulk-runs/{run_id}", headers=tenant.headers).json()


def _report_rows(api, run: dict) -> list[dict]:
    text = api.client.get(path_of(run["report_url"])).content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def _zip_names(api, run: dict) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(run["zip_url"])).content)) as z:
        return sorted(z.namelist())


def _rows(api, run_id: str) -> dict[int, BulkRow]:
    with system_session(api.system) as s:
        found = {r.row_index: r for r in s.scalars(select(BulkRow).where(BulkRow.bulk_run_id == uuid.UUID(run_id)))}
        for r in found.values():
            s.expunge(r)
    return found


def _input_id(run_id: str):
    return select(BulkRun.input_artifact_id).where(BulkRun.id == uuid.UUID(run_id)).scalar_subquery()


def _forget_rows_from(api, run_id: str, first: int) -> None:
    """What a worker lost for good before row ``first`` leaves behind: no outcome from there on (and, as
    outcomes and their files commit together, no file either)."""
    with system_session(api.system) as s:
        lost = s.scalars(select(BulkRow).where(BulkRow.bulk_run_id == uuid.UUID(run_id), BulkRow.row_index >= first))
        files = [a for r in lost for a in (r.docx_artifact_id, r.pdf_artifact_id) if a is not None]
        s.execute(delete(BulkRow).where(BulkRow.bulk_run_id == uuid.UUID(run_id), BulkRow.row_index >= first))
        s.execute(delete(Artifact).where(Artifact.id.in_(files)))
        counted = dict(s.execute(select(BulkRow.status, func.count()).where(
            BulkRow.bulk_run_id == uuid.UUID(run_id)).group_by(BulkRow.status)).all())
        s.execute(update(BulkRun).where(BulkRun.id == uuid.UUID(run_id)).values(
            status="failed", succeeded_rows=counted.get("succeeded", 0), failed_rows=counted.get("failed", 0)))


# --------------------------------------------------------------------------- XLSX uploads

def test_xlsx_upload_is_checked_and_refused_when_it_is_a_bomb(api, tmp_path):
    owner = api.tenant()
    template_id = _template(api, owner)
    ok = _submit(api, owner, template_id, xlsx_bytes([["name", "email"], ["Ann", "a@example.test"]]), "people.xlsx", XLSX)
    assert ok.status_code == 202, ok.text
    missing = _submit(api, owner, template_id, xlsx_bytes([["name"], ["Ann"]]), "people.xlsx", "application/octet-stream")
    assert missing.status_code == 422 and missing.json()["code"] == "missing_columns"
    assert missing.json()["missing"] == ["email"], "the XLSX header was read"
    bomb = tmp_path / "bomb.xlsx"
    _bomb(bomb, 40)
    refused = _submit(api, owner, template_id, bomb.read_bytes(), "bomb.xlsx", XLSX)
    assert refused.status_code == 422 and refused.json()["code"] == "xlsx_zip_bomb"
    assert refused.headers["content-type"].startswith("application/problem+json")
    listed = api.client.get("/v1/bulk-runs", headers=owner.headers).json()["items"]
    assert [r["id"] for r in listed] == [ok.json()["id"]], "refused uploads make no run"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_xlsx_bulk_run_end_to_end(api, db_url):
    owner = api.tenant()
    template_id = _template(api, owner)
    sheet = xlsx_bytes([["name", "email"], ["Renée", "r@example.test"], ["Bob", 42], ["Zoë", ""]])
    run = _submit(api, owner, template_id, sheet, "people.xlsx", "application/octet-stream")
    assert run.status_code == 202, run.text
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, _resources(api, db_url))
    assert result.success
    done = _get(api, owner, run.json()["id"])
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"]) == (
        "partially_succeeded", 3, 2, 1)
    assert _zip_names(api, done) == ["Bob.docx", "Renée.docx"]
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert "We will write to 42." in docx_text(z.read("Bob.docx"))
    assert [(r["row"], r["status"], r["error_code"]) for r in _report_rows(api, done)] == [
        ("1", "succeeded", ""), ("2", "succeeded", ""), ("3", "failed", "missing_values")]
    with system_session(api.system) as s:
        stored = s.scalar(select(Artifact.content_type).where(Artifact.id == _input_id(done["id"])))
    assert stored == XLSX, "the stored type follows the bytes, not the client's header"


# --------------------------------------------------------------------------- resume / retry-failed

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retry_failed_also_finishes_rows_that_never_got_an_outcome(api, db_url):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    resources = _resources(api, db_url)
    with dg.instance_for_test() as instance:
        run_bulk_cycle(instance, resources)
        _forget_rows_from(api, run["id"], 3)
        before = _rows(api, run["id"])
        assert {i: r.status for i, r in before.items()} == {1: "succeeded", 2: "failed"}
        r = api.client.post(f"/v1/bulk-runs/{run['id']}/retry-failed", headers=owner.headers)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        ((_, result),) = run_bulk_cycle(instance, resources)
    assert result.success
    done = _get(api, owner, run["id"])
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"], done["progress"]) == (
        "partially_succeeded", 4, 3, 1, 100)
    assert [r["row"] for r in _report_rows(api, done)] == ["1", "2", "3", "4"]
    assert _zip_names(api, done) == ["Ann.docx", "Cid.docx", "Dan.docx"]
    after = _rows(api, run["id"])
    assert after[1].updated_at == before[1].updated_at and after[1].attempts == 1, "succeeded rows are kept"
    assert after[2].attempts == 2 and after[2].error_code == "missing_values"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_resume_processes_every_row_not_yet_succeeded_and_refuses_while_active(api, db_url):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    resources = _resources(api, db_url)
    with dg.instance_for_test() as instance:
        run_bulk_cycle(instance, resources)
        _forget_rows_from(api, run["id"], 4)
        before = _rows(api, run["id"])
        first = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)
        assert first.status_code == 202 and first.json()["status"] == "queued"
        assert first.json()["job_id"] != run["job_id"]
        again = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)
        assert again.status_code == 409 and again.json()["code"] == "bulk_run_active"
        ((request, result),) = run_bulk_cycle(instance, resources)
    assert result.success and request.partition_key == run["id"]
    done = _get(api, owner, run["id"])
    assert (done["status"], done["succeeded_rows"], done["failed_rows"]) == ("partially_succeeded", 3, 1)
    assert _zip_names(api, done) == ["Ann.docx", "Cid.docx", "Dan.docx"]
    after = _rows(api, run["id"])
    assert all(after[i].updated_at == before[i].updated_at for i in (1, 3)), "succeeded rows are never redone"
    assert after[2].attempts == 2, "a failed row is not yet succeeded: resume tries it again"
    assert after[4].status == "succeeded" and after[4].attempts == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_restarts_after_retention_answer_409_and_a_worker_without_its_files_fails_the_run(api, db_url):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    run_id = uuid.UUID(run["id"])
    resources = _resources(api, db_url)
    with dg.instance_for_test() as instance:
        run_bulk_cycle(instance, resources)
        row_file = _rows(api, run["id"])[1].docx_artifact_id
        with system_session(api.system) as s:  # the retention job's clock passed the per-row files' expiry
            s.execute(update(Artifact).where(Artifact.id == row_file).values(expires_at=utcnow() - timedelta(1)))
        for action in ("resume", "retry-failed"):
            r = api.client.post(f"/v1/bulk-runs/{run['id']}/{action}", headers=owner.headers)
            assert r.status_code == 409 and r.json()["code"] == "bulk_outputs_expired", r.text
        with system_session(api.system) as s:  # the row file is back; the input was purged instead
            s.execute(update(Artifact).where(Artifact.id == row_file).values(expires_at=utcnow() + timedelta(1)))
            s.execute(update(Artifact).where(Artifact.id == _input_id(run["id"])).values(status="deleted"))
        r = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)
        assert r.status_code == 409 and r.json()["code"] == "bulk_input_expired"
        assert _get(api, owner, run["id"])["job_id"] == run["job_id"], "nothing was queued"

        # A row file whose object vanished while its row still says available: the worker's rebuild of
        # the ZIP cannot find it and must end the run as failed, with a code, not leave it running.
        with system_session(api.system) as s:
            s.execute(update(Artifact).where(Artifact.id == _input_id(run["id"])).values(status="available"))
            key = s.scalar(select(Artifact.storage_key).where(Artifact.id == row_file))
        api.store.delete(key)
        assert api.client.post(f"/v1/bulk-runs/{run['id']}/retry-failed", headers=owner.headers).status_code == 202
        ((_, result),) = run_bulk_cycle(instance, resources)
    assert not result.success
    done = _get(api, owner, run["id"])
    assert (done["status"], done["error_code"]) == ("failed", "bulk_outputs_expired")
    with system_session(api.system) as s:
        assert s.get(BulkRun, run_id).status == "failed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_whose_input_object_is_gone_fails_the_run_with_a_code(api, db_url):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    with system_session(api.system) as s:
        key = s.scalar(select(Artifact.storage_key).where(Artifact.id == _input_id(run["id"])))
    api.store.delete(key)
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, _resources(api, db_url))
    assert not result.success
    done = _get(api, owner, run["id"])
    assert (done["status"], done["job_status"], done["error_code"]) == ("failed", "failed", "bulk_input_expired")
    with system_session(api.system) as s:
        assert s.get(BulkRun, uuid.UUID(run["id"])).status == "failed", "the run row does not stay running"


def test_resume_is_refused_once_the_input_expired(api):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    with system_session(api.system) as s:
        assert jobs.cancel_job(s, uuid.UUID(run["job_id"]))
        s.execute(update(Artifact).where(Artifact.id == _input_id(run["id"])).values(
            expires_at=utcnow() - timedelta(1)))
    r = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)
    assert r.status_code == 409 and r.json()["code"] == "bulk_input_expired"


def test_two_concurrent_resumes_queue_exactly_one_job(api, monkeypatch):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    with system_session(api.system) as s:
        assert jobs.cancel_job(s, uuid.UUID(run["job_id"]))
    # The race, made deterministic: the first request has checked that the job is finished and is
    # about to queue its own when the second request runs from start to end.
    real_check, answers = bulk_routes._check_still_stored, []

    def check_then_let_a_rival_in(session, bulk_run):
        real_check(session, bulk_run)
        if not answers:
            answers.append(None)
            answers[0] = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)

    monkeypatch.setattr(bulk_routes, "_check_still_stored", check_then_let_a_rival_in)
    first = api.client.post(f"/v1/bulk-runs/{run['id']}/resume", headers=owner.headers)
    (rival,) = answers
    assert rival.status_code == 202, rival.text
    assert first.status_code == 409 and first.json()["code"] == "bulk_run_active", first.text
    with system_session(api.system) as s:
        job_ids = set(s.scalars(select(Job.id).where(Job.subject_id == uuid.UUID(run["id"]))))
        current = s.get(BulkRun, uuid.UUID(run["id"])).job_id
    assert job_ids == {uuid.UUID(run["job_id"]), uuid.UUID(rival.json()["job_id"])}, "the loser's job rolled back"
    assert current == uuid.UUID(rival.json()["job_id"])


# --------------------------------------------------------------------------- retention

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_bulk_artifact_kind_gets_its_configured_ttl(api, db_url):
    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    with dg.instance_for_test() as instance:
        run_bulk_cycle(instance, _resources(api, db_url))
    with system_session(api.system) as s:
        job_ids = select(Job.id).where(Job.subject_id == uuid.UUID(run["id"]))
        found = s.execute(select(Artifact.kind, Artifact.filename, Artifact.created_at, Artifact.expires_at).where(
            Artifact.job_id.in_(job_ids))).all()
    kinds = {kind for kind, *_ in found}
    assert kinds == {"input", "intermediate", "archive", "output"}
    configured = {"input": api.settings.retention_ttl("input"),  # stored by the API
                  **{k: get_settings().retention_ttl(k) for k in ("intermediate", "archive", "output")}}  # worker
    assert {k: v.days for k, v in configured.items()} == {"input": 30, "intermediate": 7, "archive": 14, "output": 90}
    for kind, filename, created_at, expires_at in found:
        assert expires_at is not None, f"{kind} {filename} never expires"
        assert abs((expires_at - created_at) - configured[kind]) < timedelta(minutes=5), (kind, filename)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_that_left_a_row_without_outcome_is_not_finished_and_its_retry_completes_it(api, db_url, monkeypatch):
    import assets.documents.bulk as engine

    owner = api.tenant()
    run = _submit(api, owner, _template(api, owner), FOUR_ROWS).json()
    real_persist = engine.persist_batch

    def persist_losing_row_4(env, bulk_run_id, fmt, allocator, pending, recorded, counts):
        real_persist(env, bulk_run_id, fmt, allocator, [p for p in pending if p.index != 4], recorded, counts)

    monkeypatch.setattr(engine, "persist_batch", persist_losing_row_4)
    resources = _resources(api, db_url)
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, resources)
        assert not result.success
        mid = _get(api, owner, run["id"])
        assert (mid["status"], mid["error_code"], mid["zip_url"]) == ("retrying", "bulk_run_incomplete", None)
        with system_session(api.system) as s:
            assert s.get(BulkRun, uuid.UUID(run["id"])).status == "failed", "not partially_succeeded with a row missing"
            s.execute(update(Job).where(Job.id == uuid.UUID(run["job_id"])).values(next_attempt_at=utcnow()))
        monkeypatch.setattr(engine, "persist_batch", real_persist)
        ((_, result),) = run_bulk_cycle(instance, resources)
    assert result.success
    done = _get(api, owner, run["id"])
    assert (done["status"], done["succeeded_rows"], done["failed_rows"]) == ("partially_succeeded", 3, 1)
    assert [r["row"] for r in _report_rows(api, done)] == ["1", "2", "3", "4"]

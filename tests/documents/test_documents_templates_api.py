"""Template uploads that used to answer 500: damaged files, tags that can never fill, racing versions."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import api.routes.templates as templates_route
from tests.support.corpus import PUBLIC
from tests.support.api import api  # noqa: F401 - fixture
from tests.documents.test_documents_fields import _with_body
from tests.documents.test_documents_validation import corrupt_deflate
from warehouse.db import system_session
from warehouse.documents import Template

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def upload(api, tenant, data: bytes, url="/v1/templates"):
    return api.client.post(url, headers=tenant.headers, files={"file": ("letter.docx", data, DOCX)})


def stored_files(api) -> list[Path]:
    return [p for p in Path(api.settings.objects_dir).rglob("*") if p.is_file()]


def test_damaged_upload_is_422_and_leaves_nothing(api):
    owner = api.tenant()
    r = upload(api, owner, corrupt_deflate((PUBLIC / "docx/order_tpl.docx").read_bytes()))
    assert r.status_code == 422 and r.json()["code"] == "not_docx", r.text
    assert stored_files(api) == []


def test_a_template_name_with_control_characters_is_422_and_leaves_nothing(api):
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers, data={"name": "offer\x00letter"},
                        files={"file": ("letter.docx", (PUBLIC / "docx/order_tpl.docx").read_bytes(), DOCX)})
    assert r.status_code == 422 and r.json()["code"] == "invalid_characters", r.text
    assert stored_files(api) == []


def test_control_characters_in_the_uploaded_filename_are_dropped(api):
    owner = api.tenant()
    # Built by hand: HTTP clients percent-escape control characters in filenames, a raw client need not.
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="of\x00fer\x07.docx"\r\n'
            b"Content-Type: " + DOCX.encode() + b"\r\n\r\n" + (PUBLIC / "docx/order_tpl.docx").read_bytes()
            + b"\r\n--B--\r\n")
    r = api.client.post("/v1/templates", headers={**owner.headers, "Content-Type": "multipart/form-data; boundary=B"},
                        content=body)
    assert r.status_code == 201, r.text
    assert r.json()["latest_version"]["filename"] == "offer.docx" and r.json()["name"] == "offer"


def test_unexpected_failure_while_checking_an_upload_leaves_nothing(api, monkeypatch):
    def broken(data):
        raise MemoryError("simulated")

    monkeypatch.setattr(templates_route, "validate_docx", broken)
    r = upload(api, api.tenant(), (PUBLIC / "docx/order_tpl.docx").read_bytes())
    assert r.status_code == 500
    assert stored_files(api) == []


def test_unknown_filter_is_stored_invalid_with_its_location_and_never_fills(api):
    owner = api.tenant()
    r = upload(api, owner, _with_body(["Total: {{ amount|currency }}"]))
    assert r.status_code == 201, r.text
    version = r.json()["latest_version"]
    assert version["status"] == "invalid" and [f["name"] for f in version["fields"]] == ["amount"]
    [error] = version["errors"]
    assert (error["part"], error["paragraph"]) == ("word/document.xml", 0) and "currency" in error["message"]


def test_runtime_error_in_a_single_fill_is_422(api):
    owner = api.tenant()
    template_id = upload(api, owner, _with_body(["{{ 1/(n|int) }}"])).json()["id"]
    r = api.client.post(f"/v1/templates/{template_id}/render", headers=owner.headers, json={"values": {"n": "0"}})
    assert r.status_code == 422 and r.json()["code"] == "render_failed", r.text
    assert "ZeroDivisionError" in r.json()["detail"]


@pytest.mark.parametrize("same_bytes", [False, True], ids=["other-bytes", "same-bytes"])
def test_a_version_upload_that_loses_a_race_takes_the_next_number_or_the_winner(api, monkeypatch, same_bytes):
    owner = api.tenant()
    first = upload(api, owner, (PUBLIC / "docx/order_tpl.docx").read_bytes())
    template_id = uuid.UUID(first.json()["id"])
    mine = _with_body(["Dear {{ name }}"])
    real_insert = templates_route._insert_version
    rival = {}

    def insert_after_a_rival(session, template, artifact_id, upload_, analysis, user_id):
        if not rival:  # another request commits its version between our read and our insert
            with system_session(api.system) as s:
                stored = SimpleNamespace(key=f"rival/{uuid.uuid4()}", size_bytes=1, filename="rival.docx",
                                         sha256=upload_.sha256 if same_bytes else "0" * 64)
                version = real_insert(s, s.get(Template, template_id), uuid.uuid4(), stored, analysis, user_id)
                rival["id"] = str(version.id)
        return real_insert(session, template, artifact_id, upload_, analysis, user_id)

    monkeypatch.setattr(templates_route, "_insert_version", insert_after_a_rival)
    r = upload(api, owner, mine, url=f"/v1/templates/{template_id}/versions")
    got = api.client.get(f"/v1/templates/{template_id}", headers=owner.headers).json()
    if same_bytes:
        assert r.status_code == 200 and r.json()["id"] == rival["id"] and r.json()["version"] == 2, r.text
        assert got["latest_version"]["version"] == 2
        assert len(stored_files(api)) == 1, "the loser's copy of the same bytes is dropped"
    else:
        assert r.status_code == 201 and r.json()["version"] == 3, r.text
        assert got["latest_version"]["id"] == r.json()["id"]
        v2 = api.client.get(f"/v1/templates/{template_id}/versions/2", headers=owner.headers).json()
        assert v2["id"] == rival["id"]

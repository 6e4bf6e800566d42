"""Inputs beyond text cells: a source_url fetched by the worker over real HTTP, and image data URIs
(in bulk cells and in a single fill)."""

from __future__ import annotations

import base64
import csv
import io
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from resources.source_fetch import FetchRefused, fetch_source
from pipelines.documents.render import prepare_template
from resources.dagster_resources import DatabaseResource
from resources.settings import Settings, get_settings
from tests.support.documents_product import DOCX_DIR, docx_text, name_email_template, run_bulk_cycle
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.documents.test_documents_images import data_uri, media_parts, png_bytes

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SHEET_CSV = "\ufeffname,email\r\nRenée,renee@example.test\r\nZoë,zoe@example.test\r\nBob,bob@example.test\r\n".encode()


class SheetServer:
    """A stand-in for Google's published-CSV export on 127.0.0.1, recording every request path."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                port = self.server.server_address[1]
                if self.path.startswith("/spreadsheets/export"):
                    self._send(200, SHEET_CSV, "text/csv; charset=utf-8")
                elif self.path == "/pub-redirect":  # what Google does: redirect, here to an allowed host
                    self._redirect("/spreadsheets/export?format=csv")
                elif self.path == "/redirect-away":
                    self._redirect(f"http://localhost:{port}/spreadsheets/export?format=csv")
                elif self.path == "/huge":
                    self._send(200, b"name,email\r\n" + b"Ann,a@example.test\r\n" * 50_000, "text/csv")
                else:
                    self._send(404, b"no such sheet", "text/plain")

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def sheet_server() -> Iterator[SheetServer]:
    server = SheetServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def worker_fetch_settings(monkeypatch) -> Iterator[None]:
    """The worker reads settings from the environment (get_settings): allow-list 127.0.0.1 there."""
    monkeypatch.setenv("KILN_FETCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("KILN_FETCH_MAX_BYTES", "100000")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _template(api, tenant, data: bytes) -> str:
    r = api.client.post("/v1/templates", headers=tenant.headers, files={"file": ("t.docx", data, DOCX)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _resources(api, db_url) -> dict:
    return {"database": DatabaseResource(url=db_url), "object_store": api.store}


def _submit_url(api, tenant, template_id: str, source_url: str):
    return api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=tenant.headers,
                           data={"source_url": source_url, "filename_pattern": "{name}"})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_source_url_is_fetched_by_the_worker_from_an_allow_listed_host(api, db_url, sheet_server,
                                                                      worker_fetch_settings):
    api.settings.fetch_allowed_hosts = "127.0.0.1"
    owner = api.tenant()
    template_id = _template(api, owner, name_email_template())

    refused = _submit_url(api, owner, template_id, sheet_server.url("/spreadsheets/export?format=csv", "localhost"))
    assert refused.status_code == 422 and refused.json()["code"] == "fetch_not_allowed"
    assert "'localhost'" in refused.json()["detail"]
    assert sheet_server.requests == [], "the API never fetches; a refused host is refused before any request"

    r = _submit_url(api, owner, template_id, sheet_server.url("/pub-redirect"))
    assert r.status_code == 202, r.text
    # The sheet's address comes back as plain data: `*_url` fields are only ever signed download links.
    assert r.json()["source_address"] == sheet_server.url("/pub-redirect") and "source_url" not in r.json()
    assert sheet_server.requests == [], "the API only checks the host; the worker fetches"
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, _resources(api, db_url))
    assert result.success
    assert sheet_server.requests == ["/pub-redirect", "/spreadsheets/export?format=csv"]
    done = api.client.get(f"/v1/bulk-runs/{r.json()['id']}", headers=owner.headers).json()
    assert (done["status"], done["total_rows"], done["succeeded_rows"], done["failed_rows"]) == ("succeeded", 3, 3, 0)
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert z.namelist() == ["Renée.docx", "Zoë.docx", "Bob.docx"]
        assert "zoe@example.test" in docx_text(z.read("Zoë.docx"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_redirect_off_the_allow_list_and_oversized_sources_fail_the_run(api, db_url, sheet_server,
                                                                       worker_fetch_settings):
    api.settings.fetch_allowed_hosts = "127.0.0.1"
    owner = api.tenant()
    template_id = _template(api, owner, name_email_template())
    away = _submit_url(api, owner, template_id, sheet_server.url("/redirect-away")).json()
    huge = _submit_url(api, owner, template_id, sheet_server.url("/huge")).json()
    with dg.instance_for_test() as instance:
        outcomes = run_bulk_cycle(instance, _resources(api, db_url))
    assert [result.success for _, result in outcomes] == [False, False]
    assert "/spreadsheets/export?format=csv" not in sheet_server.requests, "the off-list hop is never requested"
    for run, code, words in [(away, "fetch_not_allowed", "'localhost'"), (huge, "payload_too_large", "")]:
        failed = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
        assert (failed["status"], failed["error_code"], failed["zip_url"]) == ("failed", code, None)
        assert words in failed["error_message"]


def test_fetch_refuses_before_any_request(sheet_server):
    settings = Settings(fetch_allowed_hosts="example.test")
    for url in [sheet_server.url("/spreadsheets/export"), "ftp://example.test/x.csv",
                "http://user:pw@example.test/x.csv"]:
        with pytest.raises(FetchRefused) as caught:
            next(fetch_source(url, settings))
        assert caught.value.code == "fetch_not_allowed" and caught.value.retryable is False
    with pytest.raises(FetchRefused, match="KILN_FETCH_ALLOWED_HOSTS is empty"):
        next(fetch_source(sheet_server.url("/spreadsheets/export"), Settings(fetch_allowed_hosts="")))
    assert sheet_server.requests == []
    allowed = Settings(fetch_allowed_hosts="127.0.0.1")
    with pytest.raises(FetchRefused, match="HTTP 404"):
        b"".join(fetch_source(sheet_server.url("/no-such-sheet"), allowed))
    assert b"".join(fetch_source(sheet_server.url("/pub-redirect"), allowed)) == SHEET_CSV


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_images_in_cells_render_and_bad_ones_fail_their_row(api, db_url):
    owner = api.tenant()
    source = (DOCX_DIR / "inline_image_tpl.docx").read_bytes()
    assert {f.kind for f in prepare_template(source).analysis.fields if f.name.startswith("myimage")} == {"image"}
    template_id = _template(api, owner, source)
    logo = png_bytes(6, 3)
    gif = "data:image/png;base64," + base64.b64encode(b"GIF89a" + bytes(30)).decode()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([
        ["row_name", "myimage", "myimageratio", "frameworks"],
        ["good", data_uri(logo), json.dumps({"data": data_uri(logo), "width_mm": 40}), "[]"],
        ["text", "see attached", data_uri(logo), "[]"],
        ["gif", gif, data_uri(logo), "[]"]])
    rows = buffer.getvalue().encode()
    r = api.client.post(f"/v1/templates/{template_id}/bulk-runs", headers=owner.headers,
                        data={"filename_pattern": "{row_name}"},
                        files={"file": ("rows.csv", rows, "text/csv")})
    assert r.status_code == 202, r.text
    with dg.instance_for_test() as instance:
        ((_, result),) = run_bulk_cycle(instance, _resources(api, db_url))
    assert result.success
    run_id = uuid.UUID(r.json()["id"])
    done = api.client.get(f"/v1/bulk-runs/{run_id}", headers=owner.headers).json()
    assert (done["succeeded_rows"], done["failed_rows"]) == (1, 2)
    failed = api.client.get(f"/v1/bulk-runs/{run_id}/rows?status=failed", headers=owner.headers).json()["items"]
    assert [(f["row"], f["error_code"]) for f in failed] == [(2, "invalid_image"), (3, "invalid_image")]
    assert "'myimage'" in failed[0]["error_message"]
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert z.namelist() == ["good.docx"]
        assert list(media_parts(z.read("good.docx")).values()) == [logo]


def test_single_fill_takes_image_data_uris_and_refuses_other_values(api):
    owner = api.tenant()
    template_id = _template(api, owner, (DOCX_DIR / "inline_image_tpl.docx").read_bytes())
    logo = png_bytes(4, 4)
    values = {"myimage": {"data": data_uri(logo), "width_mm": 30}, "myimageratio": data_uri(logo), "frameworks": []}
    r = api.client.post(f"/v1/templates/{template_id}/render", headers=owner.headers,
                        json={"values": values, "format": "docx"})
    assert r.status_code == 200 and list(media_parts(r.content).values()) == [logo]
    r = api.client.post(f"/v1/templates/{template_id}/render", headers=owner.headers,
                        json={"values": {**values, "myimage": "https://example.test/logo.png"}, "format": "docx"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_image" and "'myimage'" in r.json()["detail"]

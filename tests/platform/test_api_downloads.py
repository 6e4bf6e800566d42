from __future__ import annotations

import uuid
from datetime import timedelta

from api.signing import sign_download
from resources.objectstore import ObjectStore
from tests.support.api import SECRET, api, path_of  # noqa: F401 - fixture
from warehouse.db import system_session, utcnow
from warehouse.models import Artifact

DATA = bytes(range(256)) * 40  # 10,240 bytes


def _link(api, t, artifact_id) -> str:
    r = api.client.post(f"/v1/artifacts/{artifact_id}/download-link", headers=t.headers)
    assert r.status_code == 200, r.text
    return path_of(r.json()["url"])


def test_metadata_carries_a_ready_download_url(api):
    t = api.tenant()
    artifact_id = api.artifact(t, DATA, filename="report.bin", content_type="application/octet-stream")
    meta = api.client.get(f"/v1/artifacts/{artifact_id}", headers=t.headers).json()
    assert meta["size_bytes"] == len(DATA) and len(meta["sha256"]) == 64 and meta["filename"] == "report.bin"
    r = api.client.get(path_of(meta["download_url"]))  # no bearer token: the link is the credential
    assert r.status_code == 200 and r.content == DATA
    listed = api.client.get(f"/v1/jobs/{meta['job_id']}/artifacts", headers=t.headers).json()
    assert [a["id"] for a in listed["items"]] == [str(artifact_id)]


def test_download_headers_are_safe(api):
    t = api.tenant()
    artifact_id = api.artifact(t, b"<script>alert(1)</script>", filename='../../evil "name"\r\n.html',
                               content_type="text/html")
    r = api.client.get(_link(api, t, artifact_id))
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition.split("filename*=")[0] and "\r" not in disposition and "\n" not in disposition
    assert "filename*=UTF-8''" in disposition
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["accept-ranges"] == "bytes"


def test_unicode_filename_gets_rfc5987_form(api):
    t = api.tenant()
    artifact_id = api.artifact(t, b"x", filename="résumé 2024.pdf", content_type="application/pdf")
    disposition = api.client.get(_link(api, t, artifact_id)).headers["content-disposition"]
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf" in disposition
    assert disposition.split(";")[1].strip().startswith('filename="r')
    assert all(ord(ch) < 128 for ch in disposition)


def test_range_requests(api):
    t = api.tenant()
    link = _link(api, t, api.artifact(t, DATA))
    r = api.client.get(link, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == DATA[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(DATA)}" and r.headers["content-length"] == "10"
    r = api.client.get(link, headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == DATA[10000:]
    r = api.client.get(link, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == DATA[-5:]
    r = api.client.get(link, headers={"Range": "bytes=10000-999999"})
    assert r.status_code == 206 and r.content == DATA[10000:]
    r = api.client.get(link, headers={"Range": f"bytes={len(DATA)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(DATA)}"
    assert r.json()["code"] == "range_not_satisfiable"
    r = api.client.get(link, headers={"Range": "bytes=0-1,5-6"})  # multiple ranges: whole file
    assert r.status_code == 200 and r.content == DATA


def test_tampered_links_are_403_link_invalid(api):
    t = api.tenant()
    link = _link(api, t, api.artifact(t, DATA))
    token = link.rsplit("/", 1)[1]
    artifact_hex, ws_hex, token_hex, expires, signature = token.split(".")
    other = api.tenant()
    other_artifact = api.artifact(other, b"secret of another tenant")
    tampered = [
        f"{artifact_hex}.{ws_hex}.{token_hex}.{int(expires) + 3600}.{signature}",  # extended expiry
        f"{uuid.UUID(str(other_artifact)).hex}.{ws_hex}.{token_hex}.{expires}.{signature}",  # other artifact
        f"{artifact_hex}.{other.workspace_id.hex}.{token_hex}.{expires}.{signature}",  # other workspace
        f"{artifact_hex}.{ws_hex}.{uuid.uuid4().hex}.{expires}.{signature}",  # other issuing token
        f"{artifact_hex}.{ws_hex}.{token_hex}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        "garbage",
    ]
    for bad in tampered:
        r = api.client.get(f"/v1/downloads/{bad}")
        assert r.status_code == 403, bad
        assert r.json()["code"] == "link_invalid"
    # Signed with another key (a different deployment) is just as invalid.
    forged = sign_download("another-secret-of-sufficient-length-000", uuid.UUID(hex=artifact_hex),
                           uuid.UUID(hex=ws_hex), uuid.UUID(hex=token_hex), utcnow() + timedelta(hours=1))
    assert api.client.get(f"/v1/downloads/{forged}").json()["code"] == "link_invalid"


def test_expired_link_is_403_link_expired(api):
    t = api.tenant()
    artifact_id = api.artifact(t, DATA)
    expired = sign_download(SECRET, artifact_id, t.workspace_id, t.token_id, utcnow() - timedelta(seconds=1))
    r = api.client.get(f"/v1/downloads/{expired}")
    assert r.status_code == 403 and r.json()["code"] == "link_expired"


def test_deleted_artifact_link_is_404_and_no_new_link(api):
    t = api.tenant()
    artifact_id = api.artifact(t, DATA)
    link = _link(api, t, artifact_id)
    with system_session(api.system) as s:
        s.get(Artifact, artifact_id).status = "deleted"
    assert api.client.get(link).status_code == 404
    r = api.client.post(f"/v1/artifacts/{artifact_id}/download-link", headers=t.headers)
    assert r.status_code == 410 and r.json()["code"] == "artifact_deleted"
    assert api.client.get(f"/v1/artifacts/{artifact_id}", headers=t.headers).json()["download_url"] is None


class _PresigningStore:
    """Wraps the local store and answers like S3 mode: a direct presigned URL."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def presigned_url(self, key, *, expires_in, filename, content_type):
        return f"https://bucket.example/{key}?X-Amz-Expires={expires_in}"

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_s3_mode_redirects_to_the_presigned_url(api):
    t = api.tenant()
    link = _link(api, t, api.artifact(t, DATA))
    api.app.state.store = _PresigningStore(api.store)
    r = api.client.get(link, follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"].startswith("https://bucket.example/ws/")
    expires_in = int(r.headers["location"].rsplit("=", 1)[1])
    # Short, whatever the link's own lifetime: the presigned URL escapes the link's revocation checks.
    assert api.settings.download_link_ttl_seconds > 60
    assert 0 < expires_in <= api.settings.presigned_redirect_ttl_seconds == 60

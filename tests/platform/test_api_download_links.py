"""Signed links: bound to the token that minted them, one canonical spelling, and HEAD like GET."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from api.signing import LinkInvalid, sign_download, verify_download
from tests.support.api import SECRET, api, path_of  # noqa: F401 - fixture
from warehouse.db import system_session, utcnow
from warehouse.models import ApiToken

DATA = bytes(range(256)) * 8  # 2,048 bytes


def _link(api, member, artifact_id, **body) -> str:
    r = api.client.post(f"/v1/artifacts/{artifact_id}/download-link", headers=member.headers, json=body or None)
    assert r.status_code == 200, r.text
    return path_of(r.json()["url"])


def _code(api, link: str) -> tuple[int, str | None]:
    r = api.client.get(link)
    return r.status_code, (r.json()["code"] if r.status_code >= 400 else None)


# -- bound to the issuing token ---------------------------------------------------------------------------------
def test_revoking_the_token_ends_its_links(api):
    owner = api.tenant()
    editor = api.member(owner, "editor")
    artifact_id = api.artifact(owner, DATA)
    link, own = _link(api, editor, artifact_id), _link(api, owner, artifact_id)
    assert _code(api, link) == (200, None)
    assert api.client.delete(f"/v1/tokens/{editor.token_id}", headers=editor.headers).status_code == 204
    assert _code(api, link) == (403, "link_revoked")
    assert api.client.head(link).status_code == 403
    assert _code(api, own) == (200, None)  # another token's links are untouched


def test_an_expired_token_ends_its_links_and_links_never_outlive_it(api):
    owner = api.tenant()
    artifact_id = api.artifact(owner, DATA)
    soon = utcnow() + timedelta(seconds=120)
    with system_session(api.system) as s:
        s.execute(update(ApiToken).where(ApiToken.id == owner.token_id).values(expires_at=soon))
    r = api.client.post(f"/v1/artifacts/{artifact_id}/download-link", headers=owner.headers,
                        json={"expires_in_seconds": 3600})
    assert r.status_code == 200
    from datetime import datetime

    assert datetime.fromisoformat(r.json()["expires_at"]) <= soon  # capped at the token's own expiry
    link = path_of(r.json()["url"])
    assert _code(api, link) == (200, None)
    with system_session(api.system) as s:
        s.execute(update(ApiToken).where(ApiToken.id == owner.token_id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert _code(api, link) == (403, "link_revoked")


def test_removing_the_member_ends_their_links(api):
    owner = api.tenant()
    viewer = api.member(owner, "viewer")
    artifact_id = api.artifact(owner, DATA)
    link = _link(api, viewer, artifact_id)  # a viewer's links are bound too
    assert _code(api, link) == (200, None)
    assert api.client.delete(f"/v1/workspace/members/{viewer.user_id}", headers=owner.headers).status_code == 204
    assert _code(api, link) == (403, "link_revoked")


def test_a_role_downgrade_keeps_links_while_the_role_still_reads_artifacts(api):
    owner = api.tenant()
    admin = api.member(owner, "admin")
    artifact_id = api.artifact(owner, DATA)
    link = _link(api, admin, artifact_id)
    r = api.client.patch(f"/v1/workspace/members/{admin.user_id}", headers=owner.headers, json={"role": "viewer"})
    assert r.status_code == 200
    assert _code(api, link) == (200, None)  # viewers read artifacts


def test_a_token_narrowed_below_artifacts_read_ends_its_links(api):
    """Scopes are fixed at creation today; the check at download time still covers a row that lost the scope."""
    owner = api.tenant()
    artifact_id = api.artifact(owner, DATA)
    link = _link(api, owner, artifact_id)
    with system_session(api.system) as s:
        s.execute(update(ApiToken).where(ApiToken.id == owner.token_id).values(scopes=["jobs:read"]))
    assert _code(api, link) == (403, "link_revoked")


def test_a_link_naming_another_workspaces_token_is_invalid_or_revoked(api):
    """The token id is signed, so a link cannot be rewritten to name a live token; a forged-by-the-server link
    (right key) whose token belongs to another workspace finds no such token in its own workspace."""
    a, b = api.tenant(), api.tenant()
    artifact_id = api.artifact(a, DATA)
    token = sign_download(SECRET, artifact_id, a.workspace_id, b.token_id, utcnow() + timedelta(minutes=5))
    assert _code(api, f"/v1/downloads/{token}") == (403, "link_revoked")


# -- one spelling -------------------------------------------------------------------------------------------------
_TOKEN = sign_download(SECRET, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), utcnow() + timedelta(days=30))


def _mutations(token: str):
    parts = token.split(".")
    hex_part = st.sampled_from([0, 1, 2])
    return st.one_of(
        # Upper-case one hex letter of an id (a-f only, so the text really changes).
        hex_part.flatmap(lambda i: st.sampled_from([j for j, c in enumerate(parts[i]) if c in "abcdef"] or [0]).map(
            lambda j, i=i: ".".join(parts[:i] + [parts[i][:j] + parts[i][j].upper() + parts[i][j + 1:]] + parts[i + 1:])))
        ,
        st.integers(min_value=1, max_value=3).map(lambda n: ".".join(parts[:3] + ["0" * n + parts[3]] + parts[4:])),
        st.sampled_from(["\n", " ", "\t", "\r\n", "=", "==", "%0A"]).map(lambda tail: token + tail),
        st.sampled_from(["\n", " ", "0"]).map(lambda head: head + token),
        st.sampled_from(["=", "=="]).map(lambda pad: ".".join(parts[:4] + [parts[4] + pad])),
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_other_spelling_of_a_valid_link_is_refused(data):
    assert verify_download(SECRET, _TOKEN).token_id  # the canonical one verifies
    mutated = data.draw(_mutations(_TOKEN))
    assert mutated != _TOKEN
    try:
        verify_download(SECRET, mutated)
    except LinkInvalid:
        return
    raise AssertionError(f"accepted a non-canonical spelling: {mutated!r}")


def test_non_canonical_spellings_are_403_link_invalid_over_http(api):
    owner = api.tenant()
    link = _link(api, owner, api.artifact(owner, DATA))
    prefix, token = link.rsplit("/", 1)
    a, w, t, expires, sig = token.split(".")
    for bad in (f"{a.upper()}.{w}.{t}.{expires}.{sig}", f"{a}.{w}.{t}.0{expires}.{sig}", f"{token}%0A",
                f"{token}=", f"{token}%20"):
        assert _code(api, f"{prefix}/{bad}") == (403, "link_invalid"), bad
    assert _code(api, link) == (200, None)


# -- HEAD ---------------------------------------------------------------------------------------------------------
def test_head_answers_gets_headers_without_a_body(api):
    owner = api.tenant()
    link = _link(api, owner, api.artifact(owner, DATA, filename="report.bin", content_type="application/pdf"))
    got, head = api.client.get(link), api.client.head(link)
    assert head.status_code == got.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "content-disposition", "accept-ranges", "etag",
                 "x-content-type-options", "cache-control"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(DATA))


def test_head_with_range_answers_206_headers(api):
    owner = api.tenant()
    link = _link(api, owner, api.artifact(owner, DATA))
    head = api.client.head(link, headers={"Range": "bytes=10-19"})
    got = api.client.get(link, headers={"Range": "bytes=10-19"})
    assert head.status_code == got.status_code == 206 and head.content == b""
    assert head.headers["content-range"] == got.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    assert head.headers["content-length"] == "10"
    assert api.client.head(link, headers={"Range": f"bytes={len(DATA)}-"}).status_code == 416


def test_head_in_s3_mode_answers_here_instead_of_redirecting(api):
    """A presigned URL is signed for GET; HEAD gets the headers from the artifact's row."""
    from tests.platform.test_api_downloads import _PresigningStore

    owner = api.tenant()
    link = _link(api, owner, api.artifact(owner, DATA))
    api.app.state.store = _PresigningStore(api.store)
    head = api.client.head(link, follow_redirects=False)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA))
    assert api.client.get(link, follow_redirects=False).status_code == 307


def test_log_redaction_hides_the_signature_of_a_token_bound_link():
    from resources.logs import redact_secrets

    out = redact_secrets(None, "info", {"event": f"GET /v1/downloads/{_TOKEN}"})
    assert _TOKEN.rsplit(".", 1)[1] not in out["event"] and "[REDACTED]" in out["event"]

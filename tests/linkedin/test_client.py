"""The production client's edges, with httpx.MockTransport: transient vs auth errors, secrets, transport failures."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from pydantic import SecretStr

from pipelines.linkedin.outcomes import TransportFailure
from resources.linkedin_client import (
    LinkedInAuthError,
    LinkedInClient,
    LinkedInClientConfig,
    LinkedInProtocolError,
    LinkedInUnavailable,
)

SECRET = "client-secret-value-123"


def make(handler) -> LinkedInClient:
    config = LinkedInClientConfig(client_id="cid", client_secret=SecretStr(SECRET), redirect_uri="https://k/cb",
                                  api_version="202611", auth_base_url="https://auth.test", api_base_url="https://api.test")
    return LinkedInClient(config, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status", [429, 500, 503, 408])
def test_transient_token_errors_are_unavailable_not_auth(status):
    client = make(lambda request: httpx.Response(status, text="<html>busy</html>"))
    with pytest.raises(LinkedInUnavailable) as info:
        client.refresh(SecretStr("rt-value-xyz"))
    assert info.value.status == status and "rt-value-xyz" not in str(info.value)


def test_token_request_is_form_encoded_and_errors_are_scrubbed():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["ctype"] = request.headers["content-type"]
        seen["form"] = dict(x.split("=", 1) for x in request.content.decode().split("&"))
        return httpx.Response(400, json={"error": "invalid_request",
                                         "error_description": f"code the-code-4567 with secret {SECRET} refused"})

    with pytest.raises(LinkedInAuthError) as info:
        make(handler).exchange_code("the-code-4567")
    assert seen["ctype"] == "application/x-www-form-urlencoded"
    assert seen["form"]["grant_type"] == "authorization_code" and seen["form"]["redirect_uri"] == "https%3A%2F%2Fk%2Fcb"
    assert "the-code-4567" not in str(info.value) and SECRET not in str(info.value) and "[redacted]" in str(info.value)


def test_empty_refresh_token_is_none_and_scopes_parse():
    answer = {"access_token": "at", "expires_in": 5184000, "scope": "openid,profile w_member_social", "refresh_token": ""}
    tokens = make(lambda r: httpx.Response(200, json=answer)).exchange_code("c")
    assert tokens.refresh_token is None and tokens.scopes == {"openid", "profile", "w_member_social"}
    with pytest.raises(LinkedInProtocolError):
        make(lambda r: httpx.Response(200, json={"token": "x"})).exchange_code("c")
    with pytest.raises(LinkedInProtocolError):
        make(lambda r: httpx.Response(200, json={"name": "no sub"})).userinfo(SecretStr("at"))


def test_create_post_sends_configured_version_and_restli_header(caplog):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(headers=dict(request.headers), body=json.loads(request.content), url=str(request.url))
        return httpx.Response(201, headers={"x-restli-id": "urn:li:share:9"})

    with caplog.at_level(logging.DEBUG):
        obs = make(handler).create_post(SecretStr("access-token-secret"), {"author": "urn:li:person:a", "commentary": "x"})
    assert seen["url"] == "https://api.test/rest/posts"
    assert seen["headers"]["linkedin-version"] == "202611" and seen["headers"]["x-restli-protocol-version"] == "2.0.0"
    assert seen["headers"]["authorization"] == "Bearer access-token-secret"
    assert obs.status == 201 and obs.headers["x-restli-id"] == "urn:li:share:9" and obs.api_version == "202611"
    assert "access-token-secret" not in caplog.text


@pytest.mark.parametrize("exc, failure", [
    (httpx.ConnectError("refused"), TransportFailure.before_send),
    (httpx.ConnectTimeout("slow connect"), TransportFailure.before_send),
    (httpx.ReadTimeout("no answer"), TransportFailure.timeout_after_send),
    (httpx.WriteTimeout("half sent"), TransportFailure.timeout_after_send),
    (httpx.RemoteProtocolError("peer closed"), TransportFailure.reset_after_send),
    (httpx.ReadError("reset by peer"), TransportFailure.reset_after_send),
])
def test_transport_failures_are_observed_not_raised(exc, failure):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    assert make(handler).create_post(SecretStr("t"), {}).failure is failure


def test_api_version_is_required_and_checked():
    with pytest.raises(TypeError):
        LinkedInClientConfig(client_id="c", client_secret=SecretStr("s"), redirect_uri="r")  # no default version
    with pytest.raises(ValueError):
        LinkedInClientConfig(client_id="c", client_secret=SecretStr("s"), redirect_uri="r", api_version="latest")
    config = LinkedInClientConfig(client_id="c", client_secret=SecretStr(SECRET), redirect_uri="r", api_version="202611")
    assert SECRET not in repr(config)

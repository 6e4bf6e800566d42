"""The production LinkedIn HTTP client (httpx): OAuth 2.0 authorization code, refresh, userinfo, posts.

Only base URLs differ between LinkedIn and the local emulator. ``LinkedIn-Version`` comes from the
configuration (``api_version``, required, no default here: a hard-coded version is how every post
starts failing with 426 the month it is sunset). Tokens travel as ``pydantic.SecretStr``; no token,
code or client secret is put in an exception message or a log line (messages from LinkedIn are
scrubbed of them too). ``create_post`` never raises for an HTTP answer: it returns a
``PostObservation`` that ``pipelines.linkedin.outcomes.classify`` turns into a decision.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from pipelines.linkedin.outcomes import PostObservation, TransportFailure, clean_message

log = logging.getLogger("kiln.linkedin")

DEFAULT_SCOPES = ("openid", "profile", "w_member_social")
RESTLI_PROTOCOL_VERSION = "2.0.0"


@dataclass(frozen=True)
class LinkedInClientConfig:
    client_id: str
    client_secret: SecretStr
    redirect_uri: str
    api_version: str  # LinkedIn-Version, YYYYMM: from settings, never a constant in code
    auth_base_url: str = "https://www.linkedin.com"
    api_base_url: str = "https://api.linkedin.com"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    write_timeout_s: float = 20.0
    pool_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not (len(self.api_version) in (6, 9) and self.api_version[:6].isdigit()):
            raise ValueError("api_version must look like YYYYMM (or YYYYMM.RR)")


class LinkedInError(Exception):
    code = "linkedin_error"

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error = status, error


class LinkedInAuthError(LinkedInError):
    """LinkedIn refused an OAuth exchange or a token (400/401 from the token endpoint, 401 from the API)."""

    code = "linkedin_auth_failed"


class LinkedInPermissionError(LinkedInError):
    code = "linkedin_forbidden"


class LinkedInUnavailable(LinkedInError):
    """Network failure, timeout or 5xx: transient, retry later (never a reason to disconnect an account)."""

    code = "linkedin_unavailable"


class LinkedInProtocolError(LinkedInError):
    """LinkedIn answered something this client cannot read (missing fields, not JSON)."""

    code = "linkedin_protocol_error"


@dataclass(frozen=True)
class TokenSet:
    access_token: SecretStr
    expires_at: datetime
    scopes: frozenset[str]
    refresh_token: SecretStr | None = None
    refresh_token_expires_at: datetime | None = None
    id_token: SecretStr | None = None


@dataclass(frozen=True)
class MemberInfo:
    sub: str
    name: str | None
    picture: str | None

    @property
    def author_urn(self) -> str:
        return f"urn:li:person:{self.sub}"


@dataclass(frozen=True)
class PostSummary:
    urn: str
    author: str
    commentary: str
    created_at: datetime | None
    raw: dict[str, Any]


def new_state() -> str:
    """A random single-use OAuth state (the caller stores its hash, bound to workspace, user and redirect)."""
    return secrets.token_urlsafe(32)


class LinkedInClient:
    def __init__(self, config: LinkedInClientConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s,
                                write=config.write_timeout_s, pool=config.pool_timeout_s)
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False,
                                  headers={"User-Agent": "kiln-linkedin/1"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LinkedInClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- OAuth -------------------------------------------------------------------------------
    def authorization_url(self, state: str, *, scopes: tuple[str, ...] | None = None) -> str:
        params = {"response_type": "code", "client_id": self.config.client_id,
                  "redirect_uri": self.config.redirect_uri, "state": state,
                  "scope": " ".join(scopes or self.config.scopes)}
        return f"{self.config.auth_base_url.rstrip('/')}/oauth/v2/authorization?{urlencode(params)}"

    def exchange_code(self, code: str) -> TokenSet:
        return self._token_request({"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": self.config.redirect_uri}, secrets_in_play=(code,))

    def refresh(self, refresh_token: SecretStr) -> TokenSet:
        value = refresh_token.get_secret_value()
        return self._token_request({"grant_type": "refresh_token", "refresh_token": value}, secrets_in_play=(value,))

    def _token_request(self, form: dict[str, str], *, secrets_in_play: tuple[str, ...]) -> TokenSet:
        secret = self.config.client_secret.get_secret_value()
        form = form | {"client_id": self.config.client_id, "client_secret": secret}
        url = f"{self.config.auth_base_url.rstrip('/')}/oauth/v2/accessToken"
        sent_at = datetime.now(UTC)
        response = self._send("POST", url, "token", data=form)  # httpx form-encodes `data`
        if response.status_code in (408, 429) or response.status_code >= 500:
            # Transient: the caller retries later; it must never treat this as a revoked grant.
            raise LinkedInUnavailable(f"LinkedIn's token endpoint answered {response.status_code}.",
                                      status=response.status_code)
        body = self._json(response, "token")
        scrub = (*secrets_in_play, secret)
        if response.status_code != 200:
            error = str(body.get("error") or "") if isinstance(body, dict) else ""
            description = _scrub(clean_message(body.get("error_description") if isinstance(body, dict) else ""), scrub)
            raise LinkedInAuthError(f"LinkedIn refused the token request ({error or response.status_code}): {description}",
                                    status=response.status_code, error=error or None)
        try:
            access = str(body["access_token"])
            expires_in = int(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise LinkedInProtocolError("LinkedIn's token answer lacks access_token or expires_in.") from None
        raw_scope = str(body.get("scope") or "")
        refresh = body.get("refresh_token") or None
        refresh_in = body.get("refresh_token_expires_in")
        return TokenSet(
            access_token=SecretStr(access),
            expires_at=sent_at + timedelta(seconds=expires_in),
            scopes=frozenset(s for s in raw_scope.replace(",", " ").split() if s),
            # An absent or empty refresh token is None: the caller keeps the stored one.
            refresh_token=SecretStr(str(refresh)) if refresh else None,
            refresh_token_expires_at=sent_at + timedelta(seconds=int(refresh_in)) if refresh and refresh_in else None,
            id_token=SecretStr(str(body["id_token"])) if body.get("id_token") else None,
        )

    def userinfo(self, access_token: SecretStr) -> MemberInfo:
        url = f"{self.config.api_base_url.rstrip('/')}/v2/userinfo"
        response = self._send("GET", url, "userinfo", headers=self._auth(access_token))
        body = self._json(response, "userinfo")
        self._raise_for_api(response, body, "userinfo")
        sub = body.get("sub") if isinstance(body, dict) else None
        if not isinstance(sub, str) or not sub:
            raise LinkedInProtocolError("LinkedIn's userinfo answer lacks sub.")
        return MemberInfo(sub=sub, name=body.get("name"), picture=body.get("picture"))

    # -- posts ---------------------------------------------------------------------------------
    def _rest_headers(self, access_token: SecretStr) -> dict[str, str]:
        return self._auth(access_token) | {"LinkedIn-Version": self.config.api_version,
                                           "X-Restli-Protocol-Version": RESTLI_PROTOCOL_VERSION}

    def create_post(self, access_token: SecretStr, body: dict[str, Any]) -> PostObservation:
        """Send one post. Never raises for LinkedIn's answer or a network failure: see outcomes.classify."""
        url = f"{self.config.api_base_url.rstrip('/')}/rest/posts"
        started = time.monotonic()
        try:
            response = self._http.post(url, json=body, headers=self._rest_headers(access_token))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            failure, error_name = TransportFailure.before_send, type(exc).__name__
        except httpx.TimeoutException as exc:  # read/write timeout: the request may have been processed
            failure, error_name = TransportFailure.timeout_after_send, type(exc).__name__
        except httpx.TransportError as exc:  # reset, closed mid-answer, protocol error
            failure, error_name = TransportFailure.reset_after_send, type(exc).__name__
        else:
            log.info("linkedin post answered", extra={"status": response.status_code,
                                                     "duration_ms": int((time.monotonic() - started) * 1000)})
            try:
                parsed = response.json() if response.content else None
            except ValueError:
                parsed = None
            return PostObservation(status=response.status_code, headers={k.lower(): v for k, v in response.headers.items()},
                                   body=parsed, api_version=self.config.api_version)
        log.warning("linkedin post transport failure", extra={"failure": failure.value, "error": error_name})
        return PostObservation(failure=failure, api_version=self.config.api_version)

    def list_posts(self, access_token: SecretStr, author_urn: str, *, count: int = 20) -> list[PostSummary]:
        """The author's recent posts (needs r_member_social, which LinkedIn restricts)."""
        url = f"{self.config.api_base_url.rstrip('/')}/rest/posts"
        params = {"q": "author", "author": author_urn, "count": str(count), "sortBy": "LAST_MODIFIED"}
        response = self._send("GET", url, "list posts", params=params, headers=self._rest_headers(access_token))
        body = self._json(response, "list posts")
        self._raise_for_api(response, body, "list posts")
        elements = body.get("elements") if isinstance(body, dict) else None
        if not isinstance(elements, list):
            raise LinkedInProtocolError("LinkedIn's posts answer lacks elements.")
        out = []
        for item in elements:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            created = item.get("createdAt")
            out.append(PostSummary(
                urn=item["id"], author=str(item.get("author") or ""), commentary=str(item.get("commentary") or ""),
                created_at=datetime.fromtimestamp(created / 1000, UTC) if isinstance(created, int) else None, raw=item,
            ))
        return out

    # -- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _auth(access_token: SecretStr) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token.get_secret_value()}"}

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            # The exception's text may include the URL (a code or state in a query): name the class only.
            raise LinkedInUnavailable(f"LinkedIn {what} request failed ({type(exc).__name__}).") from None
        log.info("linkedin request", extra={"what": what, "status": response.status_code})
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        if response.status_code >= 500:
            raise LinkedInUnavailable(f"LinkedIn {what} answered {response.status_code}.", status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise LinkedInProtocolError(f"LinkedIn {what} answered HTTP {response.status_code} without JSON.",
                                        status=response.status_code) from None

    @staticmethod
    def _raise_for_api(response: httpx.Response, body: Any, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        message = clean_message(body.get("message")) if isinstance(body, dict) else ""
        code = str(body.get("code") or "") if isinstance(body, dict) else ""
        if status == 401:
            raise LinkedInAuthError(f"LinkedIn refused the access token for {what}: {message}", status=status, error=code)
        if status == 403:
            raise LinkedInPermissionError(f"LinkedIn denied {what}: {message}", status=status, error=code)
        if status == 429:
            raise LinkedInUnavailable(f"LinkedIn rate-limited {what}.", status=status, error=code)
        raise LinkedInError(f"LinkedIn {what} answered {status}: {message}", status=status, error=code)


def _scrub(text: str, values: tuple[str, ...]) -> str:
    for value in values:
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text

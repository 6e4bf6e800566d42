"""Fetching a bulk run's rows from a URL (a Google Sheet's published CSV export): a boundary of the platform.

Network access is off unless ``KILN_FETCH_ALLOWED_HOSTS`` names hosts. Every hop is checked:
redirects are followed by hand, at most ``MAX_REDIRECTS`` times, and only to allow-listed hosts
(Google answers a published-CSV URL with a redirect to ``*.googleusercontent.com``, which must
be listed too). The body streams out in chunks; the caller's ``max_bytes`` bounds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from pipelines.errors import InvalidInput, RetryableError
from resources.settings import Settings

MAX_REDIRECTS = 5


class FetchRefused(InvalidInput):
    code = "fetch_not_allowed"
    title = "Fetching this URL is not allowed"


class FetchFailed(RetryableError):
    code = "fetch_failed"
    title = "The source URL could not be fetched"


def check_fetch_allowed(url: str, settings: Settings) -> str:
    """The URL's host when this deployment may fetch it; else ``FetchRefused`` saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FetchRefused("source_url must be an http(s) URL.")
    allowed = settings.fetch_allowed_host_set
    if not allowed:
        raise FetchRefused(
            "This deployment does not fetch URLs (KILN_FETCH_ALLOWED_HOSTS is empty); upload the CSV instead.")
    host = parts.hostname.lower()
    if host not in allowed:
        raise FetchRefused(f"Host {host!r} is not in KILN_FETCH_ALLOWED_HOSTS.", host=host)
    if parts.username or parts.password:
        raise FetchRefused("source_url must not carry credentials.")
    return host


def fetch_source(url: str, settings: Settings) -> Iterator[bytes]:
    """Yield the body of ``url`` after following allow-listed redirects."""
    check_fetch_allowed(url, settings)
    timeout = httpx.Timeout(settings.fetch_timeout_seconds)
    with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        check_fetch_allowed(url, settings)
                        continue
                    if response.status_code >= 500 or response.status_code == 429:
                        raise FetchFailed(f"The source answered HTTP {response.status_code}.")
                    if response.status_code != 200:
                        raise FetchRefused(f"The source answered HTTP {response.status_code}; "
                                           "publish the sheet as CSV and use its export URL.")
                    yield from response.iter_bytes(1024 * 1024)
                    return
            except httpx.HTTPError as exc:
                raise FetchFailed(f"Fetching the source failed: {type(exc).__name__}.") from exc
    raise FetchRefused(f"The source redirected more than {MAX_REDIRECTS} times.")

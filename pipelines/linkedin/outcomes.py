"""What one ``POST /rest/posts`` attempt means, and what to do next.

The client records what it observed (a response, or a transport failure and whether the request may
have reached LinkedIn); ``classify`` turns that into one decision. The rule that keeps posting
exactly-once: anything that may have created a post (5xx, a timeout or reset after the request was
sent, a 2xx without a post URN) is *ambiguous* and is reconciled, never blindly resent.

=========================================  ==========================================================
observation                                 outcome
=========================================  ==========================================================
201 + ``x-restli-id`` (or ``Location``)     ``published(urn)``
transport failure before sending            ``retry`` (nothing reached LinkedIn; safe to send again)
timeout / reset after sending, 5xx, other   ``ambiguous`` (reconcile first)
422 ``DUPLICATE_POST`` naming a share URN   ``published(that urn)`` when reconciling, else ``failed``
429                                         ``backoff`` to the next UTC midnight when the daily budget
                                            is gone, else exponential (``Retry-After`` honoured)
401                                         ``refresh`` once, then ``needs_reauth``
426                                         ``failed`` code ``linkedin_version_sunset`` + the setting
other 4xx                                   ``failed`` with LinkedIn's message
=========================================  ==========================================================
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

API_VERSION_SETTING = "KILN_LINKEDIN_API_VERSION"
_SHARE_URN_RE = re.compile(r"urn:li:(?:share|ugcPost):\d+")
_POST_URN_RE = re.compile(r"^urn:li:(?:share|ugcPost):\d+$")
MAX_MESSAGE_CHARS = 500


class TransportFailure(StrEnum):
    """How a request failed without a response. ``before_send``: it never reached LinkedIn."""

    before_send = "before_send"  # connect error/timeout, pool timeout: nothing was sent
    timeout_after_send = "timeout_after_send"  # read (or write) timeout: LinkedIn may have committed
    reset_after_send = "reset_after_send"  # connection closed or reset before a full response


@dataclass(frozen=True)
class PostObservation:
    """What the client saw for one send. Either ``status`` or ``failure`` is set."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: Any = None  # parsed JSON when there was some
    failure: TransportFailure | None = None
    api_version: str | None = None  # the LinkedIn-Version sent


class OutcomeKind(StrEnum):
    published = "published"
    retry = "retry"
    ambiguous = "ambiguous"
    backoff = "backoff"
    refresh = "refresh"
    needs_reauth = "needs_reauth"
    failed = "failed"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    post_urn: str | None = None
    retry_at: datetime | None = None
    code: str | None = None
    message: str | None = None
    setting: str | None = None
    daily_budget_exhausted: bool = False


@dataclass(frozen=True)
class ClassifyContext:
    now: datetime
    reconciling: bool = False  # this send is the identical resend of an ambiguous attempt
    refreshed_already: bool = False  # a 401 was already answered with one token refresh
    daily_budget_exhausted: bool = False  # Kiln's own per-member/per-app counters say the day is spent
    backoff_attempt: int = 0  # how many 429 backoffs this schedule already took
    backoff_base_seconds: float = 60.0
    backoff_max_seconds: float = 3600.0


def next_utc_midnight(now: datetime) -> datetime:
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def clean_message(value: Any) -> str:
    """LinkedIn's message as safe text: control characters dropped, length capped (never a repr)."""
    text = value if isinstance(value, str) else ""
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch == " ")
    return text[:MAX_MESSAGE_CHARS]


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        return clean_message(body.get("message") or body.get("error_description") or "")
    return ""


def post_urn_from_headers(headers: Mapping[str, str]) -> str | None:
    urn = headers.get("x-restli-id")
    if urn and _POST_URN_RE.match(urn):
        return urn
    location = headers.get("location") or ""
    found = _SHARE_URN_RE.search(location.replace("%3A", ":").replace("%3a", ":"))
    return found.group(0) if found else None


def duplicate_of(body: Any) -> str | None:
    """The existing post's URN when LinkedIn answered ``422 DUPLICATE_POST``."""
    if not isinstance(body, Mapping):
        return None
    code = str(body.get("code") or "")
    message = str(body.get("message") or "")
    if code != "DUPLICATE_POST" and "duplicate" not in message.lower():
        return None
    found = _SHARE_URN_RE.search(message)
    return found.group(0) if found else None


def _parse_retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def classify(obs: PostObservation, ctx: ClassifyContext) -> Outcome:
    if obs.failure is not None:
        if obs.failure is TransportFailure.before_send:
            return Outcome(OutcomeKind.retry, code="linkedin_unreachable", message="The request did not reach LinkedIn.")
        return Outcome(
            OutcomeKind.ambiguous,
            code=f"linkedin_{obs.failure.value}",
            message="The request was sent but no answer came back; the post may exist.",
        )
    status = obs.status or 0
    headers = {k.lower(): v for k, v in obs.headers.items()}
    if 200 <= status < 300:
        urn = post_urn_from_headers(headers)
        if urn:
            return Outcome(OutcomeKind.published, post_urn=urn)
        return Outcome(OutcomeKind.ambiguous, code="linkedin_no_post_urn", message=f"HTTP {status} without a post URN.")
    if status >= 500:
        return Outcome(OutcomeKind.ambiguous, code="linkedin_server_error", message=f"HTTP {status}: {_message(obs.body)}")
    if status == 422 and (urn := duplicate_of(obs.body)):
        if ctx.reconciling:
            return Outcome(OutcomeKind.published, post_urn=urn, code="linkedin_duplicate_post")
        return Outcome(
            OutcomeKind.failed,
            post_urn=urn,
            code="linkedin_duplicate_post",
            message=f"LinkedIn already has this content as {urn}.",
        )
    if status == 429:
        if ctx.daily_budget_exhausted:
            return Outcome(
                OutcomeKind.backoff,
                retry_at=next_utc_midnight(ctx.now),
                code="linkedin_rate_limited",
                message="The daily posting budget is spent; next try after 00:00 UTC.",
                daily_budget_exhausted=True,
            )
        delay = min(ctx.backoff_max_seconds, ctx.backoff_base_seconds * 2 ** max(0, ctx.backoff_attempt))
        delay = max(delay, _parse_retry_after(headers) or 0.0)
        return Outcome(
            OutcomeKind.backoff,
            retry_at=ctx.now + timedelta(seconds=delay),
            code="linkedin_rate_limited",
            message=f"LinkedIn answered 429; next try in {int(delay)} s.",
        )
    if status == 401:
        if ctx.refreshed_already:
            return Outcome(OutcomeKind.needs_reauth, code="linkedin_unauthorized", message=_message(obs.body))
        return Outcome(OutcomeKind.refresh, code="linkedin_unauthorized", message=_message(obs.body))
    if status == 426:
        return Outcome(
            OutcomeKind.failed,
            code="linkedin_version_sunset",
            setting=API_VERSION_SETTING,
            message=(
                f"LinkedIn no longer serves API version {obs.api_version or '(unknown)'}; "
                f"set {API_VERSION_SETTING} to a current YYYYMM version. {_message(obs.body)}"
            ).strip(),
        )
    if 400 <= status < 500:
        code = "linkedin_rejected"
        message = _message(obs.body) or f"LinkedIn refused the post (HTTP {status})."
        return Outcome(OutcomeKind.failed, code=code, message=message)
    return Outcome(OutcomeKind.ambiguous, code="linkedin_unexpected_status", message=f"HTTP {status}.")


def find_matching_post(body: Mapping[str, Any], posts: Iterable[Mapping[str, Any]]) -> str | None:
    """Reconciliation by reading: the URN of the author's post whose commentary is exactly the one sent."""
    for post in posts:
        if post.get("author") == body.get("author") and post.get("commentary") == body.get("commentary"):
            urn = post.get("id")
            if isinstance(urn, str) and _POST_URN_RE.match(urn):
                return urn
    return None

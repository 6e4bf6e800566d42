"""Requests per API token: a moving window per minute and a one-second burst window.

``limits`` (moving window, in-memory storage) keeps the counts in this API process's memory: a
deployment of N API replicas allows each token N times the configured rate. That bounds a single
runaway client at no cost per request (no database or network round trip); an exact cluster-wide
limit would need a shared store (``limits`` supports Redis) and belongs in front of the API.

Applied by the auth dependency (``api.deps``) once the token is known, so unauthenticated requests
never consume a token's allowance. Signed download links carry no token and are not counted: each is
bound to one artifact of the workspace that minted it and expires (``KILN_DOWNLOAD_LINK_TTL_SECONDS``),
and the links themselves are minted by rate-limited requests.
"""

from __future__ import annotations

import math
import threading
import time
import uuid

from fastapi import FastAPI, Request
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.problems import ApiProblem
from api.security import Principal
from resources.settings import Settings


class TokenRateLimiter:
    """Moving-window request limits per token (thread-safe: ``MemoryStorage`` locks)."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.config = (per_minute, burst)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        # The short window first: a refused burst then costs nothing from the minute's allowance.
        self._items: list[RateLimitItem] = [item for n, item in (
            (burst, RateLimitItemPerSecond(max(burst, 1))),
            (per_minute, RateLimitItemPerMinute(max(per_minute, 1))),
        ) if n > 0]

    def hit(self, token_id: uuid.UUID | str) -> int | None:
        """Count one request; answers None when allowed, else the whole seconds until one would be."""
        key = str(token_id)
        for item in self._items:
            if not self._limiter.hit(item, "token", key):
                stats = self._limiter.get_window_stats(item, "token", key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None


_LOCK = threading.Lock()


def token_rate_limiter(app: FastAPI, settings: Settings) -> TokenRateLimiter:
    """This app's limiter, made on first use (and anew when the settings change, as tests do)."""
    config = (settings.rate_limit_requests_per_minute, settings.rate_limit_burst)
    with _LOCK:
        limiter = getattr(app.state, "kiln_rate_limiter", None)
        if limiter is None or limiter.config != config:
            limiter = app.state.kiln_rate_limiter = TokenRateLimiter(*config)
        return limiter


def enforce_rate_limit(request: Request, settings: Settings, principal: Principal) -> None:
    """429 ``rate_limited`` with Retry-After once the token has used its allowance (0 settings: off)."""
    if not (settings.rate_limit_requests_per_minute or settings.rate_limit_burst):
        return
    retry_after = token_rate_limiter(request.app, settings).hit(principal.token_id)
    if retry_after is not None:
        raise ApiProblem(429, "rate_limited", "Too many requests with this API token (the limits are "
                         f"{settings.rate_limit_requests_per_minute} per minute and {settings.rate_limit_burst} "
                         "per second); slow down and retry after the Retry-After seconds.",
                         title="Too many requests", headers={"Retry-After": str(retry_after)})

"""The emulator's configuration and in-memory state (members, codes, tokens, posts, counters, faults)."""

from __future__ import annotations

import random
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

FAULT_KINDS = ("server_error", "unauthorized", "slow", "reset_after_commit", "timeout_after_commit")
# Faults that happen after the post is stored: the client cannot know the post exists.
AFTER_COMMIT = frozenset({"reset_after_commit", "timeout_after_commit"})
_VERSION_RE = re.compile(r"^(\d{4})(\d{2})(?:\.\d{2})?$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class EmulatorConfig:
    client_id: str = "kiln-emulator-client"
    client_secret: str = "kiln-emulator-secret"
    redirect_uris: tuple[str, ...] = ()  # empty: any http(s) redirect URI is accepted
    app_scopes: tuple[str, ...] = ("openid", "profile", "email", "w_member_social", "r_member_social")
    granted_scopes: tuple[str, ...] | None = None  # None: grant every requested (app) scope
    issue_refresh_tokens: bool = False  # only approved partner apps get them on LinkedIn
    access_token_ttl_s: int = 60 * 24 * 3600
    refresh_token_ttl_s: int = 365 * 24 * 3600  # from first consent; refreshing does not extend it
    code_ttl_s: int = 30 * 60
    current_version: str | None = None  # YYYYMM; default: the current UTC month
    supported_months: int = 12  # a version older than this many months is sunset (426)
    sunset_versions: tuple[str, ...] = ()  # declared sunset whatever their age
    max_commentary_chars: int = 3000  # counted on the shown text, UTF-16 code units
    member_daily_limit: int = 150
    app_daily_limit: int = 100_000
    latency_s: float = 0.0  # every API answer waits this long
    slow_s: float = 2.0  # extra wait of a "slow" fault
    hang_s: float = 30.0  # how long "timeout_after_commit" holds the answer back
    fault_rate: float = 0.0  # share of POST /rest/posts that get a random fault
    fault_seed: int = 0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    allow_fault_header: bool = True  # X-Emulator-Fault on a request forces a fault (tests)
    now: Callable[[], datetime] = _utcnow

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self) if f.name != "now"}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown setting {name}")
            current = getattr(self, name)
            if value is not None and (isinstance(current, tuple) or name == "granted_scopes"):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{name} must be a list of strings")
                value = tuple(value)
            elif isinstance(current, bool) and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            elif isinstance(current, (int, float)) and not isinstance(current, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
            elif isinstance(current, str) and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            setattr(self, name, value)
        for kind in self.fault_kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind}")


def month_index(version: str) -> int | None:
    match = _VERSION_RE.match(version or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


@dataclass
class Member:
    sub: str
    name: str


@dataclass
class Grant:
    sub: str
    scopes: frozenset[str]
    expires_at: datetime
    client_id: str


@dataclass
class Post:
    urn: str
    author: str
    commentary: str  # stored little text (as cut by the parser)
    text: str  # as shown
    truncated: bool
    visibility: str
    created_at: datetime
    body: dict[str, Any]


@dataclass
class EmulatorState:
    config: EmulatorConfig
    lock: threading.RLock = field(default_factory=threading.RLock)
    members: dict[str, Member] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    calls_by_day: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, sub or "*") → count
    fault_queue: deque[str] = field(default_factory=deque)
    faults_injected: dict[str, int] = field(default_factory=dict)
    next_share: int = 7_100_000_000_000_000_000
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(self.config.fault_seed)

    def now(self) -> datetime:
        return self.config.now()

    # -- OAuth -------------------------------------------------------------------------------
    def member(self, sub: str, name: str | None = None) -> Member:
        if sub not in self.members:
            self.members[sub] = Member(sub, name or f"Member {sub}")
        return self.members[sub]

    def issue_code(self, sub: str, scopes: frozenset[str], redirect_uri: str, client_id: str) -> str:
        code = "emu_code_" + secrets.token_urlsafe(24)
        self.codes[code] = {"sub": sub, "scopes": scopes, "redirect_uri": redirect_uri, "client_id": client_id,
                            "expires_at": self.now() + timedelta(seconds=self.config.code_ttl_s)}
        return code

    def issue_tokens(self, sub: str, scopes: frozenset[str], client_id: str) -> dict[str, Any]:
        cfg, now = self.config, self.now()
        access = "emu_at_" + secrets.token_urlsafe(32)
        self.access_tokens[access] = Grant(sub, scopes, now + timedelta(seconds=cfg.access_token_ttl_s), client_id)
        answer: dict[str, Any] = {"access_token": access, "expires_in": cfg.access_token_ttl_s,
                                  "scope": ",".join(sorted(scopes)), "token_type": "Bearer"}
        if cfg.issue_refresh_tokens:
            refresh = "emu_rt_" + secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = Grant(sub, scopes, now + timedelta(seconds=cfg.refresh_token_ttl_s), client_id)
            answer |= {"refresh_token": refresh, "refresh_token_expires_in": cfg.refresh_token_ttl_s}
        return answer

    def grant_for(self, token: str) -> Grant | None:
        return self.access_tokens.get(token)

    # -- posting -----------------------------------------------------------------------------
    def version_problem(self, version: str | None) -> tuple[int, str, str] | None:
        if not version:
            return 400, "VERSION_MISSING", ("A version must be present. "
                                            "Please specify a version by adding the LinkedIn-Version header.")
        index = month_index(version)
        current = month_index(self.config.current_version or f"{self.now():%Y%m}")
        assert current is not None
        if (index is None or index > current or current - index > self.config.supported_months
                or version in self.config.sunset_versions or version[:6] in self.config.sunset_versions):
            return 426, "NONEXISTENT_VERSION", f"Requested version {version[:20]} is not active"
        return None

    def pick_fault(self, forced: str | None) -> str | None:
        cfg = self.config
        fault = None
        if forced and cfg.allow_fault_header and forced in FAULT_KINDS:
            fault = forced
        elif self.fault_queue:
            fault = self.fault_queue.popleft()
        elif cfg.fault_rate > 0 and cfg.fault_kinds and self.rng.random() < cfg.fault_rate:
            fault = self.rng.choice(list(cfg.fault_kinds))
        if fault:
            self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
        return fault

    def count_call(self, sub: str) -> str | None:
        """Spend one call of today's budgets; the name of the exhausted budget if none is left."""
        day = f"{self.now():%Y-%m-%d}"
        member_key, app_key = (day, sub), (day, "*")
        if self.calls_by_day.get(app_key, 0) >= self.config.app_daily_limit:
            return "application"
        if self.calls_by_day.get(member_key, 0) >= self.config.member_daily_limit:
            return "member"
        self.calls_by_day[member_key] = self.calls_by_day.get(member_key, 0) + 1
        self.calls_by_day[app_key] = self.calls_by_day.get(app_key, 0) + 1
        return None

    def duplicate_of(self, author: str, text: str) -> Post | None:
        return next((p for p in self.posts if p.author == author and p.text == text), None)

    def store(self, author: str, commentary: str, text: str, truncated: bool, body: dict[str, Any]) -> Post:
        self.next_share += 1
        post = Post(f"urn:li:share:{self.next_share}", author, commentary, text, truncated,
                    str(body.get("visibility")), self.now(), body)
        self.posts.append(post)
        return post

    def reset(self) -> None:
        self.posts.clear()
        self.calls_by_day.clear()
        self.fault_queue.clear()
        self.faults_injected.clear()
        self.rng.seed(self.config.fault_seed)

    def summary(self) -> dict[str, Any]:
        seen: set[tuple[str, str]] = set()
        duplicates = 0
        for post in self.posts:
            key = (post.author, post.text)
            duplicates += key in seen
            seen.add(key)
        return {
            "count": len(self.posts),
            "duplicates": duplicates,
            "faults_injected": dict(self.faults_injected),
            "posts": [
                {"id": p.urn, "author": p.author, "commentary": p.commentary, "text": p.text,
                 "truncated": p.truncated, "created_at": p.created_at.isoformat()}
                for p in self.posts
            ],
        }

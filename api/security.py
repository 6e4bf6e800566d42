"""API tokens: ``kiln_<prefix>_<secret>``, stored as the prefix plus an HMAC-SHA256 of the secret.

The secret is 32 random bytes, so a keyed SHA-256 is as strong as a slow password hash here and
costs microseconds per request. The HMAC key is derived from ``KILN_SECRET_KEY``: a leaked
``api_token`` table alone does not let anyone check guesses. Comparison is constant-time.

Authentication happens before the workspace is known. On PostgreSQL, row-level security hides
every ``api_token`` row from the API role until ``kiln.workspace_id`` is set, so the lookup goes
through the SECURITY DEFINER function ``kiln_lookup_token(prefix)`` (migration 0002); on SQLite
it is a plain SELECT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, text, update
from sqlalchemy.orm import Session

from warehouse.db import as_aware, is_postgres, set_tenant, tenant_session, utcnow
from warehouse.models import ApiToken, Membership

TOKEN_PATTERN = re.compile(r"^kiln_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
ROLE_RANK = {"viewer": 1, "editor": 2, "admin": 3, "owner": 4}
ALL_SCOPES = ("jobs:read", "jobs:write", "artifacts:read", "workspace:read", "workspace:admin",
              "drafts:write", "drafts:approve", "packs:write")  # the last three: LinkedIn (docs/linkedin.md)
WILDCARD_SCOPE = "*"
# ``api_token.last_used_at`` is exact to this much: a busy token costs one small UPDATE a minute,
# not one per request, and "is this token still in use?" needs no finer answer.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# The 401 answer, shared by the body guard (api/transport.py) and the bearer dependency (api/deps.py).
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="kiln"'}
MISSING_TOKEN_DETAIL = "Send an API token: Authorization: Bearer kiln_<prefix>_<secret>."
INVALID_TOKEN_DETAIL = "The API token is invalid, expired or revoked."


def bearer_credentials(headers: dict[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


class AuthenticationFailed(Exception):
    """Any reason a bearer token is not accepted; the API answers 401 without saying which."""


@dataclass(frozen=True)
class Principal:
    token_id: uuid.UUID
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    last_used_at: datetime | None = None
    expires_at: datetime | None = None  # the token's own expiry: tokens it mints never outlive it

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[minimum]

    def has_scope(self, scope: str) -> bool:
        return WILDCARD_SCOPE in self.scopes or scope in self.scopes


def _hash_key(secret_key: str) -> bytes:
    # Domain-separated from the download-link key, so one can never stand in for the other.
    return hmac.new(secret_key.encode(), b"kiln/api-token/v1", hashlib.sha256).digest()


def hash_secret(secret: str, secret_key: str) -> str:
    return hmac.new(_hash_key(secret_key), secret.encode(), hashlib.sha256).hexdigest()


def _key(secret_key: str | None) -> str:
    if secret_key is not None:
        return secret_key
    from resources.settings import get_settings

    return get_settings().secret_key.get_secret_value()


def normalize_scopes(scopes: list[str] | tuple[str, ...] | None) -> list[str]:
    scopes = list(dict.fromkeys(scopes or [WILDCARD_SCOPE]))
    unknown = [s for s in scopes if s != WILDCARD_SCOPE and s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; known: {', '.join((WILDCARD_SCOPE, *ALL_SCOPES))}")
    return scopes


def create_api_token(
    session: Session,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    *,
    secret_key: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token row (flushed, not committed) and return it with the plaintext, shown once.

    The session must already be scoped to ``workspace_id`` (tenant_session) on PostgreSQL.
    """
    prefix = secrets.token_hex(6)  # 12 chars of [0-9a-f]
    secret = secrets.token_urlsafe(32)  # 43 chars, 256 bits
    token = ApiToken(
        workspace_id=workspace_id,
        user_id=user_id,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret, _key(secret_key)),
        scopes=normalize_scopes(scopes),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, f"kiln_{prefix}_{secret}"


@dataclass(frozen=True)
class _TokenRow:
    id: uuid.UUID
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    secret_hash: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None


def _lookup(session: Session, prefix: str) -> _TokenRow | None:
    if is_postgres(session):
        row = session.execute(
            text(
                "SELECT id, workspace_id, user_id, secret_hash, scopes, expires_at, revoked_at "
                "FROM kiln_lookup_token(:prefix)"
            ),
            {"prefix": prefix},
        ).first()
    else:
        row = session.execute(
            select(
                ApiToken.id,
                ApiToken.workspace_id,
                ApiToken.user_id,
                ApiToken.secret_hash,
                ApiToken.scopes,
                ApiToken.expires_at,
                ApiToken.revoked_at,
            ).where(ApiToken.prefix == prefix)
        ).first()
    if row is None:
        return None
    scopes = row.scopes if not isinstance(row.scopes, str) else json.loads(row.scopes)
    return _TokenRow(
        id=uuid.UUID(str(row.id)),
        workspace_id=uuid.UUID(str(row.workspace_id)),
        user_id=uuid.UUID(str(row.user_id)),
        secret_hash=row.secret_hash,
        scopes=list(scopes or []),
        expires_at=as_aware(row.expires_at),
        revoked_at=as_aware(row.revoked_at),
    )


# A hash to compare against when the prefix is unknown, so both paths cost the same.
_DUMMY_HASH = "0" * 64


def authenticate(session: Session, raw_token: str, *, secret_key: str | None = None, now: datetime | None = None) -> Principal:
    """Check a ``kiln_<prefix>_<secret>`` token and scope ``session`` to its workspace.

    Raises AuthenticationFailed for malformed, unknown, wrong-secret, revoked or expired tokens
    and for tokens whose user is no longer a member.
    """
    match = TOKEN_PATTERN.match(raw_token or "")
    if not match:
        raise AuthenticationFailed("malformed token")
    prefix, secret = match.groups()
    row = _lookup(session, prefix)
    candidate = hash_secret(secret, _key(secret_key))
    if not hmac.compare_digest(candidate, row.secret_hash if row else _DUMMY_HASH) or row is None:
        raise AuthenticationFailed("unknown token")
    now = now or utcnow()
    if row.revoked_at is not None:
        raise AuthenticationFailed("revoked token")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationFailed("expired token")
    set_tenant(session, row.workspace_id)
    # last_used_at is read here, under the workspace scope, so the lookup function (migration 0002)
    # keeps its signature; the membership check and this read are one query.
    member = session.execute(
        select(Membership.role, ApiToken.last_used_at)
        .join(ApiToken, (ApiToken.workspace_id == Membership.workspace_id) & (ApiToken.user_id == Membership.user_id))
        .where(Membership.workspace_id == row.workspace_id, Membership.user_id == row.user_id, ApiToken.id == row.id)
    ).first()
    if member is None:
        raise AuthenticationFailed("not a member")
    return Principal(
        token_id=row.id,
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        role=member.role,
        scopes=frozenset(row.scopes),
        last_used_at=as_aware(member.last_used_at),
        expires_at=row.expires_at,
    )


def record_token_use(engine: Engine, principal: Principal, *, now: datetime | None = None) -> bool:
    """Stamp ``api_token.last_used_at``, at most once per ``LAST_USED_RESOLUTION``; True when written.

    Its own short transaction, not the request's: the row lock an UPDATE takes must not be held
    while a route runs, or concurrent requests with one token would queue behind each other.
    The UPDATE is conditional, so concurrent requests write once between them. Call it after the
    request has given its connection back (the API runs it as a background task): taking a second
    pooled connection while holding the first deadlocks the pool under a burst of requests.
    """
    now = now or utcnow()
    cutoff = now - LAST_USED_RESOLUTION
    if principal.last_used_at is not None and principal.last_used_at > cutoff:
        return False
    with tenant_session(engine, principal.workspace_id) as session:
        result = session.execute(
            update(ApiToken)
            .where(
                ApiToken.workspace_id == principal.workspace_id,
                ApiToken.id == principal.token_id,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= cutoff),
            )
            # updated_at keeps meaning "the token was changed" (revoked, renamed), not "it was used".
            .values(last_used_at=now, updated_at=ApiToken.updated_at)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

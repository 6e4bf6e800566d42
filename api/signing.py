"""Signed download links: HMAC-SHA256 over (artifact id, workspace id, issuing token id, expiry).

A link is ``<artifact_id>.<workspace_id>.<token_id>.<expires_unix>.<signature>``: the three ids as
32 lowercase hex characters, the expiry as a decimal without leading zeros, the signature base64url
without padding (43 characters). Exactly one spelling is accepted (``re.fullmatch``: no trailing
newline, no upper-case hex, no leading zero, no ``=`` padding), so a link can never be varied to
dodge a log filter, a cache key or a revocation list.

The link itself is the credential: ``GET /v1/downloads/{token}`` needs no bearer token. The
signature is checked before the expiry, so a tampered link is always ``link_invalid`` and only a
genuine old link is ``link_expired``. The issuing API token is part of the signed message: the
download route checks that it is still live (``api.links.check_issuer``), so revoking the token,
its expiry or the member's removal ends every link it minted (``link_revoked``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from warehouse.db import utcnow

_LINK = re.compile(r"([0-9a-f]{32})\.([0-9a-f]{32})\.([0-9a-f]{32})\.([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})")


class LinkInvalid(Exception):
    code = "link_invalid"


class LinkExpired(Exception):
    code = "link_expired"


@dataclass(frozen=True)
class DownloadGrant:
    artifact_id: uuid.UUID
    workspace_id: uuid.UUID
    token_id: uuid.UUID  # the API token that minted the link: it must still be live when the link is used
    expires_at: datetime


def _key(secret_key: str) -> bytes:
    # v2: the message gained the token id; v1 links (without it) no longer verify.
    return hmac.new(secret_key.encode(), b"kiln/download-link/v2", hashlib.sha256).digest()


def _signature(secret_key: str, artifact_hex: str, workspace_hex: str, token_hex: str, expires: int) -> str:
    message = f"{artifact_hex}.{workspace_hex}.{token_hex}.{expires}".encode()
    digest = hmac.new(_key(secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_download(secret_key: str, artifact_id: uuid.UUID, workspace_id: uuid.UUID, token_id: uuid.UUID,
                  expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    a, w, t = artifact_id.hex, workspace_id.hex, token_id.hex
    return f"{a}.{w}.{t}.{expires}.{_signature(secret_key, a, w, t, expires)}"


def verify_download(secret_key: str, token: str, *, now: datetime | None = None) -> DownloadGrant:
    match = _LINK.fullmatch(token or "")
    if not match:
        raise LinkInvalid("malformed download link")
    a, w, t, expires_raw, signature = match.groups()
    expires = int(expires_raw)
    if not hmac.compare_digest(signature, _signature(secret_key, a, w, t, expires)):
        raise LinkInvalid("bad signature")
    expires_at = datetime.fromtimestamp(expires, UTC)
    if expires_at <= (now or utcnow()):
        raise LinkExpired("link expired")
    return DownloadGrant(uuid.UUID(hex=a), uuid.UUID(hex=w), uuid.UUID(hex=t), expires_at)

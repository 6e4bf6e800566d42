"""Signed download links: HMAC-SHA256 over (artifact id, workspace id, expiry).

A link is ``<artifact_id>.<workspace_id>.<expires_unix>.<signature>`` with both ids as 32 hex
characters and the signature base64url without padding. The link itself is the credential:
``GET /v1/downloads/{token}`` needs no bearer token. The signature is checked before the expiry,
so a tampered link is always ``link_invalid`` and only a genuine old link is ``link_expired``.
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

_LINK = re.compile(r"^([0-9a-f]{32})\.([0-9a-f]{32})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


class LinkInvalid(Exception):
    code = "link_invalid"


class LinkExpired(Exception):
    code = "link_expired"


@dataclass(frozen=True)
class DownloadGrant:
    artifact_id: uuid.UUID
    workspace_id: uuid.UUID
    expires_at: datetime


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"kiln/download-link/v1", hashlib.sha256).digest()


def _signature(secret_key: str, artifact_hex: str, workspace_hex: str, expires: int) -> str:
    message = f"{artifact_hex}.{workspace_hex}.{expires}".encode()
    digest = hmac.new(_key(secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_download(
    secret_key: str, artifact_id: uuid.UUID, workspace_id: uuid.UUID, expires_at: datetime
) -> str:
    expires = int(expires_at.timestamp())
    a, w = artifact_id.hex, workspace_id.hex
    return f"{a}.{w}.{expires}.{_signature(secret_key, a, w, expires)}"


def verify_download(secret_key: str, token: str, *, now: datetime | None = None) -> DownloadGrant:
    match = _LINK.match(token or "")
    if not match:
        raise LinkInvalid("malformed download link")
    a, w, expires_raw, signature = match.groups()
    expires = int(expires_raw)
    if not hmac.compare_digest(signature, _signature(secret_key, a, w, expires)):
        raise LinkInvalid("bad signature")
    expires_at = datetime.fromtimestamp(expires, UTC)
    if expires_at <= (now or utcnow()):
        raise LinkExpired("link expired")
    return DownloadGrant(uuid.UUID(hex=a), uuid.UUID(hex=w), expires_at)

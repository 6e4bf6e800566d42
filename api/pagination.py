"""Keyset pagination: ``?limit=&cursor=`` in, ``{items, next_cursor}`` out.

A cursor is opaque to clients: base64url JSON of the last row's sort key. Pages are stable
under concurrent inserts (no OFFSET), and each page is one index range scan.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from api.problems import ApiProblem


def encode_cursor(**key: Any) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *fields: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or any(f not in data for f in fields):
            raise ValueError("missing fields")
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(422, "invalid_cursor", "The cursor is not one this API returned.") from None


def time_id_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return encode_cursor(t=created_at.astimezone(UTC).isoformat(), i=str(row_id))


def decode_time_id_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    data = decode_cursor(cursor, "t", "i")
    try:
        created_at = datetime.fromisoformat(str(data["t"]))
        row_id = uuid.UUID(str(data["i"]))
    except ValueError:
        raise ApiProblem(422, "invalid_cursor", "The cursor is not one this API returned.") from None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return created_at.astimezone(UTC), row_id

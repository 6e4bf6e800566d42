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
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import BigInteger, Select, SmallInteger, and_, or_
from sqlalchemy.orm import Session

from api.problems import ApiProblem

# The ``?cursor=`` query parameter every list route takes.
Cursor = Annotated[str | None, Query(max_length=512)]

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """A list answer: subclass as ``class VideoPage(Page[VideoOut])`` so OpenAPI keeps a readable name."""

    items: list[ItemT]
    next_cursor: str | None = None


def encode_cursor(**key: Any) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _invalid_cursor() -> ApiProblem:
    return ApiProblem(422, "invalid_cursor", "The cursor is not one this API returned.")


def decode_cursor(cursor: str, *fields: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or any(f not in data for f in fields):
            raise ValueError("missing fields")
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None


def time_id_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return encode_cursor(t=created_at.astimezone(UTC).isoformat(), i=str(row_id))


def decode_time_id_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    data = decode_cursor(cursor, "t", "i")
    try:
        created_at = datetime.fromisoformat(str(data["t"]))
        row_id = uuid.UUID(str(data["i"]))
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        # A time next to year 1 or 9999 with an offset has no UTC equivalent (OverflowError).
        return created_at.astimezone(UTC), row_id
    except (ValueError, TypeError, OverflowError):
        raise _invalid_cursor() from None


def newest_first_page(session: Session, query: Select, model: Any, *, limit: int,
                      cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows of ``model``, newest first by ``(created_at, id)``, and the next cursor.

    ``model`` needs ``created_at`` and ``id`` columns (an index on ``(workspace_id, created_at, id)``
    serves the range scan). Fetches ``limit + 1`` rows to learn whether another page follows.
    """
    if cursor:
        at, last_id = decode_time_id_cursor(cursor)
        query = query.where(or_(model.created_at < at, and_(model.created_at == at, model.id < last_id)))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, (time_id_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)


def _int_key_limit(column: Any) -> int:
    """One past the largest value ``column`` holds: a larger cursor was never issued, and binding it
    fails (PostgreSQL casts the parameter to the column's type; SQLite stops at 64 bits)."""
    if isinstance(column.type, BigInteger):
        return 2**63
    if isinstance(column.type, SmallInteger):
        return 2**15
    return 2**31


def ascending_int_page(session: Session, query: Select, column: Any, *, cursor_field: str, limit: int,
                       cursor: str | None, descending: bool = False) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows in ascending (or descending) order of the integer ``column`` (a sequence or
    row number)."""
    if cursor:
        after = decode_cursor(cursor, cursor_field)[cursor_field]
        # bool is an int subclass; JSON true is not a row number.
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < _int_key_limit(column):
            raise _invalid_cursor()
        query = query.where(column < after if descending else column > after)
    rows = list(session.scalars(query.order_by(column.desc() if descending else column).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    return page, (encode_cursor(**{cursor_field: getattr(page[-1], column.key)}) if more else None)

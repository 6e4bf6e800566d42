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
from sqlalchemy import Select, and_, or_
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


def ascending_int_page(session: Session, query: Select, column: Any, *, cursor_field: str, limit: int,
                       cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows in ascending order of the integer ``column`` (a sequence or row number)."""
    if cursor:
        after = decode_cursor(cursor, cursor_field)[cursor_field]
        if not isinstance(after, int):
            raise ApiProblem(422, "invalid_cursor", "The cursor is not one this API returned.")
        query = query.where(column > after)
    rows = list(session.scalars(query.order_by(column).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    return page, (encode_cursor(**{cursor_field: getattr(page[-1], column.key)}) if more else None)

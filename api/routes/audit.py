"""``GET /v1/audit-log``: the workspace's append-only audit trail, for admins and compliance reviewers.

Every product writes its entries through ``api.deps.audit`` (or its own worker-side writer): member and token
changes, job cancels, uploads, LinkedIn connects, draft transitions, approvals, schedules and every post attempt,
episode edits. Newest first, keyset pages over the entry's sequence number (stable while new entries arrive).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from api.deps import DbSession, require
from api.pagination import Cursor, Page, ascending_int_page
from api.problems import problem_responses
from api.schemas import UtcDatetime, UtcTimeIn
from api.security import Principal
from warehouse.api_reads import audit_query
from warehouse.models import AuditLog

router = APIRouter(prefix="/v1/audit-log", tags=["workspace"], responses=problem_responses(401, 403, 422))

# The trail names every member's actions: admins (and tokens they scoped for reading the workspace) only.
AuditReader = Annotated[Principal, Depends(require("admin", "workspace:read"))]
_Text = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    action: str
    target_type: str
    target_id: str | None
    actor_user_id: uuid.UUID | None
    request_id: str | None
    detail: dict[str, Any]
    created_at: UtcDatetime


class AuditPage(Page[AuditEntryOut]):
    pass


@router.get("", response_model=AuditPage)
def list_audit_log(
    principal: AuditReader,
    session: DbSession,
    action: Annotated[_Text, Query(description="An action (`draft.approve`), or a prefix ending in `.` (`draft.`)")] = None,
    target_type: _Text = None,
    target_id: _Text = None,
    actor_user_id: uuid.UUID | None = None,
    created_after: UtcTimeIn | None = None,
    created_before: UtcTimeIn | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> AuditPage:
    query = audit_query(principal.workspace_id, action=action, target_type=target_type, target_id=target_id,
                        actor_user_id=actor_user_id, created_after=created_after, created_before=created_before)
    page, next_cursor = ascending_int_page(session, query, AuditLog.id, cursor_field="seq", limit=limit,
                                           cursor=cursor, descending=True)
    return AuditPage(items=[AuditEntryOut(seq=e.id, action=e.action, target_type=e.target_type,
                                          target_id=e.target_id, actor_user_id=e.actor_user_id,
                                          request_id=e.request_id, detail=e.detail or {}, created_at=e.created_at)
                            for e in page], next_cursor=next_cursor)

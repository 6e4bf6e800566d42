"""Request and response bodies. Timestamps are ISO 8601 in UTC; ids are UUIDs."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, computed_field

from api.pagination import Page


def _to_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: no such instant in UTC
        raise ValueError("the time is out of range once converted to UTC") from None


# Control characters have no place in names, and PostgreSQL text cannot hold NUL at all (psycopg
# refuses to send it): rejected here so they answer 422, not a database error.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(value: str) -> bool:
    return _CONTROL_CHARS.search(value) is not None


def _no_control_chars(value: str) -> str:
    if has_control_chars(value):
        raise ValueError("control characters (such as NUL) are not allowed")
    return value


# A one-line human-readable string (names, labels, kinds): no NUL, line breaks or other controls.
PlainText = Annotated[str, AfterValidator(_no_control_chars)]


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(lambda v: v.isoformat().replace("+00:00", "Z"), return_type=str, when_used="json"),
]

# A time a client sends (query filters): any offset, converted to UTC before it meets the database.
# SQLite stores times as UTC text without an offset, so an unconverted +05:00 bound compares wrong.
UtcTimeIn = Annotated[datetime, AfterValidator(_to_utc)]

# Deliberately simple (no email-validator dependency): one @, no spaces, a dot in the domain.
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    AfterValidator(_no_control_chars),
]

Role = Literal["owner", "admin", "editor", "viewer"]
JobStatus = Literal["queued", "running", "succeeded", "retrying", "failed", "canceled"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WorkspaceOut(_Out):
    id: uuid.UUID
    name: str
    slug: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    role: Role = Field(description="The caller's role in this workspace")


class MemberOut(_Out):
    """A member, or (status ``invited``) a pending invitation: then only the email as the inviter typed it,
    with no user id or name, whether or not someone already has an account with that address."""

    user_id: uuid.UUID | None = Field(default=None, description="Null while the invitation is pending")
    email: str
    display_name: str | None = None
    role: Role
    status: Literal["active", "invited"] = "active"
    invitation_id: uuid.UUID | None = Field(default=None, description="Set for a pending invitation")
    expires_at: UtcDatetime | None = Field(default=None, description="When a pending invitation lapses")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class MemberCreate(BaseModel):
    """Invite ``email``: answered with an invitation, never with what Kiln knows about the address."""

    model_config = ConfigDict(extra="forbid")
    email: Email
    role: Role = "viewer"
    display_name: PlainText | None = Field(
        default=None, max_length=200, description="Used only if accepting creates a new user")


InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


class InvitationOut(_Out):
    id: uuid.UUID
    email: str = Field(description="The address as typed (normalized to lower case)")
    display_name: str | None = None
    role: Role
    status: InvitationStatus
    expires_at: UtcDatetime
    accepted_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class InvitationCreated(InvitationOut):
    token: str = Field(description="The acceptance secret; shown once. Give it to the invitee, who sends it to "
                       "POST /v1/invitations/accept")


INVITATION_TOKEN_PATTERN = r"^kiln_inv_[A-Za-z0-9_-]{43}$"


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(pattern=INVITATION_TOKEN_PATTERN, max_length=60)


class InvitationAccepted(BaseModel):
    workspace_id: uuid.UUID
    workspace_name: str
    workspace_slug: str
    user_id: uuid.UUID
    role: Role
    token: str = Field(description="A new API token of this member in this workspace; shown once")
    token_id: uuid.UUID


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class MemberPage(Page[MemberOut]):
    pass


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PlainText = Field(min_length=1, max_length=200)
    scopes: list[PlainText] = Field(default_factory=lambda: ["*"], max_length=16)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(_Out):
    id: uuid.UUID
    name: str
    prefix: str
    user_id: uuid.UUID
    scopes: list[str]
    expires_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None
    last_used_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @computed_field(description="active, revoked (revoked_at is set) or expired (expires_at has passed)")
    @property
    def status(self) -> Literal["active", "revoked", "expired"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


class TokenCreated(TokenOut):
    token: str = Field(description="The secret token; shown once, store it now")


class TokenPage(Page[TokenOut]):
    pass


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: PlainText = Field(min_length=1, max_length=64, examples=["selftest"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"message": "hello"}])


class JobOut(_Out):
    id: uuid.UUID
    job_id: uuid.UUID = Field(description="Same as id: submit answers carry both, per the API conventions")
    kind: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    error_code: str | None = None
    error_message: str | None = None
    idempotency_key: str | None = None
    dagster_run_id: str | None = None
    next_attempt_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class JobPage(Page[JobOut]):
    pass


class JobEventOut(_Out):
    seq: int
    event: str
    from_status: str | None = None
    to_status: str | None = None
    attempt: int
    detail: dict[str, Any]
    created_at: UtcDatetime


class JobEventPage(Page[JobEventOut]):
    pass


class ArtifactOut(_Out):
    id: uuid.UUID
    kind: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    job_id: uuid.UUID | None = None
    asset_key: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    download_url: str | None = Field(default=None, description="A ready signed link (None once deleted)")
    download_url_expires_at: UtcDatetime | None = None


class ArtifactPage(Page[ArtifactOut]):
    pass


# The longest link a caller may ask for: a link is a bearer credential, so a viewer cannot mint one
# that outlives a day (the server default, KILN_DOWNLOAD_LINK_TTL_SECONDS, is set by the operator).
MAX_DOWNLOAD_LINK_SECONDS = 24 * 3600


class DownloadLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=MAX_DOWNLOAD_LINK_SECONDS, description="At most 24 hours; default: the server's setting")


class DownloadLink(BaseModel):
    url: str
    expires_at: UtcDatetime

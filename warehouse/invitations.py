"""Invitations and the memberships they make: the SQL behind ``api/routes/invitations.py``.

This module owns ``invitation.accepted_at`` / ``revoked_at`` (an invitation's status is derived from them and
``expires_at``). Lookups that run before the workspace is known go through SECURITY DEFINER functions on
PostgreSQL (migration 0005), because row-level security hides the rows from the API role until then.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warehouse.db import as_aware, is_postgres, utcnow
from warehouse.models import AppUser, Invitation, Membership

_PENDING = (Invitation.accepted_at.is_(None)) & (Invitation.revoked_at.is_(None))


def invitation_status(invitation: Invitation, now: datetime | None = None) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if as_aware(invitation.expires_at) <= (now or utcnow()) else "pending"


def pending_query(workspace_id: uuid.UUID, now: datetime) -> Select:
    """Live invitations (not accepted, revoked or expired) of a workspace: the members listing shows them."""
    return select(Invitation).where(Invitation.workspace_id == workspace_id, _PENDING, Invitation.expires_at > now)


def count_pending(session: Session, workspace_id: uuid.UUID) -> int:
    return session.scalar(select(func.count()).select_from(pending_query(workspace_id, utcnow()).subquery())) or 0


def is_member_email(session: Session, workspace_id: uuid.UUID, email: str) -> bool:
    """Whether a member of this workspace has ``email``: the members listing shows that already, so it leaks nothing
    (app_user rows of non-members stay invisible to the API role on PostgreSQL)."""
    return session.scalar(select(Membership.id).join(AppUser, AppUser.id == Membership.user_id).where(
        Membership.workspace_id == workspace_id, AppUser.email == email)) is not None


def live_pending(session: Session, workspace_id: uuid.UUID, email: str) -> Invitation | None:
    """The pending invitation of ``email``; one that lapsed is revoked here so the address can be invited again."""
    found = session.scalar(select(Invitation).where(Invitation.workspace_id == workspace_id,
                                                    Invitation.email == email, _PENDING))
    if found is not None and invitation_status(found) == "expired":
        found.revoked_at = utcnow()
        session.flush()
        return None
    return found


def add_invitation(session: Session, invitation: Invitation) -> bool:
    """Insert ``invitation``; False when the same address got a pending one meanwhile (the partial unique index)."""
    try:
        with session.begin_nested():
            session.add(invitation)
            session.flush()
    except IntegrityError:
        return False
    return True


def invitation_by_id(session: Session, workspace_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation | None:
    return session.scalar(select(Invitation).where(Invitation.workspace_id == workspace_id,
                                                   Invitation.id == invitation_id))


def revoke(session: Session, invitation: Invitation) -> bool:
    """Revoke a pending invitation; False when it already was."""
    if invitation.revoked_at is not None:
        return False
    invitation.revoked_at = utcnow()
    session.flush()
    return True


def find_by_token_hash(session: Session, token_hash: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(invitation id, workspace id) of the invitation with this token hash, before the workspace is known."""
    if is_postgres(session):  # invisible to the API role until the workspace is set (RLS)
        row = session.execute(text("SELECT id, workspace_id FROM kiln_lookup_invitation(:h)"), {"h": token_hash}).first()
    else:
        row = session.execute(select(Invitation.id, Invitation.workspace_id)
                              .where(Invitation.token_hash == token_hash)).first()
    return (uuid.UUID(str(row.id)), uuid.UUID(str(row.workspace_id))) if row else None


def claim(session: Session, workspace_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime) -> bool:
    """Mark a pending, unexpired invitation accepted; of two concurrent claims exactly one wins (PostgreSQL: the
    other waits on the row lock, then matches nothing; SQLite: the write lock serializes them)."""
    claimed = session.execute(
        update(Invitation).where(Invitation.workspace_id == workspace_id, Invitation.id == invitation_id, _PENDING,
                                 Invitation.expires_at > now)
        .values(accepted_at=now, updated_at=now).execution_options(synchronize_session=False)).rowcount
    return claimed == 1


def find_user_id(session: Session, email: str) -> uuid.UUID | None:
    if is_postgres(session):  # app_user rows of non-members are invisible to the API role (RLS)
        found = session.execute(text("SELECT kiln_lookup_user_id(:email)"), {"email": email}).scalar()
        return uuid.UUID(str(found)) if found else None
    return session.scalar(select(AppUser.id).where(AppUser.email == email))


def user_for(session: Session, email: str, display_name: str | None) -> uuid.UUID:
    """The user with ``email``: the existing one, a new one, or the one a concurrent request created a moment ago."""
    user_id = find_user_id(session, email)
    if user_id is not None:
        return user_id
    user = AppUser(email=email, display_name=display_name)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
        return user.id
    except IntegrityError:  # the email was taken between the lookup and the INSERT
        user_id = find_user_id(session, email)
        if user_id is None:
            raise
        return user_id


def add_membership(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID, role: str) -> bool:
    """Insert the membership; False when it exists already (added meanwhile by another path)."""
    try:
        with session.begin_nested():
            session.add(Membership(workspace_id=workspace_id, user_id=user_id, role=role))
            session.flush()
    except IntegrityError:
        return False
    return True

"""Members of a workspace: lookups, the members listing and the last-owner lock (owner of ``membership.role``)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from warehouse.db import is_postgres
from warehouse.models import AppUser, Membership


def member_with_user(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> tuple[Membership, AppUser] | None:
    row = session.execute(
        select(Membership, AppUser).join(AppUser, AppUser.id == Membership.user_id)
        .where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
    ).first()
    return None if row is None else (row[0], row[1])


def members_query(workspace_id: uuid.UUID) -> Select:
    """(membership, user) rows of a workspace, for the keyset-paged members listing."""
    return select(Membership, AppUser).join(AppUser, AppUser.id == Membership.user_id).where(
        Membership.workspace_id == workspace_id)


def other_owners_locked(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """How many owners besides ``user_id`` the workspace has, counted under a lock until commit.

    Count-then-act is only safe when no other request can demote or remove an owner in between:
    two owners demoting each other at once would both see "one other owner" and leave none. On
    PostgreSQL the owner rows are locked (FOR UPDATE), so a concurrent change waits for this
    transaction and then re-checks its rows. SQLite has no row locks and runs these reads outside a
    write transaction, so a no-op UPDATE takes the database write lock first; the count then sees
    every committed change and no other writer can interleave.
    """
    is_owner = (Membership.workspace_id == workspace_id) & (Membership.role == "owner")
    if is_postgres(session):
        owners = session.scalars(select(Membership.user_id).where(is_owner).with_for_update()).all()
        return sum(owner != user_id for owner in owners)
    session.execute(
        update(Membership).where(is_owner).values(role=Membership.role, updated_at=Membership.updated_at)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(select(func.count()).select_from(Membership)
                          .where(is_owner, Membership.user_id != user_id)) or 0

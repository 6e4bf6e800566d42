"""Member changes that race each other: the last-owner rule, inviting one email twice at once, accepting one
invitation twice at once, and a new user created by a concurrent acceptance.

Each race is replayed deterministically: a second transaction (as another request would) changes
the data exactly when the request is about to act, and the outcome must still keep the rules.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, event, func, select, text, update

from warehouse import invitations as invitation_store
from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import is_postgres, system_session
from warehouse.models import AppUser, Invitation, Membership

# How long a helper waits for the request to block on a row lock before giving up (then the
# request has not locked anything, and the assertions on the outcome fail).
LOCK_WAIT_LIMIT_S = 15


def _acts_on_memberships(statement: str) -> bool:
    """The first statement of a request that commits to a membership change (a lock or a write)."""
    flat = " ".join(statement.split()).upper()
    return "MEMBERSHIP" in flat and (
        "FOR UPDATE" in flat or flat.startswith(("UPDATE MEMBERSHIP", "DELETE FROM MEMBERSHIP")))


def _wait_until_blocked(engine, backend_pid: int) -> None:
    """Until the backend ``backend_pid`` waits for a lock (or LOCK_WAIT_LIMIT_S passed)."""
    waiting = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
    with engine.connect() as conn:
        for _ in range(LOCK_WAIT_LIMIT_S * 20):
            if conn.execute(waiting, {"pid": backend_pid}).scalar():
                return
            conn.execute(text("SELECT pg_sleep(0.05)"))
            conn.commit()


def _claims_an_invitation(statement: str) -> bool:
    return " ".join(statement.split()).upper().startswith("UPDATE INVITATION")


@contextmanager
def _rival_commits_as_the_request_acts(api, change: Callable[[Connection], None],
                                       acts: Callable[[str], bool] = _acts_on_memberships) -> Iterator[list[str]]:
    """Run ``change`` in another transaction that commits right as the request reaches its first
    membership lock or write; yields a list that names the point it fired at.

    PostgreSQL: the rival holds its row locks from the start and commits only once the request
    waits on one (a real block, seen in pg_locks). SQLite has a single writer lock, which the
    request needs earlier (token bookkeeping): there the whole rival transaction runs just before
    the request's first membership lock or write.
    """
    postgres = is_postgres(api.system)
    rival = api.system.connect()
    rival_tx = rival.begin()
    if postgres:
        change(rival)
    fired: list[str] = []
    helpers: list[threading.Thread] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if fired or not acts(statement):
            return
        fired.append(statement)
        if postgres:
            pid = cursor.connection.info.backend_pid
            helpers.append(threading.Thread(target=lambda: (_wait_until_blocked(api.system, pid), rival_tx.commit())))
            helpers[0].start()
        else:
            change(rival)
            rival_tx.commit()

    event.listen(api.app.state.engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        event.remove(api.app.state.engine, "before_cursor_execute", before)
        for helper in helpers:
            helper.join()
        if rival_tx.is_active:
            rival_tx.rollback()
        rival.close()


def _owners(api, workspace_id) -> set[uuid.UUID]:
    with system_session(api.system) as s:
        return set(s.scalars(select(Membership.user_id).where(Membership.workspace_id == workspace_id,
                                                               Membership.role == "owner")))


@pytest.mark.parametrize("action", ["demote", "remove"])
def test_two_owners_leaving_at_once_leave_one_owner(api, action):
    """Owner A is demoted (by another request, committing mid-way) while owner B demotes or removes
    themself: both saw two owners before acting, so only the lock keeps the workspace governable."""
    a = api.tenant("owner")
    b = api.member(a, "owner")

    def demote_a(conn: Connection) -> None:
        conn.execute(update(Membership).where(Membership.workspace_id == a.workspace_id,
                                              Membership.user_id == a.user_id).values(role="viewer"))

    with _rival_commits_as_the_request_acts(api, demote_a) as fired:
        path = f"/v1/workspace/members/{b.user_id}"
        if action == "demote":
            r = api.client.patch(path, headers=b.headers, json={"role": "admin"})
        else:
            r = api.client.delete(path, headers=b.headers)
    assert fired, "the request reached a membership lock or write"
    assert r.status_code == 409 and r.json()["code"] == "last_owner", r.text
    assert _owners(api, a.workspace_id) == {b.user_id}


def _invite(api, owner, email: str, role: str = "editor") -> dict:
    r = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_new_email_created_by_a_concurrent_request_is_reused(api, monkeypatch):
    """Two acceptances create the same new user (invitations of one address to two workspaces): the loser's
    INSERT hits the unique email and must use the winner's user instead of failing."""
    owner = api.tenant()
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    invitation = _invite(api, owner, email)
    with system_session(api.system) as s:  # the winning request's user, committed
        winner = AppUser(email=email)
        s.add(winner)
        s.flush()
        winner_id = winner.id
    real_find, calls = invitation_store.find_user_id, []

    def find_after_the_race(session, address):
        calls.append(address)
        return None if len(calls) == 1 else real_find(session, address)  # looked before the winner committed

    monkeypatch.setattr(invitation_store, "find_user_id", find_after_the_race)
    r = api.client.post("/v1/invitations/accept", json={"token": invitation["token"]})
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == str(winner_id) and len(calls) == 2
    with system_session(api.system) as s:
        assert s.scalar(select(Membership.role).where(Membership.workspace_id == owner.workspace_id,
                                                      Membership.user_id == winner_id)) == "editor"


def test_one_address_invited_twice_at_once_is_one_invitation_and_a_409(api, monkeypatch):
    owner = api.tenant()
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    _invite(api, owner, email)
    monkeypatch.setattr(invitation_store, "live_pending", lambda *args: None)  # checked before the other committed
    r = api.client.post("/v1/workspace/members", headers=owner.headers, json={"email": email})
    assert r.status_code == 409 and r.json()["code"] == "invitation_pending", r.text
    members = api.client.get("/v1/workspace/members", headers=owner.headers).json()["items"]
    assert [m["email"] for m in members].count(email) == 1
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(Invitation).where(
            Invitation.workspace_id == owner.workspace_id, Invitation.email == email)) == 1


def test_one_invitation_accepted_twice_at_once_is_one_membership(api):
    """Another acceptance of the same token commits just as this one claims the invitation: this one must
    find it used (403 invitation_invalid) and add no membership of its own (the rival's claim stands for the
    other acceptance, which makes the one membership)."""
    owner = api.tenant()
    email = f"{uuid.uuid4().hex[:10]}@example.test"
    invitation = _invite(api, owner, email)

    def claim(conn: Connection) -> None:
        conn.execute(update(Invitation).where(Invitation.id == uuid.UUID(invitation["id"]))
                     .values(accepted_at=func.now()))

    with _rival_commits_as_the_request_acts(api, claim, acts=_claims_an_invitation) as fired:
        r = api.client.post("/v1/invitations/accept", json={"token": invitation["token"]})
    assert fired, "the request reached its claim"
    assert r.status_code == 403 and r.json()["code"] == "invitation_invalid", r.text
    with system_session(api.system) as s:
        assert s.scalar(select(func.count()).select_from(Membership).join(AppUser, AppUser.id == Membership.user_id)
                        .where(Membership.workspace_id == owner.workspace_id, AppUser.email == email)) == 0
    # Sequentially: the first acceptance wins, the second is refused.
    other = _invite(api, owner, f"{uuid.uuid4().hex[:10]}@example.test")
    assert api.client.post("/v1/invitations/accept", json={"token": other["token"]}).status_code == 201
    again = api.client.post("/v1/invitations/accept", json={"token": other["token"]})
    assert again.status_code == 403 and again.json()["code"] == "invitation_invalid"

"""Provisioning a workspace, its owner and API tokens, straight in the database.

Shared by the ``kiln admin`` commands (``api/cli.py``) and the developer server (``api/devserver.py``), which
both import it, so neither imports the other.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select

from api.security import create_api_token, normalize_scopes
from warehouse.db import system_session, utcnow
from warehouse.models import AppUser, AuditLog, Membership, Workspace


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    return slug or f"ws-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class IssuedToken:
    workspace_id: uuid.UUID
    workspace_slug: str
    user_id: uuid.UUID
    email: str
    role: str
    token: str


def _user_for(session, email: str) -> AppUser:
    email = email.strip().lower()
    user = session.scalar(select(AppUser).where(AppUser.email == email))
    if user is None:
        user = AppUser(email=email)
        session.add(user)
        session.flush()
    return user


def create_workspace(engine: Engine, name: str, owner_email: str, *, secret_key: str, slug: str | None = None,
                     token_name: str = "owner token") -> IssuedToken:
    """A workspace, its owner (created if new) and one API token for the owner."""
    slug = slug or slugify(name)
    with system_session(engine) as session:
        if session.scalar(select(Workspace.id).where(Workspace.slug == slug)):
            raise ValueError(f"a workspace with slug {slug!r} already exists")
        workspace = Workspace(name=name, slug=slug)
        session.add(workspace)
        user = _user_for(session, owner_email)
        session.flush()
        session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
        session.flush()
        token, plaintext = create_api_token(session, workspace.id, user.id, token_name, ["*"], None,
                                            secret_key=secret_key)
        session.add(AuditLog(workspace_id=workspace.id, action="workspace.create", target_type="workspace",
                             target_id=str(workspace.id), detail={"owner": str(user.id), "via": "cli"}))
        session.add(AuditLog(workspace_id=workspace.id, action="token.create", target_type="api_token",
                             target_id=str(token.id), detail={"name": token_name, "via": "cli"}))
        return IssuedToken(workspace.id, slug, user.id, user.email, "owner", plaintext)


def issue_token(engine: Engine, workspace_slug: str, email: str, *, secret_key: str, role: str | None = None,
                name: str = "cli token", scopes: list[str] | None = None,
                expires_days: int | None = None) -> IssuedToken:
    """A token for ``email`` in the workspace; adds the user as a member (``role``, default viewer) if needed."""
    with system_session(engine) as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == workspace_slug))
        if workspace is None:
            raise ValueError(f"no workspace with slug {workspace_slug!r}")
        user = _user_for(session, email)
        membership = session.scalar(select(Membership).where(Membership.workspace_id == workspace.id,
                                                             Membership.user_id == user.id))
        if membership is None:
            membership = Membership(workspace_id=workspace.id, user_id=user.id, role=role or "viewer")
            session.add(membership)
            session.flush()
            session.add(AuditLog(workspace_id=workspace.id, action="member.add", target_type="user",
                                 target_id=str(user.id), detail={"role": membership.role, "via": "cli"}))
        elif role and role != membership.role:
            membership.role = role
            session.add(AuditLog(workspace_id=workspace.id, action="member.role_change", target_type="user",
                                 target_id=str(user.id), detail={"role": role, "via": "cli"}))
        expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
        token, plaintext = create_api_token(session, workspace.id, user.id, name, normalize_scopes(scopes),
                                            expires_at, secret_key=secret_key)
        session.add(AuditLog(workspace_id=workspace.id, action="token.create", target_type="api_token",
                             target_id=str(token.id), detail={"name": name, "via": "cli"}))
        return IssuedToken(workspace.id, workspace.slug, user.id, user.email, membership.role, plaintext)

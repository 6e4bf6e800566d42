"""SQL of the LinkedIn product: accounts (owner of ``linkedin_account.status``), OAuth states, personas,
config packs and their channels, and the product's audit entries.

Drafts, schedules and post attempts (and their status columns) live in ``warehouse/linkedin_posting.py``.
Every function takes the caller's session; the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warehouse.db import is_postgres, utcnow
from warehouse.linkedin_models import (
    ConfigPack,
    ConfigPackChannel,
    ConfigPackChannelHistory,
    ConfigPackVersion,
    LinkedInAccount,
    OAuthState,
    Persona,
    PersonaVersion,
    Schedule,
)
from warehouse.models import AuditLog


@dataclass(frozen=True)
class SealedToken:
    """One envelope-encrypted token as its columns (see resources/linkedin_tokens.py)."""

    provider: str
    key_id: str
    wrapped_key: bytes
    ciphertext: bytes  # nonce || AES-GCM output


def audit_event(session: Session, workspace_id: uuid.UUID, action: str, target_type: str, target_id: Any,
                *, actor_user_id: uuid.UUID | None = None, request_id: str | None = None, **detail: Any) -> None:
    """An audit row written by the worker side (the API uses api.deps.audit). Never put a token in ``detail``."""
    session.add(AuditLog(workspace_id=workspace_id, actor_user_id=actor_user_id, action=action,
                         target_type=target_type, target_id=str(target_id) if target_id else None,
                         request_id=request_id, detail=detail))


# -- OAuth states ---------------------------------------------------------------------------------------------
def create_oauth_state(session: Session, *, workspace_id: uuid.UUID, user_id: uuid.UUID, state_hash: str,
                       redirect_uri: str, expires_at: datetime) -> OAuthState:
    row = OAuthState(workspace_id=workspace_id, user_id=user_id, state_hash=state_hash,
                     redirect_uri=redirect_uri, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


def find_oauth_state(session: Session, state_hash: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """``(id, workspace_id)`` of a state, before the workspace is known (PostgreSQL: SECURITY DEFINER lookup)."""
    if is_postgres(session):
        row = session.execute(text("SELECT id, workspace_id FROM kiln_lookup_oauth_state(:h)"), {"h": state_hash}).first()
    else:
        row = session.execute(select(OAuthState.id, OAuthState.workspace_id)
                              .where(OAuthState.state_hash == state_hash)).first()
    return (uuid.UUID(str(row.id)), uuid.UUID(str(row.workspace_id))) if row else None


def consume_oauth_state(session: Session, workspace_id: uuid.UUID, state_id: uuid.UUID, *,
                        now: datetime) -> OAuthState | None:
    """Single use: the one caller whose conditional update matched gets the row; a used or expired state gets None."""
    result = session.execute(
        update(OAuthState)
        .where(OAuthState.id == state_id, OAuthState.workspace_id == workspace_id,
               OAuthState.used_at.is_(None), OAuthState.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return session.get(OAuthState, state_id)


# -- accounts (owner of linkedin_account.status) -------------------------------------------------------------
def account_of(session: Session, workspace_id: uuid.UUID, account_id: uuid.UUID) -> LinkedInAccount | None:
    return session.scalar(select(LinkedInAccount).where(LinkedInAccount.workspace_id == workspace_id,
                                                        LinkedInAccount.id == account_id))


def list_accounts(session: Session, workspace_id: uuid.UUID) -> list[LinkedInAccount]:
    return list(session.scalars(
        select(LinkedInAccount)
        .where(LinkedInAccount.workspace_id == workspace_id, LinkedInAccount.status != "disconnected")
        .order_by(LinkedInAccount.created_at, LinkedInAccount.id)))


def apply_sealed(account: LinkedInAccount, prefix: str, token: SealedToken) -> None:
    """Set one token's columns (``prefix`` is ``access_token`` or ``refresh_token``)."""
    account.key_provider = token.provider
    setattr(account, f"{prefix}_ciphertext", token.ciphertext)
    setattr(account, f"{prefix}_wrapped_key", token.wrapped_key)
    setattr(account, f"{prefix}_key_id", token.key_id)


def sealed(account: LinkedInAccount, prefix: str) -> SealedToken | None:
    ciphertext = getattr(account, f"{prefix}_ciphertext")
    if ciphertext is None:
        return None
    return SealedToken(account.key_provider or "", getattr(account, f"{prefix}_key_id") or "",
                       getattr(account, f"{prefix}_wrapped_key") or b"", ciphertext)


def upsert_account(session: Session, *, workspace_id: uuid.UUID, member_urn: str, name: str | None,
                   picture_url: str | None, connected_by: uuid.UUID | None) -> tuple[LinkedInAccount, bool]:
    """The member's row in this workspace (created, or found for a reconnect). Tokens are set separately,
    because their associated data binds them to the account id."""
    query = select(LinkedInAccount).where(LinkedInAccount.workspace_id == workspace_id,
                                          LinkedInAccount.member_urn == member_urn)
    account = session.scalar(query.with_for_update())
    created = False
    if account is None:
        account = LinkedInAccount(id=uuid.uuid4(), workspace_id=workspace_id, member_urn=member_urn,
                                  status="disconnected", scopes=[])
        try:
            with session.begin_nested():
                session.add(account)
                session.flush()
            created = True
        except IntegrityError:  # a concurrent connect of the same member made the row: update that one
            account = session.scalar(query.with_for_update())
            if account is None:
                raise
    account.name, account.picture_url, account.connected_by = name, picture_url, connected_by
    return account, created


def store_tokens(session: Session, account: LinkedInAccount, *, access: SealedToken, access_expires_at: datetime,
                 refresh: SealedToken | None, refresh_expires_at: datetime | None, scopes: list[str],
                 now: datetime) -> None:
    """Connected with fresh tokens. ``refresh=None`` keeps the stored refresh token: LinkedIn omits it
    on a reconnect for many apps, and an empty answer must never wipe a working one."""
    apply_sealed(account, "access_token", access)
    account.access_token_expires_at = access_expires_at
    if refresh is not None:
        apply_sealed(account, "refresh_token", refresh)
        account.refresh_token_expires_at = refresh_expires_at
    account.scopes = sorted(scopes)
    account.status = "connected"
    account.connected_at = now
    account.cooldown_until = None
    session.flush()


def accounts_with_tokens(session: Session, *, after: uuid.UUID | None, limit: int) -> list[LinkedInAccount]:
    """Accounts holding token ciphertexts, by id (key rotation walks them in batches; system session)."""
    query = select(LinkedInAccount).where(LinkedInAccount.access_token_ciphertext.is_not(None))
    if after is not None:
        query = query.where(LinkedInAccount.id > after)
    return list(session.scalars(query.order_by(LinkedInAccount.id).limit(limit)))


def disconnect_account(session: Session, account: LinkedInAccount) -> int:
    """Tokens destroyed (columns cleared) and the account's waiting schedules paused; returns how many."""
    for prefix in ("access_token", "refresh_token"):
        for suffix in ("ciphertext", "wrapped_key", "key_id", "expires_at"):
            setattr(account, f"{prefix}_{suffix}", None)
    account.status = "disconnected"
    paused = session.execute(
        update(Schedule)
        .where(Schedule.workspace_id == account.workspace_id, Schedule.account_id == account.id,
               Schedule.status.in_(("scheduled", "blocked_reauth")))
        .values(status="paused", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.flush()
    return paused


def resume_after_reconnect(session: Session, account: LinkedInAccount, *, now: datetime,
                           grace_seconds: int) -> int:
    """Schedules that waited for re-authorization go out again if their time is within the grace window;
    older ones stay ``blocked_reauth`` for a person to reschedule. Returns how many resumed."""
    return session.execute(
        update(Schedule)
        .where(Schedule.workspace_id == account.workspace_id, Schedule.account_id == account.id,
               Schedule.status == "blocked_reauth",
               Schedule.publish_at >= now - timedelta(seconds=grace_seconds))
        .values(status="scheduled", next_attempt_at=now, updated_at=now, error_code=None, error_message=None)
        .execution_options(synchronize_session=False)).rowcount


def mark_needs_reauth(session: Session, workspace_id: uuid.UUID, account_id: uuid.UUID) -> bool:
    result = session.execute(
        update(LinkedInAccount)
        .where(LinkedInAccount.workspace_id == workspace_id, LinkedInAccount.id == account_id,
               LinkedInAccount.status == "connected")
        .values(status="needs_reauth", updated_at=utcnow())
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def accounts_expiring(session: Session, before: datetime, limit: int = 500) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """``(workspace_id, id)`` of connected accounts whose access token expires before ``before`` (system session)."""
    rows = session.execute(select(LinkedInAccount.workspace_id, LinkedInAccount.id)
                           .where(LinkedInAccount.status == "connected",
                                  LinkedInAccount.access_token_expires_at < before)
                           .order_by(LinkedInAccount.access_token_expires_at).limit(limit)).all()
    return [(row.workspace_id, row.id) for row in rows]


def set_cooldown(session: Session, workspace_id: uuid.UUID, account_id: uuid.UUID, until: datetime) -> None:
    session.execute(update(LinkedInAccount)
                    .where(LinkedInAccount.workspace_id == workspace_id, LinkedInAccount.id == account_id)
                    .values(cooldown_until=until).execution_options(synchronize_session=False))


def replace_access_token(session: Session, account: LinkedInAccount, access: SealedToken, expires_at: datetime) -> None:
    apply_sealed(account, "access_token", access)
    account.access_token_expires_at = expires_at
    session.flush()


# -- personas -------------------------------------------------------------------------------------------------
def create_persona(session: Session, *, workspace_id: uuid.UUID, name: str, content: dict[str, Any],
                   created_by: uuid.UUID | None) -> tuple[Persona, PersonaVersion]:
    persona = Persona(id=uuid.uuid4(), workspace_id=workspace_id, name=name, latest_version=1, created_by=created_by)
    session.add(persona)
    session.flush()
    version = PersonaVersion(workspace_id=workspace_id, persona_id=persona.id, version=1, content=content,
                             created_by=created_by)
    session.add(version)
    session.flush()
    return persona, version


def add_persona_version(session: Session, persona: Persona, *, name: str | None, content: dict[str, Any],
                        created_by: uuid.UUID | None) -> PersonaVersion:
    """An edit is a new immutable version; the unique (persona_id, version) settles concurrent edits."""
    number = persona.latest_version + 1
    version = PersonaVersion(workspace_id=persona.workspace_id, persona_id=persona.id, version=number,
                             content=content, created_by=created_by)
    session.add(version)
    persona.latest_version = number
    if name:
        persona.name = name
    session.flush()
    return version


def persona_of(session: Session, workspace_id: uuid.UUID, persona_id: uuid.UUID) -> Persona | None:
    return session.scalar(select(Persona).where(Persona.workspace_id == workspace_id, Persona.id == persona_id))


def persona_version(session: Session, workspace_id: uuid.UUID, persona_id: uuid.UUID,
                    version: int | None = None) -> PersonaVersion | None:
    query = select(PersonaVersion).where(PersonaVersion.workspace_id == workspace_id,
                                         PersonaVersion.persona_id == persona_id)
    query = query.where(PersonaVersion.version == version) if version else query.order_by(PersonaVersion.version.desc())
    return session.scalar(query.limit(1))


def latest_persona_versions(session: Session, workspace_id: uuid.UUID,
                            personas: list[Persona]) -> dict[uuid.UUID, PersonaVersion]:
    """Persona id -> its latest version, in one query for a page of personas."""
    if not personas:
        return {}
    keys = [(p.id, p.latest_version) for p in personas]
    rows = session.scalars(select(PersonaVersion).where(PersonaVersion.workspace_id == workspace_id,
                                                        tuple_(PersonaVersion.persona_id, PersonaVersion.version).in_(keys)))
    return {row.persona_id: row for row in rows}


def persona_version_by_id(session: Session, workspace_id: uuid.UUID, version_id: uuid.UUID) -> PersonaVersion | None:
    return session.scalar(select(PersonaVersion).where(PersonaVersion.workspace_id == workspace_id,
                                                       PersonaVersion.id == version_id))


def personas_query(workspace_id: uuid.UUID):
    return select(Persona).where(Persona.workspace_id == workspace_id)


# -- config packs ---------------------------------------------------------------------------------------------
def pack_by_name(session: Session, workspace_id: uuid.UUID, name: str) -> ConfigPack | None:
    return session.scalar(select(ConfigPack).where(ConfigPack.workspace_id == workspace_id, ConfigPack.name == name))


def publish_pack_version(session: Session, *, workspace_id: uuid.UUID, name: str, content: dict[str, Any],
                         sha256: str, schema_version: int, git_commit: str | None, author: str | None,
                         created_by: uuid.UUID | None) -> tuple[ConfigPack, ConfigPackVersion, bool]:
    """Store an immutable version (the same content again is the existing version, ``created`` False)."""
    pack = pack_by_name(session, workspace_id, name)
    if pack is None:
        pack = ConfigPack(id=uuid.uuid4(), workspace_id=workspace_id, name=name, latest_version=0)
        try:
            with session.begin_nested():
                session.add(pack)
                session.flush()
        except IntegrityError:
            pack = pack_by_name(session, workspace_id, name)
            if pack is None:
                raise
    existing = session.scalar(select(ConfigPackVersion).where(ConfigPackVersion.pack_id == pack.id,
                                                              ConfigPackVersion.content_sha256 == sha256))
    if existing is not None:
        return pack, existing, False
    pack.latest_version += 1
    version = ConfigPackVersion(workspace_id=workspace_id, pack_id=pack.id, version=pack.latest_version,
                                content=content, content_sha256=sha256, schema_version=schema_version,
                                git_commit=git_commit, author=author, created_by=created_by)
    session.add(version)
    session.flush()
    return pack, version, True


def pack_version(session: Session, pack: ConfigPack, number: int) -> ConfigPackVersion | None:
    return session.scalar(select(ConfigPackVersion).where(ConfigPackVersion.pack_id == pack.id,
                                                          ConfigPackVersion.version == number))


def pack_version_by_id(session: Session, workspace_id: uuid.UUID, version_id: uuid.UUID) -> ConfigPackVersion | None:
    return session.scalar(select(ConfigPackVersion).where(ConfigPackVersion.workspace_id == workspace_id,
                                                          ConfigPackVersion.id == version_id))


def pack_versions(session: Session, pack: ConfigPack) -> list[ConfigPackVersion]:
    return list(session.scalars(select(ConfigPackVersion).where(ConfigPackVersion.pack_id == pack.id)
                                .order_by(ConfigPackVersion.version)))


def channels_of(session: Session, pack: ConfigPack) -> list[ConfigPackChannel]:
    return list(session.scalars(select(ConfigPackChannel).where(ConfigPackChannel.pack_id == pack.id)
                                .order_by(ConfigPackChannel.channel)))


def channel_of(session: Session, pack: ConfigPack, channel: str) -> ConfigPackChannel | None:
    return session.scalar(select(ConfigPackChannel).where(ConfigPackChannel.pack_id == pack.id,
                                                          ConfigPackChannel.channel == channel))


def point_channel(session: Session, pack: ConfigPack, channel: str, version: ConfigPackVersion, *, action: str,
                  actor_id: uuid.UUID | None) -> uuid.UUID | None:
    """Point ``channel`` at ``version`` and keep the move in the history; returns the previous version id."""
    row = session.scalar(select(ConfigPackChannel).where(ConfigPackChannel.pack_id == pack.id,
                                                         ConfigPackChannel.channel == channel).with_for_update())
    previous = row.version_id if row else None
    if row is None:
        session.add(ConfigPackChannel(workspace_id=pack.workspace_id, pack_id=pack.id, channel=channel,
                                      version_id=version.id, updated_by=actor_id))
    else:
        row.version_id, row.updated_by, row.updated_at = version.id, actor_id, utcnow()
    session.add(ConfigPackChannelHistory(workspace_id=pack.workspace_id, pack_id=pack.id, channel=channel,
                                         from_version_id=previous, to_version_id=version.id, action=action,
                                         actor_id=actor_id))
    session.flush()
    return previous


def channel_history(session: Session, pack: ConfigPack, channel: str) -> list[ConfigPackChannelHistory]:
    return list(session.scalars(select(ConfigPackChannelHistory)
                                .where(ConfigPackChannelHistory.pack_id == pack.id,
                                       ConfigPackChannelHistory.channel == channel)
                                .order_by(ConfigPackChannelHistory.created_at, ConfigPackChannelHistory.id)))


def channel_pack_version(session: Session, workspace_id: uuid.UUID, pack_name: str,
                         channel: str) -> ConfigPackVersion | None:
    pack = pack_by_name(session, workspace_id, pack_name)
    row = channel_of(session, pack, channel) if pack else None
    return pack_version_by_id(session, workspace_id, row.version_id) if row else None

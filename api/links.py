"""The one place that mints signed download links, and the check of a link's issuer when it is used.

A link is an artifact read. Every ``*_url`` field of every response, and ``POST
/v1/artifacts/{id}/download-link``, gets its link from ``LinkMinter`` (the ``Links`` dependency),
which knows the caller: a token without ``artifacts:read`` gets ``null`` in every ``*_url`` field
and the response says why in the header ``Kiln-Links-Withheld: artifacts:read``. Nothing else in
the API calls ``api.signing.sign_download``, so a new route cannot forget the check
(``tests/platform/test_api_link_scopes.py`` walks the OpenAPI schema to prove it for every ``*_url``).

Each link carries the id of the token that minted it (inside the HMAC), and never outlives that
token's own expiry. ``check_issuer`` runs at download time: one lookup by primary key of the
token joined to its membership (unique ``(workspace_id, user_id)``), so a revoked or expired
token, a removed member or a role/scope that no longer reads artifacts ends the link
(403 ``link_revoked``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import CurrentPrincipal, SettingsDep
from api.problems import ApiProblem
from api.schemas import DownloadLink
from api.security import ROLE_RANK, WILDCARD_SCOPE, Principal, as_aware
from api.signing import DownloadGrant, sign_download
from resources.settings import Settings
from warehouse.db import utcnow
from warehouse.models import ApiToken, Artifact, Membership

LINK_SCOPE = "artifacts:read"
LINK_ROLE = "viewer"  # every role reads artifacts today; explicit, so a downgrade below it would end links
WITHHELD_HEADER = "Kiln-Links-Withheld"


class LinkRevoked(Exception):
    code = "link_revoked"


def may_read_artifacts(role: str | None, scopes: list[str] | frozenset[str]) -> bool:
    return (role is not None and role in ROLE_RANK and ROLE_RANK[role] >= ROLE_RANK[LINK_ROLE]
            and (WILDCARD_SCOPE in scopes or LINK_SCOPE in scopes))


@dataclass(frozen=True)
class LinkMinter:
    settings: Settings
    principal: Principal

    @property
    def allowed(self) -> bool:
        return may_read_artifacts(self.principal.role, self.principal.scopes)

    @property
    def headers(self) -> dict[str, str]:
        """For routes that build their own JSONResponse (the dependency's header would be dropped)."""
        return {} if self.allowed else {WITHHELD_HEADER: LINK_SCOPE}

    def link(self, artifact: Artifact, ttl_seconds: int | None = None) -> DownloadLink:
        if not self.allowed:
            raise ApiProblem(403, "insufficient_scope", f"This token lacks the {LINK_SCOPE!r} scope.")
        expires_at = utcnow() + timedelta(seconds=ttl_seconds or self.settings.download_link_ttl_seconds)
        if self.principal.expires_at is not None:  # a link never outlives the token that minted it
            expires_at = min(expires_at, self.principal.expires_at)
        token = sign_download(self.settings.secret_key.get_secret_value(), artifact.id, artifact.workspace_id,
                              self.principal.token_id, expires_at)
        # Rounded down to the second the signature covers.
        expires_at = expires_at.replace(microsecond=0)
        return DownloadLink(url=f"{self.settings.api_base_url.rstrip('/')}/v1/downloads/{token}", expires_at=expires_at)

    def url(self, artifact: Artifact | None) -> str | None:
        """A link for a ``*_url`` field: None without ``artifacts:read``, or while the file is missing or deleted."""
        if not self.allowed or artifact is None or artifact.status != "available":
            return None
        return self.link(artifact).url


def _links(principal: CurrentPrincipal, settings: SettingsDep, response: Response) -> LinkMinter:
    minter = LinkMinter(settings, principal)
    response.headers.update(minter.headers)
    return minter


Links = Annotated[LinkMinter, Depends(_links)]


def check_issuer(session: Session, grant: DownloadGrant, *, now: datetime | None = None) -> None:
    """Raise LinkRevoked unless the link's token is live and its member may still read artifacts.

    ``session`` is scoped to the grant's workspace; the token and its membership come in one query.
    """
    row = session.execute(
        select(ApiToken.revoked_at, ApiToken.expires_at, ApiToken.scopes, Membership.role)
        .join(Membership, (Membership.workspace_id == ApiToken.workspace_id) & (Membership.user_id == ApiToken.user_id))
        .where(ApiToken.workspace_id == grant.workspace_id, ApiToken.id == grant.token_id)
    ).first()
    if row is None or row.revoked_at is not None:
        raise LinkRevoked("token revoked or member removed")
    expires_at = as_aware(row.expires_at)
    if expires_at is not None and expires_at <= (now or utcnow()):
        raise LinkRevoked("token expired")
    scopes = json.loads(row.scopes) if isinstance(row.scopes, str) else list(row.scopes or [])
    if not may_read_artifacts(row.role, scopes):
        raise LinkRevoked("the member can no longer read artifacts")

"""LinkedIn's boundary objects built from settings: the HTTP client, the token cipher, sealing tokens.

Shared by the API (connect/callback) and the posting assets. A token is sealed with associated data
``(workspace, account, purpose)`` so its ciphertext decrypts only on its own row and for its own use.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr

from resources.linkedin_client import LinkedInClient, LinkedInClientConfig
from resources.secrets_envelope import AssociatedData, AwsKmsKeyProvider, Envelope, EnvelopeCipher, LocalKeyring
from resources.settings import Settings
from warehouse.linkedin import SealedToken, apply_sealed
from warehouse.linkedin import sealed as sealed_of

ACCESS, REFRESH = "linkedin.access_token", "linkedin.refresh_token"
NONCE_BYTES = 12


def client_config(settings: Settings) -> LinkedInClientConfig:
    return LinkedInClientConfig(
        client_id=settings.linkedin_client_id, client_secret=settings.linkedin_client_secret,
        redirect_uri=settings.linkedin_redirect_uri, api_version=settings.linkedin_api_version,
        auth_base_url=settings.linkedin_auth_base_url, api_base_url=settings.linkedin_api_base_url,
        scopes=tuple(settings.linkedin_scopes), connect_timeout_s=settings.linkedin_connect_timeout_seconds,
        read_timeout_s=settings.linkedin_read_timeout_seconds, write_timeout_s=settings.linkedin_read_timeout_seconds)


def build_client(settings: Settings) -> LinkedInClient:
    return LinkedInClient(client_config(settings))


@lru_cache(maxsize=8)
def _local_cipher(path: Path) -> EnvelopeCipher:
    path.parent.mkdir(parents=True, exist_ok=True)
    return EnvelopeCipher(LocalKeyring(path))


def build_cipher(settings: Settings) -> EnvelopeCipher:
    if settings.key_provider == "aws-kms":
        if not settings.kms_key_id:
            raise ValueError("KILN_KEY_PROVIDER=aws-kms needs KILN_KMS_KEY_ID")
        return EnvelopeCipher(AwsKmsKeyProvider(settings.kms_key_id, endpoint_url=settings.kms_endpoint_url))
    return _local_cipher(settings.resolved_keyring_path.resolve())


def fresh_cipher(settings: Settings) -> EnvelopeCipher:
    """A cipher that reads the key provider now (``kiln admin rotate-keys``), not the process's cached one."""
    _local_cipher.cache_clear()
    return build_cipher(settings)


def associated(workspace_id: uuid.UUID, account_id: uuid.UUID, purpose: str) -> AssociatedData:
    return AssociatedData(str(workspace_id), str(account_id), purpose)


def seal(cipher: EnvelopeCipher, secret: SecretStr, ad: AssociatedData) -> SealedToken:
    return _as_sealed(cipher.encrypt(secret, ad))


def unseal(cipher: EnvelopeCipher, token: SealedToken, ad: AssociatedData) -> SecretStr:
    return cipher.decrypt(_as_envelope(token), ad)


def _as_envelope(token: SealedToken) -> Envelope:
    return Envelope(token.provider, token.key_id, token.wrapped_key, token.ciphertext[:NONCE_BYTES],
                    token.ciphertext[NONCE_BYTES:])


def _as_sealed(envelope: Envelope) -> SealedToken:
    return SealedToken(envelope.provider, envelope.key_id, envelope.wrapped_key, envelope.nonce + envelope.ciphertext)


def rewrap_account(cipher: EnvelopeCipher, account, purposes=((ACCESS, "access_token"), (REFRESH, "refresh_token"))) -> int:
    """Re-wrap an account's data keys under the newest key; the tokens are never decrypted. Returns how many."""
    changed = 0
    for purpose, prefix in purposes:
        token = sealed_of(account, prefix)
        if token is None or not cipher.needs_rewrap(_as_envelope(token)):
            continue
        moved = _as_sealed(cipher.rewrap(_as_envelope(token), associated(account.workspace_id, account.id, purpose)))
        apply_sealed(account, prefix, moved)
        changed += 1
    return changed

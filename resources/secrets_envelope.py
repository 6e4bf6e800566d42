"""Envelope encryption of secrets at rest (LinkedIn tokens first), AES-256-GCM from ``cryptography``.

Each secret gets a fresh 256-bit data key; the data key encrypts the secret (AES-GCM, random 96-bit
nonce) and is itself wrapped by a key-encryption key (KEK) held by a ``KeyProvider``:

* ``LocalKeyring``: the embedded default, a JSON keyring file (created 0600; refused when group/world
  readable) with key ids; the newest key wraps; ``rotate()`` adds a key; old keys stay for reading.
* ``AwsKmsKeyProvider``: AWS KMS ``GenerateDataKey``/``Decrypt``/``ReEncrypt`` with the associated data as
  the ``EncryptionContext`` (KMS refuses a wrong context).

Associated data (workspace, account, purpose) is authenticated by both the secret's and the wrapped
key's GCM tags, so a ciphertext copied onto another row does not decrypt. ``rewrap`` moves an envelope
to the newest key without returning the plaintext to the caller. Decrypted values come back as
``pydantic.SecretStr`` so neither ``repr`` nor a log line shows them.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

NONCE_BYTES = 12
KEY_BYTES = 32
ENVELOPE_VERSION = 1


class SecretsError(Exception):
    """Base of the typed errors; messages never carry key material or plaintext."""

    code = "secrets_error"


class DecryptionFailed(SecretsError):
    code = "secret_decryption_failed"

    def __init__(self) -> None:
        super().__init__("The secret could not be decrypted (wrong row, tampered data or an unknown key).")


class UnknownKey(SecretsError):
    code = "secret_key_unknown"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"Key {key_id!s} is not in the key provider.")
        self.key_id = key_id


class KeyringInsecure(SecretsError):
    code = "keyring_insecure"


class KeyProviderUnavailable(SecretsError):
    code = "key_provider_unavailable"


@dataclass(frozen=True)
class AssociatedData:
    """What a ciphertext is bound to. All three must match to decrypt."""

    workspace_id: str
    account_id: str
    purpose: str  # e.g. "linkedin.access_token", "linkedin.refresh_token"

    def context(self) -> dict[str, str]:
        return {"kiln:workspace": str(self.workspace_id), "kiln:account": str(self.account_id), "kiln:purpose": self.purpose}

    def to_bytes(self) -> bytes:
        return json.dumps(self.context(), sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    """What is stored: no plaintext, no unwrapped key. ``key_id`` names the KEK that wrapped the data key."""

    provider: str
    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    version: int = ENVELOPE_VERSION

    def to_json(self) -> str:
        b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
        return json.dumps(
            {"v": self.version, "provider": self.provider, "key_id": self.key_id, "wrapped_key": b64(self.wrapped_key),
             "nonce": b64(self.nonce), "ciphertext": b64(self.ciphertext)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str) -> Envelope:
        try:
            data = json.loads(raw)
            return cls(
                provider=str(data["provider"]), key_id=str(data["key_id"]),
                wrapped_key=base64.b64decode(data["wrapped_key"], validate=True),
                nonce=base64.b64decode(data["nonce"], validate=True),
                ciphertext=base64.b64decode(data["ciphertext"], validate=True), version=int(data["v"]),
            )
        except (ValueError, KeyError, TypeError):
            raise DecryptionFailed() from None

    def __repr__(self) -> str:  # short: ciphertexts are not secret, but they are noise in logs
        return f"Envelope(provider={self.provider!r}, key_id={self.key_id!r})"


@dataclass(frozen=True)
class DataKey:
    key_id: str
    plaintext: bytes
    wrapped: bytes

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, plaintext=<redacted>)"


class KeyProvider(Protocol):
    name: str

    def newest_key_id(self) -> str: ...
    def generate_data_key(self, ad: AssociatedData) -> DataKey: ...
    def decrypt_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> bytes: ...
    def rewrap_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> tuple[str, bytes]: ...


class LocalKeyring:
    """KEKs in a local JSON file. Wrapping is AES-256-GCM with the associated data and the key id bound."""

    name = "local"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._order: list[str] = []
        if not self.path.exists():
            self._create()
        self._load()

    # -- file handling -------------------------------------------------------------------------
    @staticmethod
    def _new_entry() -> dict[str, str]:
        now = datetime.now(UTC)
        return {
            "id": f"k-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}",
            "created_at": now.isoformat(),
            "material": base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii"),
        }

    @staticmethod
    def _write_file(target: Path, doc: dict[str, Any]) -> None:
        # Mode 0600 at creation (no window where the file is readable by others), whatever the umask.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def _replace(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        self._write_file(tmp, doc)
        os.replace(tmp, self.path)

    def _create(self) -> None:
        # Written in full under a temporary name, then linked into place: another process never reads a
        # half-written keyring, and if two create at once, the first link wins and the other uses it.
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._write_file(tmp, {"version": 1, "keys": [self._new_entry()]})
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def _load(self) -> None:
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyringInsecure(f"The keyring {self.path} is readable by others (mode {mode:o}); chmod 600 it.")
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            entries = doc["keys"]
            keys = {str(e["id"]): base64.b64decode(e["material"], validate=True) for e in entries}
        except (ValueError, KeyError, TypeError):
            raise KeyringInsecure(f"The keyring {self.path} is not a valid keyring file.") from None
        if not keys or any(len(k) != KEY_BYTES for k in keys.values()):
            raise KeyringInsecure(f"The keyring {self.path} has no usable 256-bit key.")
        self._keys, self._order = keys, [str(e["id"]) for e in entries]

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise rotations across processes: a lost key would make its secrets unreadable forever."""
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def rotate(self) -> str:
        """Add a new newest key (used for wrapping from now on); older keys stay for reading."""
        with self._lock, self._file_lock():
            self._load()
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            entry = self._new_entry()
            doc["keys"].append(entry)
            self._replace(doc)
            self._load()
            return entry["id"]

    def key_ids(self) -> list[str]:
        return list(self._order)

    # -- KeyProvider ---------------------------------------------------------------------------
    def newest_key_id(self) -> str:
        return self._order[-1]

    def _kek(self, key_id: str) -> bytes:
        if key_id not in self._keys:
            with self._lock:
                self._load()  # another process may have rotated
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKey(key_id) from None

    @staticmethod
    def _wrap_ad(key_id: str, ad: AssociatedData) -> bytes:
        return key_id.encode("utf-8") + b"\x00" + ad.to_bytes()

    def _wrap(self, key_id: str, data_key: bytes, ad: AssociatedData) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._kek(key_id)).encrypt(nonce, data_key, self._wrap_ad(key_id, ad))

    def generate_data_key(self, ad: AssociatedData) -> DataKey:
        key_id = self.newest_key_id()
        data_key = AESGCM.generate_key(bit_length=256)
        return DataKey(key_id, data_key, self._wrap(key_id, data_key, ad))

    def decrypt_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> bytes:
        kek = self._kek(key_id)
        try:
            return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], self._wrap_ad(key_id, ad))
        except (InvalidTag, ValueError):
            raise DecryptionFailed() from None

    def rewrap_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> tuple[str, bytes]:
        newest = self.newest_key_id()
        return newest, self._wrap(newest, self.decrypt_data_key(key_id, wrapped, ad), ad)


class AwsKmsKeyProvider:
    """KEKs in AWS KMS. ``key_id`` (an id, ARN or alias) wraps new keys; rotate by configuring a new one.

    ``rewrap_data_key`` uses KMS ``ReEncrypt``: the data key is re-wrapped inside KMS and never leaves it.
    """

    name = "aws-kms"

    def __init__(self, key_id: str, *, client: Any = None, region_name: str | None = None,
                 endpoint_url: str | None = None) -> None:
        if client is None:
            import boto3  # imported here: the embedded mode never needs it

            client = boto3.client("kms", region_name=region_name, endpoint_url=endpoint_url)
        self.key_id = key_id
        self._kms = client

    def newest_key_id(self) -> str:
        return self.key_id

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._kms, method)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"}:
                raise DecryptionFailed() from None
            if code == "NotFoundException":
                raise UnknownKey(str(kwargs.get("KeyId") or kwargs.get("DestinationKeyId") or "")) from None
            raise KeyProviderUnavailable(f"KMS {method} failed ({code or 'error'}).") from None
        except BotoCoreError as exc:
            raise KeyProviderUnavailable(f"KMS {method} failed ({type(exc).__name__}).") from None

    def generate_data_key(self, ad: AssociatedData) -> DataKey:
        out = self._call("generate_data_key", KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=ad.context())
        return DataKey(str(out["KeyId"]), bytes(out["Plaintext"]), bytes(out["CiphertextBlob"]))

    def decrypt_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> bytes:
        out = self._call("decrypt", CiphertextBlob=wrapped, KeyId=key_id, EncryptionContext=ad.context())
        return bytes(out["Plaintext"])

    def rewrap_data_key(self, key_id: str, wrapped: bytes, ad: AssociatedData) -> tuple[str, bytes]:
        out = self._call(
            "re_encrypt", CiphertextBlob=wrapped, SourceKeyId=key_id, SourceEncryptionContext=ad.context(),
            DestinationKeyId=self.key_id, DestinationEncryptionContext=ad.context(),
        )
        return str(out["KeyId"]), bytes(out["CiphertextBlob"])


class EnvelopeCipher:
    """Encrypts, decrypts and re-wraps secrets through one KeyProvider."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    def encrypt(self, secret: str | SecretStr, ad: AssociatedData) -> Envelope:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        data_key = self.provider.generate_data_key(ad)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key.plaintext).encrypt(nonce, value.encode("utf-8"), ad.to_bytes())
        return Envelope(self.provider.name, data_key.key_id, data_key.wrapped, nonce, ciphertext)

    def decrypt(self, envelope: Envelope, ad: AssociatedData) -> SecretStr:
        self._check_provider(envelope)
        data_key = self.provider.decrypt_data_key(envelope.key_id, envelope.wrapped_key, ad)
        try:
            plaintext = AESGCM(data_key).decrypt(envelope.nonce, envelope.ciphertext, ad.to_bytes())
        except (InvalidTag, ValueError):
            raise DecryptionFailed() from None
        return SecretStr(plaintext.decode("utf-8"))

    def needs_rewrap(self, envelope: Envelope) -> bool:
        return envelope.provider != self.provider.name or envelope.key_id != self.provider.newest_key_id()

    def rewrap(self, envelope: Envelope, ad: AssociatedData) -> Envelope:
        """The same ciphertext with its data key wrapped under the newest KEK. The secret is never returned."""
        self._check_provider(envelope)
        key_id, wrapped = self.provider.rewrap_data_key(envelope.key_id, envelope.wrapped_key, ad)
        return Envelope(self.provider.name, key_id, wrapped, envelope.nonce, envelope.ciphertext)

    def _check_provider(self, envelope: Envelope) -> None:
        if envelope.version != ENVELOPE_VERSION or envelope.provider != self.provider.name:
            raise DecryptionFailed()

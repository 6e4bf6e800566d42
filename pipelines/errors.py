"""Typed errors shared by the domain code, the assets, the sensors and the API.

Each error carries a stable ``code`` that clients can switch on, a message a user can act on,
and whether retrying could help. The run-status sensor uses ``retryable`` to choose between
``retrying`` and ``failed``; the API maps ``http_status`` to an ``application/problem+json`` answer.
"""

from __future__ import annotations

from typing import Any


class KilnError(Exception):
    code: str = "internal_error"
    title: str = "Internal error"
    http_status: int = 500
    retryable: bool = True

    def __init__(self, message: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        if code:
            self.code = code
        self.extra = extra


class PermanentError(KilnError):
    """Bad input or a state that retrying cannot fix: the job fails at once."""

    code = "permanent_error"
    title = "The work cannot be done"
    http_status = 422
    retryable = False


class RetryableError(KilnError):
    """A timeout, a 429/5xx from a dependency, a lost worker: worth another attempt after backoff."""

    code = "transient_error"
    title = "Temporary failure"
    http_status = 503
    retryable = True


class InvalidInput(PermanentError):
    code = "invalid_input"
    title = "Invalid input"
    http_status = 422


class NotFound(KilnError):
    code = "not_found"
    title = "Not found"
    http_status = 404
    retryable = False


class Conflict(KilnError):
    code = "conflict"
    title = "Conflict"
    http_status = 409
    retryable = False


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    title = "Idempotency-Key reused with a different request"


class PayloadTooLarge(KilnError):
    code = "payload_too_large"
    title = "Payload too large"
    http_status = 413
    retryable = False


class StorageKeyError(PermanentError):
    code = "invalid_storage_key"
    title = "Storage key refused"
    http_status = 400


class ObjectMissing(KilnError):
    code = "object_missing"
    title = "Stored object not found"
    http_status = 404
    retryable = False

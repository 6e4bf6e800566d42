"""Domain logic of the selftest product: validate the request, fail on demand, build the report.

Plain functions on plain data (no Dagster, no database), so tests call them directly. The
payload knobs make the platform's failure paths reproducible end to end:
``fail_times`` raises a retryable error on the first N attempts, ``fail_permanently`` a
permanent one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.errors import InvalidInput, PermanentError, RetryableError
from pipelines.selftest.product import KIND  # noqa: F401 - re-exported

MAX_MESSAGE_CHARS = 10_000


@dataclass(frozen=True)
class SelftestRequest:
    message: str
    fail_times: int = 0
    fail_permanently: bool = False

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SelftestRequest:
        message = payload.get("message", "")
        fail_times = payload.get("fail_times", 0)
        fail_permanently = payload.get("fail_permanently", False)
        if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"message must be a string of at most {MAX_MESSAGE_CHARS} characters")
        if isinstance(fail_times, bool) or not isinstance(fail_times, int) or not 0 <= fail_times <= 20:
            raise InvalidInput("fail_times must be an integer between 0 and 20")
        if not isinstance(fail_permanently, bool):
            raise InvalidInput("fail_permanently must be true or false")
        return cls(message=message, fail_times=fail_times, fail_permanently=fail_permanently)


def build_report(
    request: SelftestRequest, *, attempt: int, run_id: str, started_at: datetime, finished_at: datetime
) -> dict[str, Any]:
    """The report for one attempt, or the error the request asked for."""
    if request.fail_permanently:
        raise PermanentError("The selftest job asked to be rejected (fail_permanently).", code="selftest_rejected")
    if attempt <= request.fail_times:
        raise RetryableError(
            f"The selftest job asked to fail its first {request.fail_times} attempt(s); this was attempt {attempt}.",
            code="selftest_transient",
        )
    return {
        "message": request.message,
        "message_sha256": hashlib.sha256(request.message.encode()).hexdigest(),
        "attempt": attempt,
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }


def render_report(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()

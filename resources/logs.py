"""Structured JSON logs with correlation ids and secret redaction, for every Kiln process.

* ``configure_logging(settings)`` (API, CLI): structlog emitting one JSON object per line, with the
  context variables (``request_id``, ``workspace_id``, ``job_id``, ``run_id``) merged in and secrets
  redacted as the last step before rendering; stdlib logging goes through the same pipeline.
* ``configure_dagster_logging(settings)`` (run workers): the same lines, leaving Dagster's handlers alone.
* ``bind_context(**kv)``: add correlation fields to every later log line of this task/thread.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog

_TOKEN_IN_TEXT = re.compile(r"kiln_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
# A signed download link is a credential too (api/signing.py): keep its signature out of logs.
# Both spellings: <artifact>.<workspace>.<token>.<expires>.<sig> and the older one without the token id.
_SIGNED_LINK_IN_TEXT = re.compile(r"([0-9a-f]{32}\.[0-9a-f]{32}\.(?:[0-9a-f]{32}\.)?[0-9]{1,12}\.)[A-Za-z0-9_-]{43}")
_BEARER_IN_TEXT = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_KEYS = re.compile(r"(?i)(token|secret|password|passwd|authorization|api[_-]?key|cookie|credential)")
REDACTED = "[REDACTED]"


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        value = _SIGNED_LINK_IN_TEXT.sub(r"\1" + REDACTED, _TOKEN_IN_TEXT.sub(REDACTED, value))
        return _BEARER_IN_TEXT.sub(r"\1 " + REDACTED, value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _redact_value(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


def _is_secret_key(key: Any) -> bool:
    # "token_id" / "token_prefix" identify a token without revealing it; keep them.
    return isinstance(key, str) and bool(_SECRET_KEYS.search(key)) and not key.endswith(("_id", "_prefix", "_count"))


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop token-looking strings and values of secret-named keys."""
    return {k: (REDACTED if _is_secret_key(k) else _redact_value(v)) for k, v in event_dict.items()}


def configure_logging(settings: Any = None, *, stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging through it) for this process."""
    level_name = str(getattr(settings, "log_level", "INFO")).upper()
    level = logging.getLevelName(level_name) if isinstance(logging.getLevelName(level_name), int) else logging.INFO
    as_json = bool(getattr(settings, "log_json", True))
    stream = stream or sys.stderr
    shared: list[Callable] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Library logs (uvicorn, sqlalchemy, alembic) go through the same redaction and rendering.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_secrets, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_kiln", False)]
    handler._kiln = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access",):  # our middleware writes the access line
        logging.getLogger(noisy).propagate = False


def configure_dagster_logging(settings: Any = None, *, stream: TextIO | None = None) -> None:
    """structlog for a Dagster process (run worker, step subprocess): JSON lines with the bound context.

    Only the first call of a process configures (a process the API already configured keeps its
    setup). The root stdlib logger is left alone: Dagster attaches its own handlers there, and
    routing them through structlog too would print every Dagster line twice. Without ``stream``
    lines go to whatever ``sys.stderr`` is at write time, so Dagster's compute-log capture sees them.
    """
    if structlog.is_configured():
        return
    level_name = str(getattr(settings, "log_level", "INFO")).upper()
    level = logging.getLevelName(level_name) if isinstance(logging.getLevelName(level_name), int) else logging.INFO
    renderer = structlog.processors.JSONRenderer() if getattr(settings, "log_json", True) else (
        structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: structlog.PrintLogger(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def bind_context(**kv: Any) -> None:
    structlog.contextvars.bind_contextvars(**{k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in kv.items()})


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()

"""Structured logging (structlog) with a redaction step that no secret gets past."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from interlink.core.context import correlation_id_var

# Interlink API keys, webhook secrets, bearer tokens, and anything that looks like a credential pair.
_SECRET_PATTERNS = [
    re.compile(r"il_[a-z]{3,5}_[0-9A-Za-z]{20,}"),
    re.compile(r"whsec_[0-9A-Za-z+/=]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # Slack incoming-webhook urls: the last path segment is the credential.
    re.compile(r"(?i)(https?://hooks\.slack(?:-gov)?\.com/[^\s\"'<>]*/)[^/\s\"'<>?#]+"),
]
_SECRET_KEYS = re.compile(
    r"(?i)(secret|password|passwd|token|authorization|api[_-]?key|credential|pepper|^key$)"
)
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    """Replace anything that looks like a credential in free text."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key) and value not in (None, "", [], {}):
        if isinstance(value, (bool, int, float)):
            return value
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    return value


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = redact_text(str(event_dict[key]))
        else:
            event_dict[key] = redact_value(key, event_dict[key])
    return event_dict


def _add_correlation_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    cid = correlation_id_var.get()
    if cid and "correlation_id" not in event_dict:
        event_dict["correlation_id"] = cid
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and the standard library through one redacting JSON (or console) renderer."""
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_correlation_id,
        structlog.processors.format_exc_info,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_interlink", False):
            root.removeHandler(existing)
    handler._interlink = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # SQLAlchemy echoes every statement at INFO and the drivers log operations and SQL parameters
    # (ciphertexts, key hashes) at DEBUG: their loggers never go below WARNING.
    # (Alembic's plugin registry announces each plugin at INFO whenever migrations are inspected.)
    for name in ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "psycopg", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True

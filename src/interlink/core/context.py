"""Request-scoped context: correlation id and the acting principal, as context variables."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

_CORRELATION_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    """A fresh correlation id: 32 random hex digits (a UUID's size, without building one)."""
    return os.urandom(16).hex()


def accept_correlation_id(value: str | None) -> str:
    """Use the caller's id when it is safe to log and store, otherwise make a new one."""
    if value and _CORRELATION_ID_RE.fullmatch(value):
        return value
    return new_correlation_id()


def current_correlation_id() -> str:
    """The correlation id of the current request or job (a new one outside any)."""
    value = correlation_id_var.get()
    if value is None:
        value = new_correlation_id()
        correlation_id_var.set(value)
    return value

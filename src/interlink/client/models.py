"""Typed answers of the SDK.

The service's own response models are reused as they are (``ApiKeyInfo``, ``TenantInfo``,
``SecretInfo``, ...), so the SDK and the API cannot drift apart; only the page wrapper lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from interlink.core.schemas import AuditEventInfo, TenantInfo
from interlink.core.secret_schemas import SecretInfo, SecretRiskFactor
from interlink.keys.schemas import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRotated,
    ApiSecurityAuditEvent,
    VerifyKeyResponse,
)

T = TypeVar("T")

__all__ = [
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyRotated",
    "ApiSecurityAuditEvent",
    "AuditEventInfo",
    "Page",
    "SecretInfo",
    "SecretRiskFactor",
    "TenantInfo",
    "VerifyKeyResponse",
]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first. Pass ``next_cursor`` as ``after`` for the next page.

    Iterating a page yields its items; the resource's ``iter_all`` walks every page.
    """

    data: list[T]
    has_more: bool
    next_cursor: str | None = None
    correlation_id: str | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

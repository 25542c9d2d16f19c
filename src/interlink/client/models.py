"""Typed answers of the SDK.

The service's own response models are reused as they are (``ApiKeyInfo``, ``TenantInfo``,
``SecretInfo``, ...), so the SDK and the API cannot drift apart; only the page wrapper and the
provider's answer forwarded as it came (:class:`ForwardedResponse`) live here.
"""

from __future__ import annotations

import codecs
import json as jsonlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Generic, TypeVar

import httpx

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
    "ForwardedResponse",
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


def _number(value: str | None, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ForwardedResponse:
    """The provider's answer to a call forwarded through a connection
    (``client.connections.forward``), as it came: any status, 4xx and 5xx included.

    ``headers`` (case-insensitive) are the provider's answer headers with Interlink's own
    (``Interlink-Request-Id``, ``Interlink-Attempts``, ``Interlink-Duration-Ms``,
    ``Interlink-RateLimit-*``, ``X-Correlation-Id``); ``request_id``, ``attempts`` and
    ``duration_ms`` are read from them.
    """

    status: int
    headers: httpx.Headers = field(repr=False)
    content: bytes = field(repr=False)
    request_id: str | None = None
    """The call's request log row (``apr_...``)."""
    attempts: int | None = None
    """Attempts Interlink made, retries included."""
    duration_ms: float | None = None
    """The whole call as Interlink timed it, retries included."""

    @classmethod
    def from_response(cls, response: httpx.Response) -> ForwardedResponse:
        headers = response.headers
        return cls(
            status=response.status_code,
            headers=headers,
            content=response.content,
            request_id=headers.get("interlink-request-id"),
            attempts=_number(headers.get("interlink-attempts"), int),
            duration_ms=_number(headers.get("interlink-duration-ms"), float),
        )

    @property
    def ok(self) -> bool:
        """Whether the provider answered with a 2xx status."""
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-case without parameters (``""`` when none was given)."""
        media_type: str = self.headers.get("content-type", "")
        return media_type.partition(";")[0].strip().lower()

    def _encoding(self) -> str:
        """The ``charset`` of ``Content-Type`` when Python knows it, else ``utf-8``."""
        message = Message()
        message["content-type"] = self.headers.get("content-type", "")
        charset = message.get_content_charset()
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with the ``charset`` of ``Content-Type`` (default UTF-8; undecodable
        bytes replaced)."""
        return self.content.decode(self._encoding(), errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not JSON)."""
        return jsonlib.loads(self.content)

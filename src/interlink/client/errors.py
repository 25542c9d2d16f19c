"""Errors raised by the SDK.

Every non-2xx answer becomes an :class:`InterlinkAPIError` (a subclass per common status) carrying
the RFC 9457 problem fields. A request that never got an answer raises :class:`InterlinkConnectionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class InterlinkClientError(Exception):
    """Base of every error the SDK raises."""


class InterlinkConnectionError(InterlinkClientError):
    """The service could not be reached (after the allowed retries)."""

    def __init__(self, message: str, *, url: str, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.correlation_id = correlation_id


class InterlinkTimeoutError(InterlinkConnectionError):
    """The service did not answer within the client's timeout (after the allowed retries)."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field named by a 422 answer."""

    field: str
    message: str


class InterlinkAPIError(InterlinkClientError):
    """The service answered with an error status.

    ``type`` is the stable problem type (``urn:interlink:problem:<code>``); ``reason`` refines
    401/403 answers (e.g. ``revoked``, ``insufficient_scope``); ``errors`` names invalid fields.
    """

    def __init__(
        self,
        status: int,
        *,
        type: str,
        title: str,
        detail: str | None = None,
        errors: list[FieldProblem] | None = None,
        correlation_id: str | None = None,
        reason: str | None = None,
        instance: str | None = None,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.correlation_id = correlation_id
        self.reason = reason
        self.instance = instance
        self.body = body
        self.headers = headers or httpx.Headers()
        super().__init__(self._message())

    @property
    def code(self) -> str:
        """The last segment of ``type``, e.g. ``not-found``."""
        return self.type.rsplit(":", 1)[-1]

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        return text


class AuthenticationError(InterlinkAPIError):
    """401: the API key is missing, malformed, unknown, expired or revoked (see ``reason``)."""


class PermissionDeniedError(InterlinkAPIError):
    """403: the key lacks a scope, is not a platform key, or is used from a denied IP."""


class NotFoundError(InterlinkAPIError):
    """404: the resource does not exist or is not visible to this tenant."""


class ConflictError(InterlinkAPIError):
    """409: the request conflicts with the resource's state (e.g. a duplicate slug)."""


class ValidationError(InterlinkAPIError):
    """422: invalid input; ``errors`` names each field."""


class RateLimitError(InterlinkAPIError):
    """429: the key's rate limit is exhausted; retry after ``retry_after`` seconds."""

    def __init__(self, status: int, *, retry_after: int | None = None, **fields: Any) -> None:
        self.retry_after = retry_after
        super().__init__(status, **fields)


class ServiceUnavailableError(InterlinkAPIError):
    """503: the service (usually its database) is temporarily unavailable."""


_BY_STATUS: dict[int, type[InterlinkAPIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def error_from_response(response: httpx.Response) -> InterlinkAPIError:
    """Build the typed error for an error response (problem+json or anything else)."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    errors = [
        FieldProblem(str(e.get("field", "")), str(e.get("message", "")))
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    detail = problem.get("detail")
    if detail is None and body is None and response.text:
        detail = response.text[:500]
    fields: dict[str, Any] = {
        "type": str(problem.get("type") or "about:blank"),
        "title": str(problem.get("title") or response.reason_phrase or "HTTP error"),
        "detail": str(detail) if detail is not None else None,
        "errors": errors,
        "correlation_id": problem.get("correlationId") or response.headers.get("x-correlation-id"),
        "reason": problem.get("reason"),
        "instance": problem.get("instance"),
        "body": body,
        "headers": response.headers,
    }
    cls = _BY_STATUS.get(status, InterlinkAPIError)
    if cls is RateLimitError:
        retry_after = _int_or_none(problem.get("retryAfter")) or _int_or_none(
            response.headers.get("retry-after")
        )
        return RateLimitError(status, retry_after=retry_after, **fields)
    return cls(status, **fields)

"""Domain errors. The HTTP layer maps each to an RFC 9457 problem with a stable ``type``."""

from __future__ import annotations

from typing import Any


class InterlinkError(Exception):
    """Base of every error a caller can cause. ``code`` is the stable problem type slug."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class ValidationFailed(InterlinkError):
    status = 422
    code = "validation-error"
    title = "Validation failed"

    def __init__(self, detail: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        merged = dict(extra or {})
        if field:
            merged["errors"] = [{"field": field, "message": detail}]
        super().__init__(detail, extra=merged)


class NotFound(InterlinkError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(InterlinkError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unauthorized(InterlinkError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, reason: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"reason": reason, **(extra or {})})
        self.reason = reason


class Forbidden(InterlinkError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class RateLimited(InterlinkError):
    status = 429
    code = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, extra={"retryAfter": retry_after})
        self.retry_after = retry_after
        self.headers = headers or {}


class ServiceUnavailable(InterlinkError):
    status = 503
    code = "service-unavailable"
    title = "Service unavailable"


class UpstreamFailed(InterlinkError):
    """A provider called on the caller's behalf gave no usable answer: 502, 504 for a timeout,
    503 when Interlink held the call back (rate limit, open circuit, retry budget)."""

    status = 502
    code = "upstream-failed"
    title = "Upstream provider failed"

    def __init__(
        self,
        detail: str,
        *,
        status: int = 502,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        merged = dict(extra or {})
        if retry_after is not None:
            merged["retryAfter"] = retry_after
        super().__init__(detail, extra=merged)
        self.status = status
        self.retry_after = retry_after

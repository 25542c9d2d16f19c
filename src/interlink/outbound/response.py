"""The response envelope (the guide's ApiResponse), rate-limit headers, and the client's errors.

* **Timing** (:class:`ApiTiming`) is that of the last attempt, in milliseconds: ``dns_ms``,
  ``connect_ms`` (TCP), ``tls_ms``, ``first_byte_ms`` (start of the attempt to the response
  headers) and ``total_ms`` (to the end of the body). On a reused pooled connection
  (``reused=True``) DNS, connect and TLS are 0. ``ApiResponse.duration_ms`` is the whole call,
  retries and waits included.
* **data** is the JSON-decoded body when the content type is JSON (``application/json`` or
  ``+json``) and it decodes; text (``text/*``, XML, form) as ``str``; anything else as ``bytes``;
  ``None`` for an empty body. It is decoded on first use.
* **Rate-limit headers** (:func:`parse_rate_limit`), first match wins: the IETF draft's structured
  ``RateLimit: "name";r=<remaining>;t=<reset>`` with ``RateLimit-Policy: "name";q=<limit>;w=<window>``,
  the earlier draft's ``RateLimit: limit=..., remaining=..., reset=...``, the separate
  ``RateLimit-Limit``/``-Remaining``/``-Reset`` fields, and the common ``X-RateLimit-*`` and
  ``X-Rate-Limit-*`` forms. A reset above 10^9 is read as a Unix time (seconds, or milliseconds
  above 10^12) and turned into seconds from now.
* **Retry-After** (:func:`parse_retry_after`): delay-seconds or an HTTP date; seconds from now.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

from multidict import CIMultiDictProxy
from pydantic_core import from_json

ERROR_CLASSES: Final = frozenset(
    {
        "timeout",
        "dns",
        "connect",
        "tls",
        "refused",
        "http_4xx",
        "http_5xx",
        "rate_limited",
        "circuit_open",
        "budget_exhausted",
        "cancelled",
        "other",
    }
)
"""Error classes of a call (``None``: it succeeded). ``refused`` is the SSRF guard; ``cancelled``
a call abandoned by its caller (e.g. a fail-fast batch)."""

_TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded", "application/javascript")


@dataclass(frozen=True, slots=True)
class ApiTiming:
    dns_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    first_byte_ms: float = 0.0
    total_ms: float = 0.0
    reused: bool = False


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the provider said about its limit. Any field may be unknown (``None``)."""

    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None
    window_seconds: float | None = None
    policy: str | None = None
    source: str = ""
    """Which header form it came from: ``ratelimit``, ``ratelimit-fields``, ``x-ratelimit``."""


_UNPARSED: Final = object()


class OutboundError(Exception):
    """A call that ended without a usable answer. ``error_class`` is one of :data:`ERROR_CLASSES`.

    ``response`` is the last answer when there was one (e.g. ``budget_exhausted`` after a 503).
    ``retry_after_seconds`` is, for a call held back before sending (a 429 block, a full rate
    limit, an open circuit), how long until it could go through; ``None`` when unknown.
    """

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        attempts: int = 0,
        request_id: str | None = None,
        response: ApiResponse | None = None,
        timing: ApiTiming | None = None,
        duration_ms: float = 0.0,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class if error_class in ERROR_CLASSES else "other"
        self.message = message
        self.attempts = attempts
        self.request_id = request_id
        self.response = response
        self.timing = timing
        self.duration_ms = duration_ms
        self.retry_after_seconds = retry_after_seconds

    def __repr__(self) -> str:
        return f"OutboundError({self.error_class!r}, {self.message!r}, attempts={self.attempts})"


class ApiHttpError(OutboundError):
    """Raised by :meth:`ApiResponse.raise_for_status` for a non-2xx answer."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """The envelope of one call (the guide's ApiResponse)."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes
    timing: ApiTiming
    duration_ms: float
    attempts: int
    method: str
    url: str
    """The URL as logged: no userinfo, credential-like query parameters ``[redacted]``."""
    request_id: str | None
    """The row id of the call in the request log (``apr_...``), when logging is on."""
    retry_after_seconds: float | None = None
    error_class: str | None = None
    """``None`` for a success; else ``http_4xx``, ``http_5xx``, ``rate_limited`` (429) or
    ``budget_exhausted`` (a retryable answer the retry budget did not allow to retry)."""
    truncated: bool = False
    """The body was larger than the client's ``max_response_bytes``; ``content`` is its start."""
    _rate_limit: Any = field(default=_UNPARSED, init=False, repr=False, compare=False)
    _data: Any = field(default=_UNPARSED, init=False, repr=False, compare=False)

    @property
    def data(self) -> Any:
        """The body decoded by :func:`decode_body` (see the module doc), on first use: a caller that
        passes ``content`` on as it is (the proxy's passthrough form) never pays for decoding."""
        decoded = self._data
        if decoded is _UNPARSED:
            decoded = decode_body(self.content, self.headers.get("Content-Type"), self.truncated)
            object.__setattr__(self, "_data", decoded)
        return decoded

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """The provider's rate-limit headers (:func:`parse_rate_limit`), parsed on first use."""
        parsed = self._rate_limit
        if parsed is _UNPARSED:
            parsed = parse_rate_limit(self.headers)
            object.__setattr__(self, "_rate_limit", parsed)
        return cast("RateLimitInfo | None", parsed)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def reused(self) -> bool:
        return self.timing.reused

    def raise_for_status(self) -> ApiResponse:
        """Return ``self`` for 2xx, else raise :class:`ApiHttpError` carrying this response."""
        if self.ok:
            return self
        raise ApiHttpError(
            self.error_class or f"http_{self.status // 100}xx",
            f"{self.method} {self.url} answered HTTP {self.status}",
            attempts=self.attempts,
            request_id=self.request_id,
            response=self,
            timing=self.timing,
            duration_ms=self.duration_ms,
        )


def json_value(content: bytes) -> Any:
    """What ``json.loads(content)`` returns, or its ValueError. pydantic_core's parser goes first
    (about four times faster on a small document); what it refuses (a byte order mark, a lone
    surrogate escape, UTF-16 or UTF-32) goes to ``json.loads``. Where both accept a document they
    read the same value. A document nested deeper than pydantic_core reads (about 200 levels) is a
    ValueError: it could not be written back as JSON either."""
    try:
        return from_json(content)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise
        try:
            return json.loads(content)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply") from None


def decode_body(content: bytes, content_type: str | None, truncated: bool = False) -> Any:
    """JSON for JSON types (when it decodes), ``str`` for text types, else ``bytes``; None if empty."""
    if not content:
        return None
    ctype = (content_type or "").lower()
    media = ctype.split(";", 1)[0].strip()
    charset = "utf-8"
    if "charset=" in ctype:
        charset = ctype.split("charset=", 1)[1].split(";", 1)[0].strip().strip('"') or "utf-8"
    if (media == "application/json" or media.endswith("+json")) and not truncated:
        try:
            return json_value(content)
        except ValueError:
            pass
    if media.startswith(_TEXT_TYPES) or media.endswith(("+xml", "+json")) or media == "application/json":
        try:
            return content.decode(charset, errors="replace")
        except LookupError:
            return content.decode("utf-8", errors="replace")
    return content


# -- Retry-After and rate-limit headers -----------------------------------------------------------


MAX_RETRY_AFTER_SECONDS: Final = 1e9
"""A longer ``Retry-After`` (hundreds of digits) counts as this long: a finite number of seconds."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP date); None if invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():  # delay-seconds; a non-ASCII digit (``²``, ``٣``) is not one
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value.isascii() else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.split(",", 1)[0].split(";", 1)[0].strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _reset_seconds(value: float | None, now: float) -> float | None:
    if value is None:
        return None
    if value > 1e12:  # Unix time in milliseconds
        return max(0.0, value / 1000 - now)
    if value > 1e9:  # Unix time in seconds
        return max(0.0, value - now)
    return value


_ITEM = re.compile(r'\s*(?:"([^"]*)"|([A-Za-z0-9_.-]+))((?:\s*;\s*[A-Za-z0-9_-]+(?:=[^;,]*)?)*)\s*(?:,|$)')
_PARAM = re.compile(r";\s*([A-Za-z0-9_-]+)(?:=([^;,]*))?")


def _structured(value: str) -> list[tuple[str, dict[str, str]]]:
    """Items of an RFC 8941 list like ``"name";r=5;t=30, "other";r=1`` (names and parameters)."""
    out: list[tuple[str, dict[str, str]]] = []
    for match in _ITEM.finditer(value):
        if not match.group(0).strip():
            continue
        name = match.group(1) if match.group(1) is not None else (match.group(2) or "")
        params = {k.lower(): (v or "").strip().strip('"') for k, v in _PARAM.findall(match.group(3) or "")}
        out.append((name, params))
    return out


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def parse_rate_limit(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo | None:
    """The provider's rate-limit state from response headers (see the module doc), or None."""
    now = time.time() if now is None else now
    combined = headers.get("RateLimit")
    if combined:
        if "=" in combined and ";" not in combined:  # draft-06: limit=10, remaining=5, reset=30
            fields = {}
            for part in combined.split(","):
                key, _, val = part.partition("=")
                fields[key.strip().lower()] = val.strip()
            return RateLimitInfo(
                limit=_as_int(_number(fields.get("limit"))),
                remaining=_as_int(_number(fields.get("remaining"))),
                reset_seconds=_reset_seconds(_number(fields.get("reset")), now),
                source="ratelimit",
            )
        items = _structured(combined)
        if items:
            name, params = items[0]
            limit = window = None
            policy_header = headers.get("RateLimit-Policy")
            if policy_header:
                policies = dict(_structured(policy_header))
                policy = policies.get(name) or next(iter(policies.values()), {})
                limit, window = _number(policy.get("q")), _number(policy.get("w"))
            return RateLimitInfo(
                limit=_as_int(limit),
                remaining=_as_int(_number(params.get("r"))),
                reset_seconds=_reset_seconds(_number(params.get("t")), now),
                window_seconds=window,
                policy=name or None,
                source="ratelimit",
            )
    for prefix, source in (
        ("RateLimit-", "ratelimit-fields"),
        ("X-RateLimit-", "x-ratelimit"),
        ("X-Rate-Limit-", "x-ratelimit"),
    ):
        limit_value = headers.get(prefix + "Limit")
        remaining_value = headers.get(prefix + "Remaining")
        reset_value = headers.get(prefix + "Reset")
        if limit_value is None and remaining_value is None and reset_value is None:
            continue
        reset = _number(reset_value)
        if reset is None and prefix != "RateLimit-":
            reset = _number(headers.get(prefix + "Reset-After"))
        window = None
        policy_value = headers.get(prefix + "Policy") if prefix == "RateLimit-" else None
        if policy_value and ";w=" in policy_value.replace(" ", ""):
            window = _number(policy_value.replace(" ", "").split(";w=", 1)[1])
        return RateLimitInfo(
            limit=_as_int(_number(limit_value)),
            remaining=_as_int(_number(remaining_value)),
            reset_seconds=_reset_seconds(reset, now),
            window_seconds=window,
            source=source,
        )
    return None

"""Client configuration: the guide's ApiClientConfig and its policies.

An :class:`ApiClientConfig` describes how Interlink talks to one provider for one connection (or,
without a connection, for one tenant and base URL): base URL and default headers, timeout, retry
policy and retry budget, rate limits for the connection and for the provider host, the circuit
breaker, the pool size for the host and the request log. Every policy is optional where it makes
sense (``None`` turns it off). Values are checked when the config is built
(:class:`~interlink.core.errors.ValidationFailed` naming the field).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from interlink.core.errors import ValidationFailed
from interlink.outbound.request import check_headers

DEFAULT_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
"""429 and the 5xx answers that say "try again" (501 Not Implemented and 505 are not retried)."""
RETRYABLE_ERRORS: Final = frozenset({"timeout", "connect", "dns"})
"""Network failures worth another attempt (TLS failures and SSRF refusals are not)."""
DEFAULT_MAX_CONNECTIONS: Final = 32
"""Pooled connections per provider host and process, unless a client's config says otherwise."""
DEFAULT_MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024
"""The largest answer a client reads unless its config says otherwise (a larger one is cut short,
``ApiResponse.truncated``)."""


def _positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValidationFailed(f"{name} must be {'zero or more' if allow_zero else 'positive'}", field=name)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: retry ``n`` (1-based) waits a uniformly random time in
    ``[0, min(max_delay, base_delay · 2^(n-1))]``, or what ``Retry-After`` says. A ``Retry-After``
    longer than ``max_retry_after_seconds`` ends the call instead of waiting."""

    max_attempts: int = 3
    base_delay_seconds: float = 0.2
    max_delay_seconds: float = 10.0
    max_retry_after_seconds: float = 60.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValidationFailed("retry.max_attempts must be between 1 and 20", field="retry.max_attempts")
        _positive(self.base_delay_seconds, "retry.base_delay_seconds", allow_zero=True)
        _positive(self.max_delay_seconds, "retry.max_delay_seconds", allow_zero=True)
        _positive(self.max_retry_after_seconds, "retry.max_retry_after_seconds", allow_zero=True)

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``retry`` (1 for the first retry): full jitter."""
        cap = min(self.max_delay_seconds, self.base_delay_seconds * (2 ** max(0, retry - 1)))
        return (rng or random).uniform(0.0, cap)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` requests per ``period_seconds`` (a moving window). A call that finds the
    window full waits for a slot up to ``max_wait_seconds``, then fails ``rate_limited``."""

    limit: int
    period_seconds: int = 1
    max_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValidationFailed("rate limit must be at least 1", field="rate_limit.limit")
        if self.period_seconds < 1:
            raise ValidationFailed("period must be at least 1 second", field="rate_limit.period_seconds")
        _positive(self.max_wait_seconds, "rate_limit.max_wait_seconds", allow_zero=True)


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """Opens after ``failure_threshold`` failures (network errors, 5xx) within ``window_seconds``;
    refuses calls for ``cooldown_seconds``; then lets ``half_open_max_calls`` probes through: a
    success closes it, a failure opens it again."""

    failure_threshold: int = 5
    window_seconds: float = 30.0
    cooldown_seconds: float = 30.0
    half_open_max_calls: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValidationFailed(
                "failure_threshold must be at least 1", field="circuit_breaker.failure_threshold"
            )
        if self.half_open_max_calls < 1:
            raise ValidationFailed(
                "half_open_max_calls must be at least 1", field="circuit_breaker.half_open_max_calls"
            )
        _positive(self.window_seconds, "circuit_breaker.window_seconds")
        _positive(self.cooldown_seconds, "circuit_breaker.cooldown_seconds", allow_zero=True)


@dataclass(frozen=True, slots=True)
class RetryBudgetConfig:
    """Retries allowed within a sliding ``window_seconds``: at most ``min_retries`` plus ``ratio``
    of the calls made in the window (so an outage cannot multiply the load by ``max_attempts``)."""

    ratio: float = 0.2
    min_retries: int = 10
    window_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 10 or not math.isfinite(self.ratio):
            raise ValidationFailed("ratio must be between 0 and 10", field="retry_budget.ratio")
        if self.min_retries < 0:
            raise ValidationFailed("min_retries must be zero or more", field="retry_budget.min_retries")
        _positive(self.window_seconds, "retry_budget.window_seconds")


@dataclass(frozen=True, slots=True)
class ApiClientConfig:
    """How to call one provider for one connection (the guide's ApiClientConfig)."""

    tenant_id: str
    base_url: str = ""
    connection_id: str | None = None
    provider_key: str | None = None
    """Low-cardinality provider name (``stripe``): a Prometheus label and a log column."""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_budget: RetryBudgetConfig | None = field(default_factory=RetryBudgetConfig)
    rate_limit: RateLimit | None = None
    """Per connection (every process, when Redis is configured)."""
    host_rate_limit: RateLimit | None = None
    """Per provider host, shared by every connection that calls it."""
    circuit_breaker: CircuitBreakerConfig | None = field(default_factory=CircuitBreakerConfig)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections kept to the host (the host's pool is created by the first client using it)."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    log_requests: bool = True
    log_bodies: bool = True
    """Store the first 4 KB of request and response bodies (redacted) in the request log."""

    def __post_init__(self) -> None:
        if not self.tenant_id:
            raise ValidationFailed("tenant_id is required", field="tenant_id")
        if self.base_url:
            parts = urlsplit(self.base_url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValidationFailed("base_url must be an absolute http(s) URL", field="base_url")
            if parts.username is not None or parts.password is not None:
                raise ValidationFailed("base_url must not contain credentials", field="base_url")
            if parts.query or parts.fragment:
                raise ValidationFailed("base_url must not have a query or fragment", field="base_url")
        check_headers(self.headers)
        _positive(self.timeout_seconds, "timeout_seconds")
        if not 1 <= self.max_connections <= 1024:
            raise ValidationFailed("max_connections must be between 1 and 1024", field="max_connections")
        if self.max_response_bytes < 1024:
            raise ValidationFailed("max_response_bytes must be at least 1024", field="max_response_bytes")

    def scope_key(self, origin: str) -> str:
        """What budgets, breakers, limits and blocks are kept per: the connection, or else the
        tenant and origin (``scheme://host:port``)."""
        return self.connection_id or f"{self.tenant_id}@{origin}"

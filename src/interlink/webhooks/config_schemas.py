"""Pydantic types of the tenant's webhook configuration (the guide's ``WebhookConfig``).

One configuration per tenant holds the defaults its endpoints fall back on. Precedence is always
*endpoint value > tenant configuration > built-in default*:

* ``retrySchedule`` is resolved when a delivery is claimed: an endpoint's own schedule, else the
  tenant's, else the built-in 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (``null`` = built-in);
* ``retention`` and ``defaultTimeoutSeconds`` are the values a new endpoint gets when it is created
  without them; the retention purge also falls back on ``retention``;
* ``disableAfterSeconds`` and ``circuitBreaker`` apply to every endpoint of the tenant.

Requests are camelCase with unknown fields refused; the service re-checks every value.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from interlink.core.enums import RetentionPolicy
from interlink.core.schemas import ApiModel, RequestModel

DEFAULT_DISABLE_AFTER_SECONDS = 5 * 86_400
MIN_DISABLE_AFTER_SECONDS = 60
MAX_DISABLE_AFTER_SECONDS = 365 * 86_400
MAX_FAILURE_THRESHOLD = 100_000
MAX_WINDOW_SECONDS = 7 * 86_400
MAX_COOLDOWN_SECONDS = 86_400
DEFAULT_FAILURE_THRESHOLD = 20
DEFAULT_WINDOW_SECONDS = 60
DEFAULT_COOLDOWN_SECONDS = 60

_THRESHOLD_DOC = (
    "Failed attempts in a row (no success in between) that open the circuit when they all fall "
    "within one window of `windowSeconds` starting at the first of them."
)
_WINDOW_DOC = "Length of the window the failures are counted in, in seconds."
_COOLDOWN_DOC = (
    "How long an open circuit holds the endpoint's deliveries back before one probe is sent; doubles "
    "each time a probe fails (at most 1 day)."
)
_RETRY_DOC = (
    "Seconds before each retry (each 1 s–7 days) for endpoints without their own schedule; null uses "
    "the built-in 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h."
)
_RETENTION_DOC = "Retention of new endpoints created without one (the retention purge falls back on it)."
_DISABLE_DOC = (
    "An endpoint whose attempts have all failed for this long (no success since) is disabled "
    "(default 432000 = 5 days)."
)
_CIRCUIT_DOC = "Circuit breaker for every endpoint of the tenant; null turns it off."
_TIMEOUT_DOC = "Seconds per attempt (1–60) of new endpoints created without `timeoutSeconds`."


class CircuitBreakerConfig(ApiModel):
    """When an endpoint's circuit opens and how long it stays open."""

    failure_threshold: int = Field(ge=1, le=MAX_FAILURE_THRESHOLD, description=_THRESHOLD_DOC)
    window_seconds: int = Field(ge=1, le=MAX_WINDOW_SECONDS, description=_WINDOW_DOC)
    cooldown_seconds: int = Field(ge=1, le=MAX_COOLDOWN_SECONDS, description=_COOLDOWN_DOC)


class CircuitBreakerConfigIn(RequestModel):
    failure_threshold: int = Field(ge=1, le=MAX_FAILURE_THRESHOLD, description=_THRESHOLD_DOC)
    window_seconds: int = Field(ge=1, le=MAX_WINDOW_SECONDS, description=_WINDOW_DOC)
    cooldown_seconds: int = Field(ge=1, le=MAX_COOLDOWN_SECONDS, description=_COOLDOWN_DOC)


DEFAULT_CIRCUIT_BREAKER = CircuitBreakerConfig(
    failure_threshold=DEFAULT_FAILURE_THRESHOLD,
    window_seconds=DEFAULT_WINDOW_SECONDS,
    cooldown_seconds=DEFAULT_COOLDOWN_SECONDS,
)


class WebhookConfig(ApiModel):
    """The tenant's webhook defaults. ``createdAt`` is null while the tenant uses the built-in ones."""

    tenant_id: str
    retry_schedule: list[int] | None = Field(description=_RETRY_DOC)
    retention: RetentionPolicy = Field(description=_RETENTION_DOC)
    disable_after_seconds: int = Field(description=_DISABLE_DOC)
    circuit_breaker: CircuitBreakerConfig | None = Field(description=_CIRCUIT_DOC)
    default_timeout_seconds: float = Field(description=_TIMEOUT_DOC)
    created_at: datetime | None
    updated_at: datetime | None


class WebhookConfigUpdate(RequestModel):
    """Fields to change; the others keep their value. ``retrySchedule: null`` restores the built-in
    schedule and ``circuitBreaker: null`` turns the breaker off; the other fields cannot be null."""

    retry_schedule: list[int] | None = Field(default=None, max_length=30, description=_RETRY_DOC)
    retention: RetentionPolicy | None = Field(default=None, description=_RETENTION_DOC)
    disable_after_seconds: int | None = Field(
        default=None, ge=MIN_DISABLE_AFTER_SECONDS, le=MAX_DISABLE_AFTER_SECONDS, description=_DISABLE_DOC
    )
    circuit_breaker: CircuitBreakerConfigIn | None = Field(default=None, description=_CIRCUIT_DOC)
    default_timeout_seconds: float | None = Field(default=None, ge=1.0, le=60.0, description=_TIMEOUT_DOC)

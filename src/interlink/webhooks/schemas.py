"""Pydantic types of event types and endpoints (the guide's WebhookEndpointInfo and friends).

Requests are camelCase with unknown fields refused; responses are camelCase. The bounds here are
the same constants the service enforces (:mod:`interlink.webhooks.endpoints` re-checks every value,
so the library path is as strict as the REST path). A signing secret never appears in
:class:`WebhookEndpointInfo`; only :class:`EndpointSecret` carries one.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from interlink.core.clock import as_utc, utcnow
from interlink.core.enums import DeliveryChannel, DeliveryStatus, RetentionPolicy
from interlink.core.schemas import ApiModel, RequestModel

if TYPE_CHECKING:  # the SDK imports these types: keep SQLAlchemy out of its import path
    from interlink.webhooks.models import WebhookEndpoint, WebhookEventType

EVENT_TYPE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
MAX_EVENT_TYPE_NAME = 200
MAX_DESCRIPTION = 1000
MAX_URL = 2048
MAX_SUBSCRIBED_TYPES = 100
MIN_TIMEOUT_SECONDS = 1.0
MAX_TIMEOUT_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 15.0
MAX_RETRY_ENTRIES = 30
MIN_RETRY_SECONDS = 1
MAX_RETRY_SECONDS = 7 * 86_400
MAX_RATE_LIMIT_PER_SECOND = 10_000.0
MIN_IN_FLIGHT = 1
MAX_IN_FLIGHT = 1000
DEFAULT_MAX_IN_FLIGHT = 16
MAX_BATCH_COUNT = 1000
MIN_BATCH_BYTES = 1024
MAX_BATCH_BYTES = 10 * 1024 * 1024
MAX_BATCH_WAIT_SECONDS = 300.0
DEFAULT_RETENTION = RetentionPolicy.DAYS_30

# -- event types ---------------------------------------------------------------------------------


class EventTypeCreate(RequestModel):
    """A new event type. ``schema`` (optional) is a JSON Schema that payloads of this type must match."""

    name: str = Field(
        min_length=1,
        max_length=MAX_EVENT_TYPE_NAME,
        pattern=EVENT_TYPE_NAME_PATTERN,
        description="Unique within the tenant, e.g. `invoice.paid`. Cannot be changed later.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    json_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="A JSON Schema (any draft the `jsonschema` package knows; 2020-12 when it names "
        "none). Checked as a schema when saved; only local `$ref`s (`#...`) are allowed.",
    )
    deprecated: bool = False


class EventTypeUpdate(RequestModel):
    """Fields to change. ``schema: null`` removes the schema; the name cannot change."""

    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    deprecated: bool | None = None


class EventTypeInfo(ApiModel):
    """A registered event type."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    json_schema: dict[str, Any] | None = Field(alias="schema")
    deprecated: bool
    created_at: datetime
    updated_at: datetime


def event_type_info(row: WebhookEventType) -> EventTypeInfo:
    return EventTypeInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        json_schema=row.json_schema,
        deprecated=row.deprecated,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# -- endpoints -----------------------------------------------------------------------------------


class BatchConfig(ApiModel):
    """Opt-in batch delivery: events are bundled into one signed request."""

    max_count: int = Field(ge=1, le=MAX_BATCH_COUNT, description="Most events in one request.")
    max_bytes: int = Field(
        ge=MIN_BATCH_BYTES, le=MAX_BATCH_BYTES, description="Largest request body, in bytes."
    )
    max_wait_seconds: float = Field(
        ge=0, le=MAX_BATCH_WAIT_SECONDS, description="Longest an event waits for its batch to fill."
    )


class BatchConfigIn(RequestModel):
    max_count: int = Field(ge=1, le=MAX_BATCH_COUNT)
    max_bytes: int = Field(ge=MIN_BATCH_BYTES, le=MAX_BATCH_BYTES)
    max_wait_seconds: float = Field(ge=0, le=MAX_BATCH_WAIT_SECONDS)


_CHANNEL_CONFIG_DOC = (
    "Per channel: WEBHOOK takes none (`{}`); SLACK takes optional `username` and `iconEmoji`; EMAIL "
    "takes `to` (1–20 addresses) and an optional `subjectTemplate`."
)
_EVENT_TYPES_DOC = (
    "Event type names this endpoint receives; empty means every type. Once the tenant has registered "
    "any event type, every name here must be registered (or be one of the built-in operational "
    "types `webhook.test`, `endpoint.disabled`, `endpoint.recovered`, `connection.expired`, "
    "`connection.error`, `connection.unhealthy`, `connection.recovered`)."
)
_HEADERS_DOC = (
    "Extra request headers (at most 20, 8 KB in total). Hop-by-hop headers, `Host`, `Content-Type`, "
    "`Content-Length` and the `webhook-*` signature headers are refused. Values of credential-like "
    "headers (Authorization, Cookie, names with token/secret/key/password) are shown as `[redacted]`."
)


class EndpointCreate(RequestModel):
    """A new endpoint. ``url`` is required for WEBHOOK and SLACK and must be left out for EMAIL."""

    url: str | None = Field(
        default=None,
        max_length=MAX_URL,
        description="http(s) URL. Private, loopback, link-local and metadata addresses are refused "
        "unless `INTERLINK_ALLOWED_TARGET_NETWORKS` allows them.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    channel: DeliveryChannel = DeliveryChannel.WEBHOOK
    channel_config: dict[str, Any] = Field(default_factory=dict, description=_CHANNEL_CONFIG_DOC)
    event_types: list[str] = Field(
        default_factory=list, max_length=MAX_SUBSCRIBED_TYPES, description=_EVENT_TYPES_DOC
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Which events to deliver, over `type`, `payload.*` and `metadata.*` with "
        "`$eq $neq $gt $gte $lt $lte $in $nin $exists $regex $and $or $not`.",
    )
    transformation: str | None = Field(
        default=None, max_length=16_384, description="A JSONata template that reshapes each event."
    )
    headers: dict[str, str] = Field(default_factory=dict, description=_HEADERS_DOC)
    timeout_seconds: float | None = Field(
        default=None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds per attempt; left out: the tenant's `defaultTimeoutSeconds` (built-in 15).",
    )
    retry_schedule: list[int] | None = Field(
        default=None,
        max_length=MAX_RETRY_ENTRIES,
        description="Seconds before each retry (each 1 s–7 days); null uses the tenant's schedule "
        "(`/v1/webhook-config`), else the built-in one.",
    )
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=MAX_RATE_LIMIT_PER_SECOND)
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=MIN_IN_FLIGHT, le=MAX_IN_FLIGHT)
    batch_config: BatchConfigIn | None = None
    retention: RetentionPolicy | None = Field(
        default=None, description="Left out: the tenant's `retention` (built-in DAYS_30)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class EndpointUpdate(RequestModel):
    """Fields to change; ``null`` clears an optional field (filter, transformation, retrySchedule,
    rateLimitPerSecond, batchConfig, description)."""

    url: str | None = Field(default=None, max_length=MAX_URL)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    channel: DeliveryChannel | None = None
    channel_config: dict[str, Any] | None = None
    event_types: list[str] | None = Field(default=None, max_length=MAX_SUBSCRIBED_TYPES)
    filter: dict[str, Any] | None = None
    transformation: str | None = Field(default=None, max_length=16_384)
    headers: dict[str, str] | None = None
    timeout_seconds: float | None = Field(default=None, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS)
    retry_schedule: list[int] | None = Field(default=None, max_length=MAX_RETRY_ENTRIES)
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=MAX_RATE_LIMIT_PER_SECOND)
    max_in_flight: int | None = Field(default=None, ge=MIN_IN_FLIGHT, le=MAX_IN_FLIGHT)
    batch_config: BatchConfigIn | None = None
    retention: RetentionPolicy | None = None
    metadata: dict[str, Any] | None = None


class EndpointDisable(RequestModel):
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class CircuitInfo(ApiModel):
    """The endpoint's circuit breaker (settings in the tenant's webhook config)."""

    state: Literal["CLOSED", "OPEN", "HALF_OPEN"] = Field(
        description="CLOSED: deliveries flow. OPEN: deliveries wait until `openUntil`, no attempt is "
        "made. HALF_OPEN: the next delivery (or the one in flight) is a probe; its success closes "
        "the circuit, its failure opens it again for twice as long."
    )
    open_until: datetime | None = Field(
        description="OPEN: when the cooldown ends. HALF_OPEN: until when the probe holds the endpoint."
    )
    opens: int = Field(description="Times the circuit opened since the endpoint's last success.")


class WebhookEndpointInfo(ApiModel):
    """An endpoint: where events go and how. Never its signing secret."""

    id: str
    tenant_id: str
    url: str = Field(
        description="The target; `mailto:` with the recipients for EMAIL endpoints. SLACK hook urls "
        "are credentials and shown redacted (`https://hooks.slack.com/services/T…/B…/[redacted]`)."
    )
    description: str | None
    channel: DeliveryChannel
    channel_config: dict[str, Any]
    event_types: list[str]
    filter: dict[str, Any] | None
    transformation: str | None
    headers: dict[str, str]
    timeout_seconds: float
    retry_schedule: list[int] | None
    rate_limit_per_second: float | None
    max_in_flight: int
    batch_config: BatchConfig | None
    retention: RetentionPolicy
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    circuit: CircuitInfo
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


REDACTED = "[redacted]"
_SENSITIVE_HEADER_HINTS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "key",
    "password",
    "pass",
    "auth",
    "credential",
    "signature",
    "session",
)


@functools.lru_cache(maxsize=4096)
def is_sensitive_header(name: str) -> bool:
    """True for header names whose values are credentials (shown and audited as ``[redacted]``).
    The verdict per name is cached: every recorded attempt and outbound call asks it per header."""
    lowered = name.lower()
    return any(hint in lowered for hint in _SENSITIVE_HEADER_HINTS)


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: REDACTED if is_sensitive_header(k) else v for k, v in headers.items()}


def endpoint_info(row: WebhookEndpoint) -> WebhookEndpointInfo:
    """The API view of an endpoint (credential-like header values and SLACK hook urls redacted)."""
    from interlink.webhooks.channels.slack import redact_url  # server side only: not on the SDK's path

    batch = row.batch_config
    return WebhookEndpointInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        url=redact_url(row.url) if row.channel is DeliveryChannel.SLACK else row.url,
        description=row.description,
        channel=row.channel,
        channel_config=dict(row.channel_config or {}),
        event_types=list(row.event_types or []),
        filter=row.filter,
        transformation=row.transformation,
        headers=redacted_headers(dict(row.headers or {})),
        timeout_seconds=row.timeout_seconds,
        retry_schedule=list(row.retry_schedule) if row.retry_schedule is not None else None,
        rate_limit_per_second=row.rate_limit_per_second,
        max_in_flight=row.max_in_flight,
        batch_config=BatchConfig.model_validate(batch) if batch else None,
        retention=row.retention,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        failing_since=row.failing_since,
        last_success_at=row.last_success_at,
        consecutive_failures=row.consecutive_failures,
        circuit=circuit_info(row),
        metadata=dict(row.meta or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def circuit_info(row: WebhookEndpoint) -> CircuitInfo:
    """The circuit as shown: an OPEN circuit whose cooldown is over is HALF_OPEN (the next delivery
    probes)."""
    state = row.circuit_state or "CLOSED"
    until = row.circuit_open_until
    if state == "OPEN" and until is not None and as_utc(until) <= utcnow():
        state = "HALF_OPEN"
    shown: Literal["CLOSED", "OPEN", "HALF_OPEN"] = (
        "OPEN" if state == "OPEN" else "HALF_OPEN" if state == "HALF_OPEN" else "CLOSED"
    )
    return CircuitInfo(state=shown, open_until=until, opens=row.circuit_opens or 0)


class EndpointSecret(ApiModel):
    """An endpoint's current signing secret (``whsec_...``). Returned only by the secret routes."""

    endpoint_id: str
    secret_id: str
    key: str = Field(description="The `whsec_` signing secret. Keep it private.")
    created_at: datetime
    previous_expires_at: datetime | None = Field(
        default=None,
        description="After a rotation: when the previous secret stops signing (both sign until then).",
    )


class TransformationTest(RequestModel):
    """A sample event to run through a transformation (``template``, else the endpoint's own)."""

    payload: dict[str, Any]
    event_type: str = Field(min_length=1, max_length=MAX_EVENT_TYPE_NAME)
    metadata: dict[str, Any] = Field(default_factory=dict)
    template: str | None = Field(default=None, max_length=16_384)


class TransformationTestResult(ApiModel):
    output: Any = Field(description="What the transformation made of the sample event.")


class EndpointTest(RequestModel):
    """A ``webhook.test`` ping. Without ``payload`` the event carries a short message and the endpoint id."""

    payload: dict[str, Any] | None = Field(
        default=None,
        description="The test event's data (checked against a registered `webhook.test` schema).",
    )


class EndpointTestResult(ApiModel):
    """The ping's event and delivery, and the outcome of its first attempt when one was made."""

    event_id: str
    delivery_id: str
    status: DeliveryStatus = Field(
        description="DELIVERED or RETRYING/FAILED after the attempt; PENDING when no attempt could be "
        "made now (the circuit is open, or a worker holds it) and the queue sends it."
    )
    succeeded: bool
    response_status: int | None
    error_class: str | None
    error_message: str | None
    duration_ms: float | None
    next_attempt_at: datetime | None = Field(description="RETRYING: when the queue tries again.")

"""Pydantic types of the outbound request log and its metrics (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from interlink.core.schemas import ApiModel


class ApiRequestTiming(ApiModel):
    """Timing of the call's last attempt, in milliseconds (null when it never reached the network)."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    first_byte_ms: float | None = Field(
        default=None, description="Start of the attempt to the response headers."
    )
    total_ms: float | None = Field(default=None, description="Start of the attempt to the end of the answer.")
    reused: bool = Field(default=False, description="Sent on a pooled connection: no DNS, connect or TLS.")


class ExternalApiRequestInfo(ApiModel):
    """One outbound call (the guide's ExternalApiRequest). Secrets never appear: credential-like
    query parameters and headers are `[redacted]`, bodies are the first 4 KB with credential-like
    JSON keys `[redacted]`."""

    id: str
    tenant_id: str
    connection_id: str | None
    provider_key: str | None
    operation: str | None
    method: str
    url: str
    status: int | None = Field(description="HTTP status of the last attempt; null when none answered.")
    error_class: str | None = Field(
        description="null for a 2xx/3xx answer; else timeout, dns, connect, tls, refused, http_4xx, "
        "http_5xx, rate_limited, circuit_open, budget_exhausted, cancelled or other."
    )
    error_message: str | None
    attempts: int
    timing: ApiRequestTiming
    duration_ms: float = Field(description="The whole call: retries, backoff and waits included.")
    request_headers: dict[str, str]
    response_headers: dict[str, str] | None
    request_body: str | None
    response_body: str | None
    request_bytes: int
    response_bytes: int | None
    correlation_id: str | None
    created_at: datetime = Field(description="When the call started.")


class ApiMetrics(ApiModel):
    """Calls made in a window ``[since, until)`` (the guide's ApiMetrics), for one connection, one
    provider, or the whole tenant."""

    tenant_id: str
    connection_id: str | None
    provider_key: str | None
    since: datetime
    until: datetime
    generated_at: datetime
    count: int = Field(description="Calls started in the window.")
    succeeded: int = Field(description="Calls that ended with a 2xx or 3xx answer.")
    failed: int
    success_rate: float | None = Field(description="succeeded / count; null without calls.")
    attempts: int = Field(description="Attempts made by those calls, retries included.")
    retries: int
    p50_ms: float | None = Field(
        description="Median call duration (ms; retries and waits included); continuous percentile "
        "(linear interpolation between the closest ranks); null without calls."
    )
    p95_ms: float | None
    p99_ms: float | None
    throughput_per_minute: float = Field(description="Calls per minute of the window that has elapsed.")
    errors_by_class: dict[str, int]
    circuit_state: str | None = Field(
        default=None, description="This process's circuit breaker state for the connection, when known."
    )

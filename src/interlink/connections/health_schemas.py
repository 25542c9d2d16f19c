"""REST and SDK shapes of connection health (the guide's IntegrationHealthCheck).

The score, statuses and windows are documented in :mod:`interlink.connections.health`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from interlink.connections.models import (
    CheckStatus,
    HealthCheckTrigger,
    IntegrationHealthCheck,
    IntegrationHealthStatus,
)
from interlink.core.schemas import ApiModel, UtcDatetime

if TYPE_CHECKING:  # the SDK imports these shapes: keep the probing service out of its imports
    from interlink.connections.health import HealthSummary


class HealthCheckItem(ApiModel):
    """One check: ``dns``, ``tcp``, ``tls`` (https only; SKIP for http) or ``http``."""

    name: str
    status: CheckStatus = Field(description="PASS, WARN, FAIL, or SKIP (not applicable or not reached).")
    duration: float = Field(description="Milliseconds.")
    message: str


class HealthConnectivity(ApiModel):
    dns_resolution: bool = Field(
        default=False, description="The host resolved to addresses outbound calls may reach."
    )
    tcp_connection: bool = False
    tls_handshake: bool | None = Field(
        default=None, description="A verified handshake with an unexpired certificate; null for http."
    )
    http_response: bool = Field(default=False, description="An HTTP answer came back (whatever its status).")
    http_status: int | None = None
    addresses: list[str] = Field(default_factory=list)
    target: str | None = Field(default=None, description="`host:port` of the API base URL.")


class HealthPerformance(ApiModel):
    """The connection's API calls in the last 24 h (the request log)."""

    average_response_time: float | None = Field(default=None, description="Mean call duration (ms).")
    throughput: float = Field(default=0.0, description="Calls per minute.")
    error_rate: float | None = Field(default=None, description="Failed / calls; null without calls.")
    availability: float | None = Field(
        default=None, description="Share of the last 24 h's checks that were not UNHEALTHY."
    )
    request_count: int = 0


class IntegrationHealthCheckInfo(ApiModel):
    """One health check of a connection."""

    id: str
    tenant_id: str
    connection_id: str
    status: IntegrationHealthStatus
    checked_at: UtcDatetime
    response_time: float | None = Field(description="The HTTP check's time to its answer (ms).")
    health_score: int = Field(ge=0, le=100, description="0–100; see docs/api.md, Connection health.")
    checks: list[HealthCheckItem]
    connectivity: HealthConnectivity
    performance: HealthPerformance
    tls_expires_at: UtcDatetime | None = None
    trigger: HealthCheckTrigger
    error: str | None = Field(default=None, description="The first failed check's message.")


class HealthAvailability(ApiModel):
    """Share of checks in each window whose status was not UNHEALTHY (null without checks)."""

    last_24_hours: float | None = None
    last_7_days: float | None = None
    last_30_days: float | None = None


class ConnectionHealth(ApiModel):
    """A connection's health: the last verdict, availability and performance."""

    connection_id: str
    status: IntegrationHealthStatus | None = Field(description="Null until the first check.")
    health_score: int | None = None
    last_checked_at: UtcDatetime | None = None
    next_check_at: UtcDatetime | None = Field(
        default=None, description="When the scheduled check is due (null: at the next run)."
    )
    last_check: IntegrationHealthCheckInfo | None = None
    availability: HealthAvailability
    performance: HealthPerformance


def health_check_info(row: IntegrationHealthCheck) -> IntegrationHealthCheckInfo:
    return IntegrationHealthCheckInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        connection_id=row.connection_id,
        status=row.status,
        checked_at=row.checked_at,
        response_time=row.response_time_ms,
        health_score=row.health_score,
        checks=[HealthCheckItem.model_validate(c) for c in row.checks or []],
        connectivity=HealthConnectivity.model_validate(row.connectivity or {}),
        performance=HealthPerformance.model_validate(row.performance or {}),
        tls_expires_at=row.tls_expires_at,
        trigger=row.trigger,
        error=row.error,
    )


def connection_health(summary: HealthSummary) -> ConnectionHealth:
    conn = summary.connection
    availability: dict[str, Any] = dict(summary.availability)
    return ConnectionHealth(
        connection_id=conn.id,
        status=conn.health_status,
        health_score=conn.health_score,
        last_checked_at=conn.last_health_check_at,
        next_check_at=conn.next_health_check_at,
        last_check=health_check_info(summary.last_check) if summary.last_check is not None else None,
        availability=HealthAvailability.model_validate(availability),
        performance=HealthPerformance.model_validate(summary.performance),
    )

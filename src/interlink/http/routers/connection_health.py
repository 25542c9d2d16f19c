"""``/v1/connections/{id}/health-checks`` and ``/v1/connections/{id}/health``: connection health.

Thin: probes, scoring and storage live in :mod:`interlink.connections.health`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from interlink.connections.health import HealthChecker
from interlink.connections.health_schemas import (
    ConnectionHealth,
    IntegrationHealthCheckInfo,
    connection_health,
    health_check_info,
)
from interlink.connections.models import HealthCheckTrigger
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/connections", tags=["connections"], responses=STANDARD_ERRORS)

ConnectionId = Path(max_length=64, description="A connection id (`conn_...`).")
CheckId = Path(max_length=64, description="A health check id (`hc_...`).")


def _checker(request: Request) -> HealthChecker:
    return HealthChecker(get_runtime(request))


@router.post(
    "/{connection_id}/health-checks",
    status_code=201,
    response_model=IntegrationHealthCheckInfo,
    responses=error_responses(409),
)
async def run_health_check(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> IntegrationHealthCheckInfo:
    """Check the connection now (DNS, TCP, TLS for https, HTTP) and store the result. A failing
    target is a stored UNHEALTHY check (201), not an error; a connection that cannot be called
    (DISABLED, REVOKED, never authorized) is a 409, before any network traffic."""
    row = await _checker(request).run(actor, connection_id, HealthCheckTrigger.MANUAL)
    return health_check_info(row)


@router.get("/{connection_id}/health-checks", response_model=PageOut[IntegrationHealthCheckInfo])
async def list_health_checks(
    request: Request,
    connection_id: str = ConnectionId,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> PageOut[IntegrationHealthCheckInfo]:
    """The connection's health checks, newest first (kept for the retention period)."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await _checker(request).history(session, actor, connection_id, PageRequest(limit, after))
    return PageOut[IntegrationHealthCheckInfo](
        data=[health_check_info(r) for r in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{connection_id}/health-checks/{check_id}", response_model=IntegrationHealthCheckInfo)
async def get_health_check(
    request: Request,
    connection_id: str = ConnectionId,
    check_id: str = CheckId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> IntegrationHealthCheckInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await _checker(request).get_check(session, actor, connection_id, check_id)
    return health_check_info(row)


@router.get("/{connection_id}/health", response_model=ConnectionHealth)
async def get_connection_health(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> ConnectionHealth:
    """The last verdict and score, availability over 24 h / 7 d / 30 d, and the last 24 h's API
    performance from the request log."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        summary = await _checker(request).summary(session, actor, connection_id)
    return connection_health(summary)

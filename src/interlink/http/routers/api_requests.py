"""``/v1/api-requests``: the outbound request log (ExternalApiRequest) and its metrics (ApiMetrics)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request

from interlink.connections.models import IntegrationConnection
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut, UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS
from interlink.outbound import metrics as outbound_metrics
from interlink.outbound import service as request_log
from interlink.outbound.schemas import ApiMetrics, ExternalApiRequestInfo

router = APIRouter(tags=["api-requests"], responses=STANDARD_ERRORS)

ConnectionFilter = Query(
    None, alias="connectionId", max_length=64, description="Only calls of this connection."
)
ProviderFilter = Query(None, alias="providerKey", max_length=100, description="Only calls to this provider.")


@router.get("/v1/api-requests", response_model=PageOut[ExternalApiRequestInfo])
async def list_api_requests(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    connection_id: str | None = ConnectionFilter,
    provider_key: str | None = ProviderFilter,
    status: int | None = Query(None, description="Only calls whose last answer had this HTTP status."),
    error_class: str | None = Query(
        None,
        alias="errorClass",
        max_length=40,
        description="Only calls that failed with this error class (`none`: only calls that succeeded).",
    ),
    since: UtcDatetime | None = Query(None, description="Started at or after."),
    until: UtcDatetime | None = Query(None, description="Started before."),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> PageOut[ExternalApiRequestInfo]:
    """Outbound calls of the tenant, newest first (URLs, headers and bodies redacted)."""
    flt = request_log.RequestFilter(connection_id, provider_key, status, error_class, since, until)
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await request_log.list_requests(session, actor.tenant_id, flt, PageRequest(limit, after))
    return PageOut[ExternalApiRequestInfo](
        data=[request_log.request_info(r) for r in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/v1/api-requests/metrics", response_model=ApiMetrics)
async def api_request_metrics(
    request: Request,
    connection_id: str | None = ConnectionFilter,
    provider_key: str | None = ProviderFilter,
    since: UtcDatetime | None = Query(None, description="Window start (default: 24 hours before until)."),
    until: UtcDatetime | None = Query(None, description="Window end (default: now)."),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> ApiMetrics:
    """ApiMetrics of the tenant's outbound calls started in the window, for the whole tenant, one
    connection or one provider: count, success rate, p50/p95/p99, throughput, errors by class.
    ``circuitState`` only for a connection of the tenant (another tenant's breaker is not shown)."""
    runtime = get_runtime(request)
    circuit = None
    snapshot = runtime.outbound.circuit(connection_id) if connection_id is not None else None
    async with runtime.db.unit_of_work(write=False) as session:
        if snapshot is not None and await session.scalar(
            sa.select(IntegrationConnection.id).where(
                IntegrationConnection.tenant_id == actor.tenant_id, IntegrationConnection.id == connection_id
            )
        ):
            circuit = snapshot.state
        return await outbound_metrics.api_metrics(
            session,
            actor.tenant_id,
            connection_id=connection_id,
            provider_key=provider_key,
            since=since,
            until=until,
            circuit_state=circuit,
        )


@router.get("/v1/api-requests/{request_id}", response_model=ExternalApiRequestInfo)
async def get_api_request(
    request: Request,
    request_id: str = Path(max_length=64, description="An API request id (`apr_...`)."),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> ExternalApiRequestInfo:
    """One outbound call with its (redacted) headers and bodies."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await request_log.get_request(session, actor.tenant_id, request_id)
    return request_log.request_info(row)

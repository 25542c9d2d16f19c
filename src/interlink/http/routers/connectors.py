"""``/v1/connectors`` (what each connector offers) and records through a connection
(``/v1/connections/{id}/resources/{resource}``).

Thin: connectors live in :mod:`interlink.connectors`, record operations in
:mod:`interlink.connectors.records`. The connector list is service-wide reference data (any valid
key); records need ``connections:read`` (list, get) or ``connections:write`` (create, update,
delete, audited).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from interlink.connections.schemas import PROVIDER_KEY_PATTERN
from interlink.connectors.base import ConnectorList, IntegrationConnectorInfo, Record, RecordList, RecordOut
from interlink.connectors.records import ConnectorRecords
from interlink.connectors.registry import registry_for
from interlink.connectors.spec import RESOURCE_NAME_PATTERN
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import NotFound
from interlink.core.schemas import UtcDatetime
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/connectors", tags=["connectors"], responses=STANDARD_ERRORS)
_RECORD_ERRORS = error_responses(404, 409, 502, 503, 504)
_RECORD_ERRORS[405] = {
    **_RECORD_ERRORS[404],
    "description": "The resource does not offer this operation (`allowed` lists those it does)",
}
records_router = APIRouter(
    prefix="/v1/connections/{connection_id}/resources",
    tags=["connectors"],
    responses={**STANDARD_ERRORS, **_RECORD_ERRORS},
)

ConnectionId = Path(max_length=64, description="A connection id (`conn_...`).")
Resource = Path(pattern=RESOURCE_NAME_PATTERN, description="A resource of the connection's connector.")
RecordId = Path(min_length=1, max_length=255, description="The record's id at the provider.")


def _record(record: Record) -> RecordOut:
    return RecordOut(id=record.id, updated_at=record.updated_at, data=record.data)


def _records(request: Request) -> ConnectorRecords:
    return ConnectorRecords.from_runtime(get_runtime(request))


@router.get("", response_model=ConnectorList, responses=error_responses(503))
async def list_connectors(
    request: Request,
    provider: str | None = Query(
        None, pattern=PROVIDER_KEY_PATTERN, description="Only connectors serving this provider key."
    ),
    _actor: Actor = Depends(require(None)),
) -> ConnectorList:
    """Every connector (built in and the operator's), sorted by key."""
    return ConnectorList(data=registry_for(get_runtime(request)).infos(provider))


@router.get("/{key}", response_model=IntegrationConnectorInfo, responses=error_responses(404, 503))
async def get_connector(
    request: Request,
    key: str = Path(max_length=100),
    _actor: Actor = Depends(require(None)),
) -> IntegrationConnectorInfo:
    """One connector: its providers, resources, operations, pagination and incremental support."""
    connector = registry_for(get_runtime(request)).get(key)
    if connector is None:
        raise NotFound(f"connector {key!r} does not exist")
    return connector.info()


@records_router.get("/{resource}", response_model=RecordList)
async def list_records(
    request: Request,
    connection_id: str = ConnectionId,
    resource: str = Resource,
    cursor: str | None = Query(None, max_length=8192, description="The `nextCursor` of the last page."),
    since: UtcDatetime | None = Query(
        None, description="Only records changed at or after this time (resources with `incremental`)."
    ),
    limit: int | None = Query(
        None, ge=1, le=1000, description="Page size (the connector's default when absent)."
    ),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> RecordList:
    """One page of the resource's records, in the provider's order."""
    page = await _records(request).list(
        actor, connection_id, resource, cursor=cursor, since=since, limit=limit
    )
    return RecordList(
        data=[_record(r) for r in page.records],
        has_more=page.next_cursor is not None,
        next_cursor=page.next_cursor,
        truncated=page.truncated,
    )


@records_router.get("/{resource}/{record_id}", response_model=RecordOut)
async def get_record(
    request: Request,
    connection_id: str = ConnectionId,
    resource: str = Resource,
    record_id: str = RecordId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> RecordOut:
    return _record(await _records(request).get(actor, connection_id, resource, record_id))


@records_router.post("/{resource}", status_code=201, response_model=RecordOut)
async def create_record(
    request: Request,
    body: dict[str, Any] = Body(description="The record's fields, as the provider names them."),
    connection_id: str = ConnectionId,
    resource: str = Resource,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> RecordOut:
    return _record(await _records(request).create(actor, connection_id, resource, body))


@records_router.patch("/{resource}/{record_id}", response_model=RecordOut)
async def update_record(
    request: Request,
    body: dict[str, Any] = Body(description="The fields to change, as the provider names them."),
    connection_id: str = ConnectionId,
    resource: str = Resource,
    record_id: str = RecordId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> RecordOut:
    return _record(await _records(request).update(actor, connection_id, resource, record_id, body))


@records_router.delete("/{resource}/{record_id}", status_code=204, response_class=Response)
async def delete_record(
    request: Request,
    connection_id: str = ConnectionId,
    resource: str = Resource,
    record_id: str = RecordId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> Response:
    await _records(request).delete(actor, connection_id, resource, record_id)
    return Response(status_code=204)

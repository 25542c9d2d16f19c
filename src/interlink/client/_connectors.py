"""SDK resource for ``/v1/connectors`` and records through a connection (blocking and asyncio).

``client.connectors`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`: ``list``/``get`` describe connectors
(:class:`~interlink.connectors.base.IntegrationConnectorInfo`); ``list_records``,
``iter_records``, ``get_record``, ``create_record``, ``update_record`` and ``delete_record``
work on a connection's records (:class:`~interlink.connectors.base.RecordOut`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from interlink.client._base import (
    AsyncResource,
    Call,
    Paged,
    SyncResource,
    apaginate,
    call,
    empty_call,
    item_path,
    paginate,
    parse,
    query,
    segment,
)
from interlink.connectors.base import ConnectorList, IntegrationConnectorInfo, RecordList, RecordOut

__all__ = ["AsyncConnectors", "Connectors", "IntegrationConnectorInfo", "RecordList", "RecordOut"]


def _records_path(connection_id: str, resource: str, record_id: str | None = None) -> str:
    path = f"/v1/connections/{segment(connection_id)}/resources/{segment(resource)}"
    return path if record_id is None else f"{path}/{segment(record_id)}"


def _record_params(cursor: str | None, since: datetime | None, limit: int | None) -> dict[str, str | int]:
    return query({"cursor": cursor, "since": since, "limit": limit})


def _connectors(response: httpx.Response) -> list[IntegrationConnectorInfo]:
    return parse(ConnectorList, response).data


def _list_call(provider: str | None) -> Call[list[IntegrationConnectorInfo]]:
    """Every connector sorted by key, or those serving ``provider``."""
    return Call("GET", "/v1/connectors", _connectors, params=query({"provider": provider}))


def _next_records(page: Paged[RecordOut]) -> str | None:
    """Records are read until the service gives no next cursor."""
    return page.next_cursor


class Connectors(SyncResource):
    """``/v1/connectors`` and ``/v1/connections/{id}/resources``."""

    def list(self, *, provider: str | None = None) -> list[IntegrationConnectorInfo]:
        """Every connector sorted by key, or those serving ``provider``."""
        return self._send(_list_call(provider))

    def get(self, key: str) -> IntegrationConnectorInfo:
        """One connector (``NotFoundError`` when there is none with that key)."""
        return self._send(call(IntegrationConnectorInfo, "GET", item_path("/v1/connectors", key)))

    def list_records(
        self,
        connection_id: str,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        tenant_id: str | None = None,
    ) -> RecordList:
        """One page of records; pass ``next_cursor`` back as ``cursor``."""
        path, params = _records_path(connection_id, resource), _record_params(cursor, since, limit)
        return self._send(call(RecordList, "GET", path, params=params, tenant_id=tenant_id))

    def iter_records(
        self,
        connection_id: str,
        resource: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        tenant_id: str | None = None,
    ) -> Iterator[RecordOut]:
        """Every record, fetching pages as needed."""
        return paginate(lambda cursor: self.list_records(
            connection_id, resource, cursor=cursor, since=since, limit=limit, tenant_id=tenant_id
        ), _next_records)  # fmt: skip

    def get_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return self._send(call(RecordOut, "GET", path, tenant_id=tenant_id))

    def create_record(
        self, connection_id: str, resource: str, data: Mapping[str, Any], *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource)
        return self._send(call(RecordOut, "POST", path, json=dict(data), tenant_id=tenant_id))

    def update_record(
        self,
        connection_id: str,
        resource: str,
        record_id: str,
        data: Mapping[str, Any],
        *,
        tenant_id: str | None = None,
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return self._send(call(RecordOut, "PATCH", path, json=dict(data), tenant_id=tenant_id))

    def delete_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> None:
        self._send(empty_call("DELETE", _records_path(connection_id, resource, record_id), tenant_id))


class AsyncConnectors(AsyncResource):
    """``/v1/connectors`` and ``/v1/connections/{id}/resources`` with ``await``."""

    async def list(self, *, provider: str | None = None) -> list[IntegrationConnectorInfo]:
        """Every connector sorted by key, or those serving ``provider``."""
        return await self._send(_list_call(provider))

    async def get(self, key: str) -> IntegrationConnectorInfo:
        """One connector (``NotFoundError`` when there is none with that key)."""
        return await self._send(call(IntegrationConnectorInfo, "GET", item_path("/v1/connectors", key)))

    async def list_records(
        self,
        connection_id: str,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        tenant_id: str | None = None,
    ) -> RecordList:
        """One page of records; pass ``next_cursor`` back as ``cursor``."""
        path, params = _records_path(connection_id, resource), _record_params(cursor, since, limit)
        return await self._send(call(RecordList, "GET", path, params=params, tenant_id=tenant_id))

    def iter_records(
        self,
        connection_id: str,
        resource: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        tenant_id: str | None = None,
    ) -> AsyncIterator[RecordOut]:
        """Every record, fetching pages as needed (``async for``)."""
        return apaginate(lambda cursor: self.list_records(
            connection_id, resource, cursor=cursor, since=since, limit=limit, tenant_id=tenant_id
        ), _next_records)  # fmt: skip

    async def get_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return await self._send(call(RecordOut, "GET", path, tenant_id=tenant_id))

    async def create_record(
        self, connection_id: str, resource: str, data: Mapping[str, Any], *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource)
        return await self._send(call(RecordOut, "POST", path, json=dict(data), tenant_id=tenant_id))

    async def update_record(
        self,
        connection_id: str,
        resource: str,
        record_id: str,
        data: Mapping[str, Any],
        *,
        tenant_id: str | None = None,
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return await self._send(call(RecordOut, "PATCH", path, json=dict(data), tenant_id=tenant_id))

    async def delete_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> None:
        await self._send(empty_call("DELETE", _records_path(connection_id, resource, record_id), tenant_id))

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

from interlink.client._base import AsyncRequester, SyncRequester, parse, query, segment
from interlink.connectors.base import ConnectorList, IntegrationConnectorInfo, RecordList, RecordOut

__all__ = ["AsyncConnectors", "Connectors", "IntegrationConnectorInfo", "RecordList", "RecordOut"]


def _records_path(connection_id: str, resource: str, record_id: str | None = None) -> str:
    path = f"/v1/connections/{segment(connection_id)}/resources/{segment(resource)}"
    return path if record_id is None else f"{path}/{segment(record_id)}"


def _record_params(cursor: str | None, since: datetime | None, limit: int | None) -> dict[str, str | int]:
    return query({"cursor": cursor, "since": since, "limit": limit})


class Connectors:
    """``/v1/connectors`` and ``/v1/connections/{id}/resources``."""

    def __init__(self, client: SyncRequester) -> None:
        self._c = client

    def list(self, *, provider: str | None = None) -> list[IntegrationConnectorInfo]:
        """Every connector sorted by key, or those serving ``provider``."""
        response = self._c._request("GET", "/v1/connectors", params=query({"provider": provider}))
        return parse(ConnectorList, response).data

    def get(self, key: str) -> IntegrationConnectorInfo:
        """One connector (``NotFoundError`` when there is none with that key)."""
        return parse(IntegrationConnectorInfo, self._c._request("GET", f"/v1/connectors/{segment(key)}"))

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
        params = _record_params(cursor, since, limit)
        response = self._c._request(
            "GET", _records_path(connection_id, resource), params=params, tenant_id=tenant_id
        )
        return parse(RecordList, response)

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
        cursor: str | None = None
        while True:
            page = self.list_records(
                connection_id, resource, cursor=cursor, since=since, limit=limit, tenant_id=tenant_id
            )
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return parse(RecordOut, self._c._request("GET", path, tenant_id=tenant_id))

    def create_record(
        self, connection_id: str, resource: str, data: Mapping[str, Any], *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource)
        return parse(RecordOut, self._c._request("POST", path, json=dict(data), tenant_id=tenant_id))

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
        return parse(RecordOut, self._c._request("PATCH", path, json=dict(data), tenant_id=tenant_id))

    def delete_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> None:
        self._c._request("DELETE", _records_path(connection_id, resource, record_id), tenant_id=tenant_id)


class AsyncConnectors:
    """``/v1/connectors`` and ``/v1/connections/{id}/resources`` with ``await``."""

    def __init__(self, client: AsyncRequester) -> None:
        self._c = client

    async def list(self, *, provider: str | None = None) -> list[IntegrationConnectorInfo]:
        response = await self._c._request("GET", "/v1/connectors", params=query({"provider": provider}))
        return parse(ConnectorList, response).data

    async def get(self, key: str) -> IntegrationConnectorInfo:
        response = await self._c._request("GET", f"/v1/connectors/{segment(key)}")
        return parse(IntegrationConnectorInfo, response)

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
        params = _record_params(cursor, since, limit)
        response = await self._c._request(
            "GET", _records_path(connection_id, resource), params=params, tenant_id=tenant_id
        )
        return parse(RecordList, response)

    async def iter_records(
        self,
        connection_id: str,
        resource: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        tenant_id: str | None = None,
    ) -> AsyncIterator[RecordOut]:
        cursor: str | None = None
        while True:
            page = await self.list_records(
                connection_id, resource, cursor=cursor, since=since, limit=limit, tenant_id=tenant_id
            )
            for item in page.data:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource, record_id)
        return parse(RecordOut, await self._c._request("GET", path, tenant_id=tenant_id))

    async def create_record(
        self, connection_id: str, resource: str, data: Mapping[str, Any], *, tenant_id: str | None = None
    ) -> RecordOut:
        path = _records_path(connection_id, resource)
        return parse(RecordOut, await self._c._request("POST", path, json=dict(data), tenant_id=tenant_id))

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
        return parse(RecordOut, await self._c._request("PATCH", path, json=dict(data), tenant_id=tenant_id))

    async def delete_record(
        self, connection_id: str, resource: str, record_id: str, *, tenant_id: str | None = None
    ) -> None:
        path = _records_path(connection_id, resource, record_id)
        await self._c._request("DELETE", path, tenant_id=tenant_id)

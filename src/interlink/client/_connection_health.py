"""SDK resource for connection health (blocking and asyncio): ``client.connection_health``.

``run`` checks a connection now (``POST /v1/connections/{id}/health-checks``); ``list`` and
``iter_all`` page through its history, newest first; ``get`` reads one check; ``summary`` is
``GET /v1/connections/{id}/health`` (status, score, availability over 24 h / 7 d / 30 d,
performance). The score and statuses are documented in docs/api.md (Connection health).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from interlink.client._base import AsyncRequester, SyncRequester, parse, parse_page, query, segment
from interlink.client.models import Page
from interlink.connections.health_schemas import ConnectionHealth, IntegrationHealthCheckInfo

__all__ = [
    "AsyncConnectionHealthChecks",
    "ConnectionHealth",
    "ConnectionHealthChecks",
    "IntegrationHealthCheckInfo",
]


def _path(connection_id: str, rest: str = "health-checks") -> str:
    return f"/v1/connections/{segment(connection_id)}/{rest}"


class ConnectionHealthChecks:
    """Connection health checks: run, list, get, summary."""

    def __init__(self, client: SyncRequester) -> None:
        self._c = client

    def run(self, connection_id: str, *, tenant_id: str | None = None) -> IntegrationHealthCheckInfo:
        """Check the connection now; a failing target is an UNHEALTHY result, not an error."""
        response = self._c._request("POST", _path(connection_id), tenant_id=tenant_id)
        return parse(IntegrationHealthCheckInfo, response)

    def list(
        self, connection_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[IntegrationHealthCheckInfo]:
        """One page of the connection's checks, newest first."""
        params = query({"limit": limit, "after": after})
        response = self._c._request("GET", _path(connection_id), params=params, tenant_id=tenant_id)
        return parse_page(IntegrationHealthCheckInfo, response)

    def iter_all(
        self, connection_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[IntegrationHealthCheckInfo]:
        after: str | None = None
        while True:
            page = self.list(connection_id, limit=page_size, after=after, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(
        self, connection_id: str, check_id: str, *, tenant_id: str | None = None
    ) -> IntegrationHealthCheckInfo:
        path = f"{_path(connection_id)}/{segment(check_id)}"
        return parse(IntegrationHealthCheckInfo, self._c._request("GET", path, tenant_id=tenant_id))

    def summary(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionHealth:
        """Status, score, last check, availability and performance."""
        response = self._c._request("GET", _path(connection_id, "health"), tenant_id=tenant_id)
        return parse(ConnectionHealth, response)


class AsyncConnectionHealthChecks:
    """Connection health checks with ``await``."""

    def __init__(self, client: AsyncRequester) -> None:
        self._c = client

    async def run(self, connection_id: str, *, tenant_id: str | None = None) -> IntegrationHealthCheckInfo:
        response = await self._c._request("POST", _path(connection_id), tenant_id=tenant_id)
        return parse(IntegrationHealthCheckInfo, response)

    async def list(
        self, connection_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[IntegrationHealthCheckInfo]:
        params = query({"limit": limit, "after": after})
        response = await self._c._request("GET", _path(connection_id), params=params, tenant_id=tenant_id)
        return parse_page(IntegrationHealthCheckInfo, response)

    async def iter_all(
        self, connection_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[IntegrationHealthCheckInfo]:
        after: str | None = None
        while True:
            page = await self.list(connection_id, limit=page_size, after=after, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(
        self, connection_id: str, check_id: str, *, tenant_id: str | None = None
    ) -> IntegrationHealthCheckInfo:
        path = f"{_path(connection_id)}/{segment(check_id)}"
        return parse(IntegrationHealthCheckInfo, await self._c._request("GET", path, tenant_id=tenant_id))

    async def summary(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionHealth:
        response = await self._c._request("GET", _path(connection_id, "health"), tenant_id=tenant_id)
        return parse(ConnectionHealth, response)

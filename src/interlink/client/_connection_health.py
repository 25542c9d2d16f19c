"""SDK resource for connection health (blocking and asyncio): ``client.connection_health``.

``run`` checks a connection now (``POST /v1/connections/{id}/health-checks``); ``list`` and
``iter_all`` page through its history, newest first; ``get`` reads one check; ``summary`` is
``GET /v1/connections/{id}/health`` (status, score, availability over 24 h / 7 d / 30 d,
performance). The score and statuses are documented in docs/api.md (Connection health).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from interlink.client._base import (
    AsyncResource,
    SyncResource,
    apaginate,
    call,
    item_path,
    page_call,
    paginate,
    query,
    segment,
)
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


class ConnectionHealthChecks(SyncResource):
    """Connection health checks: run, list, get, summary."""

    def run(self, connection_id: str, *, tenant_id: str | None = None) -> IntegrationHealthCheckInfo:
        """Check the connection now; a failing target is an UNHEALTHY result, not an error."""
        return self._send(call(IntegrationHealthCheckInfo, "POST", _path(connection_id), tenant_id=tenant_id))

    def list(
        self, connection_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[IntegrationHealthCheckInfo]:
        """One page of the connection's checks, newest first."""
        params = query({"limit": limit, "after": after})
        return self._send(page_call(IntegrationHealthCheckInfo, _path(connection_id), params, tenant_id))

    def iter_all(
        self, connection_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> Iterator[IntegrationHealthCheckInfo]:
        """Every check of the connection, newest first, fetching pages as needed."""
        return paginate(
            lambda after: self.list(connection_id, limit=page_size, after=after, tenant_id=tenant_id)
        )

    def get(
        self, connection_id: str, check_id: str, *, tenant_id: str | None = None
    ) -> IntegrationHealthCheckInfo:
        path = item_path(_path(connection_id), check_id)
        return self._send(call(IntegrationHealthCheckInfo, "GET", path, tenant_id=tenant_id))

    def summary(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionHealth:
        """Status, score, last check, availability and performance."""
        return self._send(call(ConnectionHealth, "GET", _path(connection_id, "health"), tenant_id=tenant_id))


class AsyncConnectionHealthChecks(AsyncResource):
    """Connection health checks with ``await``."""

    async def run(self, connection_id: str, *, tenant_id: str | None = None) -> IntegrationHealthCheckInfo:
        """Check the connection now; a failing target is an UNHEALTHY result, not an error."""
        return await self._send(
            call(IntegrationHealthCheckInfo, "POST", _path(connection_id), tenant_id=tenant_id)
        )

    async def list(
        self, connection_id: str, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[IntegrationHealthCheckInfo]:
        """One page of the connection's checks, newest first."""
        params = query({"limit": limit, "after": after})
        return await self._send(
            page_call(IntegrationHealthCheckInfo, _path(connection_id), params, tenant_id)
        )

    def iter_all(
        self, connection_id: str, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[IntegrationHealthCheckInfo]:
        """Every check of the connection, newest first, fetching pages as needed (``async for``)."""
        return apaginate(
            lambda after: self.list(connection_id, limit=page_size, after=after, tenant_id=tenant_id)
        )

    async def get(
        self, connection_id: str, check_id: str, *, tenant_id: str | None = None
    ) -> IntegrationHealthCheckInfo:
        path = item_path(_path(connection_id), check_id)
        return await self._send(call(IntegrationHealthCheckInfo, "GET", path, tenant_id=tenant_id))

    async def summary(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionHealth:
        """Status, score, last check, availability and performance."""
        return await self._send(
            call(ConnectionHealth, "GET", _path(connection_id, "health"), tenant_id=tenant_id)
        )

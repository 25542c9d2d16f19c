"""SDK resource for ``/v1/connections`` (blocking and asyncio): a tenant's connections to providers.

``client.connections`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Credentials are sent on create/update and never
come back: answers are :class:`~interlink.connections.connection_schemas.ConnectionInfo`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from interlink.client._base import (
    NOT_GIVEN,
    AsyncRequester,
    NotGiven,
    SyncRequester,
    body,
    parse,
    parse_page,
    query,
    segment,
)
from interlink.client.models import Page
from interlink.connections.connection_schemas import (
    AuthorizeUrl,
    ConnectionInfo,
    ConnectionValidation,
    ProxyAnswer,
)
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus, IntegrationEnvironment

__all__ = [
    "AsyncConnections",
    "AuthorizeUrl",
    "ConnectionInfo",
    "ConnectionValidation",
    "Connections",
    "ProxyAnswer",
]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


_Sync = SyncRequester
_Async = AsyncRequester


def _create_body(
    provider_key: str,
    name: str,
    environment: IntegrationEnvironment | str,
    config: dict[str, Any] | None,
    auth_type: AuthenticationType | str | None,
    credentials: dict[str, str] | None,
    scopes: list[str] | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    return body(
        {
            "providerKey": provider_key,
            "name": name,
            "environment": str(
                environment.value if isinstance(environment, IntegrationEnvironment) else environment
            ),
            "config": config,
            "authType": auth_type.value if isinstance(auth_type, AuthenticationType) else auth_type,
            "credentials": credentials,
            "scopes": scopes,
            "metadata": metadata,
        },
        drop_none=True,
    )


def _list_params(
    limit: int,
    after: str | None,
    provider_key: str | None,
    environment: IntegrationEnvironment | str | None,
    status: IntegrationConnectionStatus | str | None,
    auth_type: AuthenticationType | str | None,
) -> dict[str, str | int]:
    return query(
        {
            "limit": limit,
            "after": after,
            "providerKey": provider_key,
            "environment": environment,
            "status": status,
            "authType": auth_type,
        }
    )


def _proxy_call(
    method: str,
    path: str,
    query_params: dict[str, Any] | None,
    headers: dict[str, str] | None,
    json_body: Any,
    form: dict[str, Any] | None,
    idempotency_key: str | None,
    max_attempts: int | None,
    timeout_seconds: float | None,
) -> tuple[dict[str, Any], bool]:
    """The proxy request body, and whether re-sending it is safe (idempotent method or keyed)."""
    payload = body(
        {
            "method": method.upper(),
            "path": path,
            "query": query_params,
            "headers": headers,
            "form": form,
            "idempotencyKey": idempotency_key,
            "maxAttempts": max_attempts,
            "timeoutSeconds": timeout_seconds,
        },
        drop_none=True,
    )
    if not isinstance(json_body, NotGiven):
        payload["body"] = json_body
    return payload, method.upper() in _IDEMPOTENT_METHODS or idempotency_key is not None


def _update_body(**fields: Any) -> dict[str, Any]:
    names = {"status": "status", "name": "name", "config": "config", "credentials": "credentials"}
    names.update({"scopes": "scopes", "metadata": "metadata"})
    return body({names[k]: v for k, v in fields.items()}, drop_none=False)


class Connections:
    """``/v1/connections``: create, validate, list, get, update, delete; the OAuth2 authorize URL."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def create(
        self,
        *,
        provider_key: str,
        name: str,
        environment: IntegrationEnvironment | str = IntegrationEnvironment.PRODUCTION,
        config: dict[str, Any] | None = None,
        auth_type: AuthenticationType | str | None = None,
        credentials: dict[str, str] | None = None,
        scopes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> ConnectionInfo:
        """Create a connection (``ValidationError`` names the field; ``ConflictError`` for a taken name)."""
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        return parse(
            ConnectionInfo, self._c._request("POST", "/v1/connections", json=payload, tenant_id=tenant_id)
        )

    def validate(
        self,
        *,
        provider_key: str,
        name: str,
        environment: IntegrationEnvironment | str = IntegrationEnvironment.PRODUCTION,
        config: dict[str, Any] | None = None,
        auth_type: AuthenticationType | str | None = None,
        credentials: dict[str, str] | None = None,
        scopes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> ConnectionValidation:
        """Check a create request without saving anything."""
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        response = self._c._request("POST", "/v1/connections/validate", json=payload, tenant_id=tenant_id)
        return parse(ConnectionValidation, response)

    def list(
        self,
        *,
        provider_key: str | None = None,
        environment: IntegrationEnvironment | str | None = None,
        status: IntegrationConnectionStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        limit: int = 50,
        after: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[ConnectionInfo]:
        """One page of connections, newest first."""
        params = _list_params(limit, after, provider_key, environment, status, auth_type)
        response = self._c._request("GET", "/v1/connections", params=params, tenant_id=tenant_id)
        return parse_page(ConnectionInfo, response)

    def iter_all(
        self,
        *,
        provider_key: str | None = None,
        environment: IntegrationEnvironment | str | None = None,
        status: IntegrationConnectionStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[ConnectionInfo]:
        after: str | None = None
        while True:
            page = self.list(
                provider_key=provider_key, environment=environment, status=status, auth_type=auth_type,
                limit=page_size, after=after, tenant_id=tenant_id,
            )  # fmt: skip
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def get(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        response = self._c._request("GET", f"/v1/connections/{segment(connection_id)}", tenant_id=tenant_id)
        return parse(ConnectionInfo, response)

    def update(
        self,
        connection_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        config: dict[str, Any] | NotGiven = NOT_GIVEN,
        credentials: dict[str, str] | NotGiven = NOT_GIVEN,
        scopes: Sequence[str] | NotGiven | None = NOT_GIVEN,
        metadata: dict[str, Any] | NotGiven | None = NOT_GIVEN,
        status: IntegrationConnectionStatus | str | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> ConnectionInfo:
        """Change fields; ``status`` may be ACTIVE, DISABLED or REVOKED (``ConflictError`` otherwise)."""
        payload = _update_body(
            name=name, config=config, credentials=credentials, scopes=scopes, metadata=metadata, status=status
        )
        response = self._c._request(
            "PATCH", f"/v1/connections/{segment(connection_id)}", json=payload, tenant_id=tenant_id
        )
        return parse(ConnectionInfo, response)

    def delete(self, connection_id: str, *, tenant_id: str | None = None) -> None:
        """Delete the connection and its stored credentials and tokens."""
        self._c._request("DELETE", f"/v1/connections/{segment(connection_id)}", tenant_id=tenant_id)

    def authorize_url(self, connection_id: str, *, tenant_id: str | None = None) -> AuthorizeUrl:
        """The provider's authorize URL for an OAUTH2_AUTHORIZATION_CODE connection."""
        path = f"/v1/connections/{segment(connection_id)}/oauth/authorize-url"
        return parse(AuthorizeUrl, self._c._request("GET", path, tenant_id=tenant_id))

    def proxy(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = NOT_GIVEN,
        form: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        tenant_id: str | None = None,
    ) -> ProxyAnswer:
        """Call the provider through the connection (credentials injected by Interlink). Any
        answer of the provider comes back as :class:`ProxyAnswer` (``status`` is the provider's);
        no answer raises an ``ApiError`` with status 502, 503 or 504."""
        payload, safe = _proxy_call(
            method, path, query, headers, json, form, idempotency_key, max_attempts, timeout_seconds
        )
        response = self._c._request(
            "POST",
            f"/v1/connections/{segment(connection_id)}/proxy",
            json=payload,
            tenant_id=tenant_id,
            retry_safe=safe,
        )
        return parse(ProxyAnswer, response)


class AsyncConnections:
    """``/v1/connections`` with ``await``."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def create(
        self,
        *,
        provider_key: str,
        name: str,
        environment: IntegrationEnvironment | str = IntegrationEnvironment.PRODUCTION,
        config: dict[str, Any] | None = None,
        auth_type: AuthenticationType | str | None = None,
        credentials: dict[str, str] | None = None,
        scopes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> ConnectionInfo:
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        response = await self._c._request("POST", "/v1/connections", json=payload, tenant_id=tenant_id)
        return parse(ConnectionInfo, response)

    async def validate(
        self,
        *,
        provider_key: str,
        name: str,
        environment: IntegrationEnvironment | str = IntegrationEnvironment.PRODUCTION,
        config: dict[str, Any] | None = None,
        auth_type: AuthenticationType | str | None = None,
        credentials: dict[str, str] | None = None,
        scopes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> ConnectionValidation:
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        response = await self._c._request(
            "POST", "/v1/connections/validate", json=payload, tenant_id=tenant_id
        )
        return parse(ConnectionValidation, response)

    async def list(
        self,
        *,
        provider_key: str | None = None,
        environment: IntegrationEnvironment | str | None = None,
        status: IntegrationConnectionStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        limit: int = 50,
        after: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[ConnectionInfo]:
        params = _list_params(limit, after, provider_key, environment, status, auth_type)
        response = await self._c._request("GET", "/v1/connections", params=params, tenant_id=tenant_id)
        return parse_page(ConnectionInfo, response)

    async def iter_all(
        self,
        *,
        provider_key: str | None = None,
        environment: IntegrationEnvironment | str | None = None,
        status: IntegrationConnectionStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> AsyncIterator[ConnectionInfo]:
        after: str | None = None
        while True:
            page = await self.list(
                provider_key=provider_key, environment=environment, status=status, auth_type=auth_type,
                limit=page_size, after=after, tenant_id=tenant_id,
            )  # fmt: skip
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def get(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        response = await self._c._request(
            "GET", f"/v1/connections/{segment(connection_id)}", tenant_id=tenant_id
        )
        return parse(ConnectionInfo, response)

    async def update(
        self,
        connection_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        config: dict[str, Any] | NotGiven = NOT_GIVEN,
        credentials: dict[str, str] | NotGiven = NOT_GIVEN,
        scopes: Sequence[str] | NotGiven | None = NOT_GIVEN,
        metadata: dict[str, Any] | NotGiven | None = NOT_GIVEN,
        status: IntegrationConnectionStatus | str | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> ConnectionInfo:
        payload = _update_body(
            name=name, config=config, credentials=credentials, scopes=scopes, metadata=metadata, status=status
        )
        response = await self._c._request(
            "PATCH", f"/v1/connections/{segment(connection_id)}", json=payload, tenant_id=tenant_id
        )
        return parse(ConnectionInfo, response)

    async def delete(self, connection_id: str, *, tenant_id: str | None = None) -> None:
        await self._c._request("DELETE", f"/v1/connections/{segment(connection_id)}", tenant_id=tenant_id)

    async def authorize_url(self, connection_id: str, *, tenant_id: str | None = None) -> AuthorizeUrl:
        path = f"/v1/connections/{segment(connection_id)}/oauth/authorize-url"
        return parse(AuthorizeUrl, await self._c._request("GET", path, tenant_id=tenant_id))

    async def proxy(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = NOT_GIVEN,
        form: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        tenant_id: str | None = None,
    ) -> ProxyAnswer:
        payload, safe = _proxy_call(
            method, path, query, headers, json, form, idempotency_key, max_attempts, timeout_seconds
        )
        response = await self._c._request(
            "POST",
            f"/v1/connections/{segment(connection_id)}/proxy",
            json=payload,
            tenant_id=tenant_id,
            retry_safe=safe,
        )
        return parse(ProxyAnswer, response)

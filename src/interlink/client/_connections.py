"""SDK resource for ``/v1/connections`` (blocking and asyncio): a tenant's connections to providers.

``client.connections`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Credentials are sent on create/update and never
come back: answers are :class:`~interlink.connections.connection_schemas.ConnectionInfo`.
Calls to the provider go through ``proxy`` (the JSON envelope) or ``forward`` (the passthrough
form: the provider's answer as it came, a :class:`~interlink.client.models.ForwardedResponse`).
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, Final
from urllib.parse import quote

from interlink.client._base import (
    IDEMPOTENT_METHODS,
    NOT_GIVEN,
    AsyncResource,
    Call,
    NotGiven,
    SyncResource,
    apaginate,
    body,
    call,
    empty_call,
    item_path,
    page_call,
    paginate,
    query,
)
from interlink.client.models import ForwardedResponse, Page
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
    "ForwardedResponse",
    "ProxyAnswer",
]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
PATH = "/v1/connections"


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
    connection_id: str,
    tenant_id: str | None,
    method: str,
    path: str,
    query_params: dict[str, Any] | None,
    headers: dict[str, str] | None,
    json_body: Any,
    form: dict[str, Any] | None,
    idempotency_key: str | None,
    max_attempts: int | None,
    timeout_seconds: float | None,
) -> Call[ProxyAnswer]:
    """The proxy request; re-sending it is safe for an idempotent method or with an idempotency key."""
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
    safe = method.upper() in IDEMPOTENT_METHODS or idempotency_key is not None
    return call(
        ProxyAnswer,
        "POST",
        item_path(PATH, connection_id, "/proxy"),
        json=payload,
        tenant_id=tenant_id,
        retry_safe=safe,
    )


PROXY_HEADER_PREFIX: Final = "Interlink-Proxy-"
PASSED_AS_THEY_ARE: Final = frozenset({"content-type", "accept", "accept-language"})
"""Request headers the passthrough form passes on under their own names."""
_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~"
_BARE_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENTS: Final = {".": "%2E", "..": "%2E%2E"}


def _forward_path(connection_id: str, path: str) -> str:
    """``/v1/connections/{id}/proxy{path}``: characters a path cannot hold percent-encoded, ``/``
    and ``%XX`` escapes kept. ``.`` and ``..`` segments are sent escaped, so that no URL
    normalisation turns them into another Interlink route: the service refuses them (422)."""
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    escaped = quote(_BARE_PERCENT.sub("%25", path), safe=_PATH_SAFE)
    segments = [_DOT_SEGMENTS.get(part, part) for part in escaped.split("/")]
    return item_path(PATH, connection_id, "/proxy") + "/".join(segments)


def _query_text(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _forward_query(values: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...] | None:
    """Query pairs: a list or tuple repeats the name, ``None`` is left out, booleans are
    ``true``/``false`` (as the JSON form sends them)."""
    if not values:
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((name, _query_text(item)) for item in items)
    return tuple(pairs)


def _forward_call(
    connection_id: str,
    tenant_id: str | None,
    method: str,
    path: str,
    query_params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    content: bytes | str | None,
    json_body: Any,
    idempotency_key: str | None,
    max_attempts: int | None,
    timeout_seconds: float | None,
) -> Call[ForwardedResponse]:
    """The passthrough request (``/v1/connections/{id}/proxy/{path}``); re-sending it is safe for
    an idempotent method or with an idempotency key, as for :func:`_proxy_call`."""
    sent: dict[str, str] = {"Accept": "*/*"}  # not the client's application/json, unless asked
    for name, value in (headers or {}).items():
        if name.lower() in PASSED_AS_THEY_ARE:
            sent = {k: v for k, v in sent.items() if k.lower() != name.lower()}
            sent[name] = value
        else:
            sent[PROXY_HEADER_PREFIX + name] = value
    if not isinstance(json_body, NotGiven):
        if content is not None:
            raise ValueError("give content or json, not both")
        content = jsonlib.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if not any(name.lower() == "content-type" for name in sent):
            sent["Content-Type"] = "application/json"
    if idempotency_key is not None:
        sent["Idempotency-Key"] = idempotency_key
    if max_attempts is not None:
        sent["Interlink-Max-Attempts"] = str(max_attempts)
    if timeout_seconds is not None:
        sent["Interlink-Timeout-Seconds"] = str(timeout_seconds)
    verb = method.upper()
    return Call(
        verb,
        _forward_path(connection_id, path),
        ForwardedResponse.from_response,
        params=_forward_query(query_params),
        tenant_id=tenant_id,
        retry_safe=verb in IDEMPOTENT_METHODS or idempotency_key is not None,
        content=content.encode() if isinstance(content, str) else content,
        headers=sent,
        passthrough=True,
    )


def _update_body(**fields: Any) -> dict[str, Any]:
    return body(fields, drop_none=False)


class Connections(SyncResource):
    """``/v1/connections``: create, validate, list, get, update, delete; the OAuth2 authorize URL
    and token refresh; calls to the provider (``proxy``, ``forward``)."""

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
        return self._send(call(ConnectionInfo, "POST", PATH, json=payload, tenant_id=tenant_id))

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
        return self._send(
            call(ConnectionValidation, "POST", f"{PATH}/validate", json=payload, tenant_id=tenant_id)
        )

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
        return self._send(page_call(ConnectionInfo, PATH, params, tenant_id))

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
        """Every matching connection, newest first, fetching pages as needed."""
        return paginate(lambda after: self.list(
            provider_key=provider_key, environment=environment, status=status, auth_type=auth_type,
            limit=page_size, after=after, tenant_id=tenant_id,
        ))  # fmt: skip

    def get(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        return self._send(call(ConnectionInfo, "GET", item_path(PATH, connection_id), tenant_id=tenant_id))

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
        return self._send(
            call(ConnectionInfo, "PATCH", item_path(PATH, connection_id), json=payload, tenant_id=tenant_id)
        )

    def delete(self, connection_id: str, *, tenant_id: str | None = None) -> None:
        """Delete the connection and its stored credentials and tokens."""
        self._send(empty_call("DELETE", item_path(PATH, connection_id), tenant_id))

    def authorize_url(
        self, connection_id: str, *, return_to: str | None = None, tenant_id: str | None = None
    ) -> AuthorizeUrl:
        """The provider's authorize URL for an OAUTH2_AUTHORIZATION_CODE connection; ``return_to``
        (a path on the server) is where the callback sends the user back with the outcome."""
        path = item_path(PATH, connection_id, "/oauth/authorize-url")
        params = query({"returnTo": return_to})
        return self._send(call(AuthorizeUrl, "GET", path, params=params, tenant_id=tenant_id))

    def refresh(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        """Obtain a new OAuth2 access token now; the connection after (``ConflictError`` when it
        cannot have one or the provider refused: it is then EXPIRED or ERROR)."""
        path = item_path(PATH, connection_id, "/oauth/refresh")
        return self._send(call(ConnectionInfo, "POST", path, tenant_id=tenant_id))

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
        return self._send(_proxy_call(
            connection_id, tenant_id, method, path, query, headers, json, form, idempotency_key,
            max_attempts, timeout_seconds,
        ))  # fmt: skip

    def forward(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = NOT_GIVEN,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        tenant_id: str | None = None,
    ) -> ForwardedResponse:
        """Call the provider through the connection as you would call it yourself
        (``/v1/connections/{id}/proxy/{path}``; credentials injected by Interlink) and get its
        answer as it came: any status, 4xx and 5xx included, is a :class:`ForwardedResponse`.

        ``path`` starts with ``/`` and is joined to the connection's base URL (characters a path
        cannot hold are percent-encoded; ``/`` and ``%XX`` escapes are kept). ``headers`` reach the
        provider under their own names (sent as ``Interlink-Proxy-<Name>``, except
        ``Content-Type``, ``Accept`` and ``Accept-Language``); ``Accept`` defaults to ``*/*``.
        ``content`` is the raw body (a ``str`` as UTF-8); ``json`` a JSON body with
        ``Content-Type: application/json``. Interlink's own failures raise the usual
        ``InterlinkAPIError`` subclasses: 422 for an invalid argument, 502, 503 or 504 when the
        provider gave no answer (502 with ``errorClass`` ``too_large`` for an answer above the
        connection's response limit)."""
        return self._send(_forward_call(
            connection_id, tenant_id, method, path, query, headers, content, json, idempotency_key,
            max_attempts, timeout_seconds,
        ))  # fmt: skip


class AsyncConnections(AsyncResource):
    """``/v1/connections`` with ``await`` (same surface as :class:`Connections`)."""

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
        """Create a connection (``ValidationError`` names the field; ``ConflictError`` for a taken name)."""
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        return await self._send(call(ConnectionInfo, "POST", PATH, json=payload, tenant_id=tenant_id))

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
        """Check a create request without saving anything."""
        payload = _create_body(
            provider_key, name, environment, config, auth_type, credentials, scopes, metadata
        )
        return await self._send(
            call(ConnectionValidation, "POST", f"{PATH}/validate", json=payload, tenant_id=tenant_id)
        )

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
        """One page of connections, newest first."""
        params = _list_params(limit, after, provider_key, environment, status, auth_type)
        return await self._send(page_call(ConnectionInfo, PATH, params, tenant_id))

    def iter_all(
        self,
        *,
        provider_key: str | None = None,
        environment: IntegrationEnvironment | str | None = None,
        status: IntegrationConnectionStatus | str | None = None,
        auth_type: AuthenticationType | str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> AsyncIterator[ConnectionInfo]:
        """Every matching connection, newest first, fetching pages as needed (``async for``)."""
        return apaginate(lambda after: self.list(
            provider_key=provider_key, environment=environment, status=status, auth_type=auth_type,
            limit=page_size, after=after, tenant_id=tenant_id,
        ))  # fmt: skip

    async def get(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        return await self._send(
            call(ConnectionInfo, "GET", item_path(PATH, connection_id), tenant_id=tenant_id)
        )

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
        """Change fields; ``status`` may be ACTIVE, DISABLED or REVOKED (``ConflictError`` otherwise)."""
        payload = _update_body(
            name=name, config=config, credentials=credentials, scopes=scopes, metadata=metadata, status=status
        )
        return await self._send(
            call(ConnectionInfo, "PATCH", item_path(PATH, connection_id), json=payload, tenant_id=tenant_id)
        )

    async def delete(self, connection_id: str, *, tenant_id: str | None = None) -> None:
        """Delete the connection and its stored credentials and tokens."""
        await self._send(empty_call("DELETE", item_path(PATH, connection_id), tenant_id))

    async def authorize_url(
        self, connection_id: str, *, return_to: str | None = None, tenant_id: str | None = None
    ) -> AuthorizeUrl:
        """The provider's authorize URL for an OAUTH2_AUTHORIZATION_CODE connection; ``return_to``
        (a path on the server) is where the callback sends the user back with the outcome."""
        path = item_path(PATH, connection_id, "/oauth/authorize-url")
        params = query({"returnTo": return_to})
        return await self._send(call(AuthorizeUrl, "GET", path, params=params, tenant_id=tenant_id))

    async def refresh(self, connection_id: str, *, tenant_id: str | None = None) -> ConnectionInfo:
        """Obtain a new OAuth2 access token now; the connection after (``ConflictError`` when it
        cannot have one or the provider refused: it is then EXPIRED or ERROR)."""
        path = item_path(PATH, connection_id, "/oauth/refresh")
        return await self._send(call(ConnectionInfo, "POST", path, tenant_id=tenant_id))

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
        """As :meth:`Connections.proxy`, awaited."""
        return await self._send(_proxy_call(
            connection_id, tenant_id, method, path, query, headers, json, form, idempotency_key,
            max_attempts, timeout_seconds,
        ))  # fmt: skip

    async def forward(
        self,
        connection_id: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        json: Any = NOT_GIVEN,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        tenant_id: str | None = None,
    ) -> ForwardedResponse:
        """As :meth:`Connections.forward`, awaited."""
        return await self._send(_forward_call(
            connection_id, tenant_id, method, path, query, headers, content, json, idempotency_key,
            max_attempts, timeout_seconds,
        ))  # fmt: skip

"""The blocking client: :class:`InterlinkClient`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from interlink.client._api_requests import ApiRequests
from interlink.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    ClientConfig,
    NotGiven,
    body,
    connection_error,
    parse,
    parse_page,
    query,
    rate_limit_body,
    scope_list,
    segment,
)
from interlink.client._connection_health import ConnectionHealthChecks
from interlink.client._connections import Connections
from interlink.client._connectors import Connectors
from interlink.client._endpoints import Endpoints, EventTypes
from interlink.client._events import Deliveries, Events
from interlink.client._inbound import InboundSources
from interlink.client._metrics import WebhookMetrics
from interlink.client._providers import Providers
from interlink.client._replays import Replays
from interlink.client._webhook_config import WebhookConfigResource
from interlink.client.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRotated,
    ApiSecurityAuditEvent,
    AuditEventInfo,
    Page,
    SecretInfo,
    TenantInfo,
    VerifyKeyResponse,
)
from interlink.core.enums import ApiKeyScope, ApiKeyStatus, IntegrationEnvironment, TokenType

T = TypeVar("T")


def _paginate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    after: str | None = None
    while True:
        page = fetch(after)
        yield from page.data
        if not page.has_more or not page.next_cursor:
            return
        after = page.next_cursor


class InterlinkClient:
    """Blocking client for the Interlink REST API.

    ``InterlinkClient("http://127.0.0.1:8000", "il_live_...")``; use it as a context manager or call
    :meth:`close`. ``tenant_id`` (or per call ``tenant_id=``) sends ``X-Tenant-Id`` so a platform key
    acts for that tenant. Every request carries an ``X-Correlation-Id`` (fresh per call unless set
    with :meth:`with_options`); the last one answered is :attr:`last_correlation_id`.
    Idempotent requests are retried up to ``max_retries`` times on 503 and connection errors.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        tenant_id: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig(
            base_url, api_key, tenant_id=tenant_id, timeout=timeout, max_retries=max_retries
        )
        self._http = httpx.Client(
            base_url=self._config.base_url,
            timeout=timeout,
            transport=transport,
            headers=self._config.default_headers(),
        )
        self._owns_http = True
        self._bind()

    @classmethod
    def from_env(cls, **kwargs: Any) -> InterlinkClient:
        """A client from ``INTERLINK_API_URL``, ``INTERLINK_API_KEY`` and ``INTERLINK_TENANT_ID``."""
        url, key, tenant = ClientConfig.env(
            kwargs.pop("base_url", None), kwargs.pop("api_key", None), kwargs.pop("tenant_id", None)
        )
        return cls(url, key, tenant_id=tenant, **kwargs)

    def _bind(self) -> None:
        self.tenants = Tenants(self)
        self.keys = Keys(self)
        self.audit_events = AuditEvents(self)
        self.security_events = SecurityEvents(self)
        self.secrets = Secrets(self)
        self.event_types = EventTypes(self)
        self.endpoints = Endpoints(self)
        self.events = Events(self)
        self.deliveries = Deliveries(self)
        self.webhook_metrics = WebhookMetrics(self)
        self.replays = Replays(self)
        self.providers = Providers(self)
        self.connectors = Connectors(self)
        self.connections = Connections(self)
        self.connection_health = ConnectionHealthChecks(self)
        self.webhook_config = WebhookConfigResource(self)
        self.api_requests = ApiRequests(self)
        self.inbound_sources = InboundSources(self)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def tenant_id(self) -> str | None:
        return self._config.tenant_id

    @property
    def last_correlation_id(self) -> str | None:
        """The ``X-Correlation-Id`` of the most recent answer."""
        return self._config.last_correlation_id

    def with_options(
        self,
        *,
        tenant_id: str | NotGiven | None = NOT_GIVEN,
        correlation_id: str | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> InterlinkClient:
        """A copy sharing this client's connections, with other defaults (closing it is a no-op)."""
        clone = copy.copy(self)
        clone._config = copy.copy(self._config)
        clone._config.last_correlation_id = None
        if not isinstance(tenant_id, NotGiven):
            clone._config.tenant_id = tenant_id
        if not isinstance(correlation_id, NotGiven):
            clone._config.correlation_id = correlation_id
        if not isinstance(max_retries, NotGiven):
            clone._config.max_retries = max_retries
        clone._owns_http = False
        clone._bind()
        return clone

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> InterlinkClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
        tenant_id: str | None = None,
        retry_safe: bool = False,
    ) -> httpx.Response:
        config = self._config
        correlation_id = config.next_correlation_id()
        headers = config.request_headers(tenant_id, correlation_id)
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, json=json, headers=headers)
            except httpx.TransportError as exc:
                delay = config.retry_delay(method, attempt, error=exc, retry_safe=retry_safe)
                if delay is None:
                    raise connection_error(exc, config.base_url, correlation_id) from exc
            else:
                delay = config.retry_delay(method, attempt, response=response, retry_safe=retry_safe)
                if delay is None:
                    return config.check(response, correlation_id)
                response.close()
            time.sleep(delay)
            attempt += 1


class _Resource:
    def __init__(self, client: InterlinkClient) -> None:
        self._c = client


class Tenants(_Resource):
    """``/v1/tenants``: platform keys create and change tenants; tenant keys read their own."""

    def create(
        self, name: str, *, slug: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TenantInfo:
        payload = body({"name": name, "slug": slug, "metadata": metadata}, drop_none=True)
        return parse(TenantInfo, self._c._request("POST", "/v1/tenants", json=payload))

    def get(self, tenant_id: str) -> TenantInfo:
        return parse(TenantInfo, self._c._request("GET", f"/v1/tenants/{segment(tenant_id)}"))

    def list(self, *, limit: int = 50, after: str | None = None) -> Page[TenantInfo]:
        params = query({"limit": limit, "after": after})
        return parse_page(TenantInfo, self._c._request("GET", "/v1/tenants", params=params))

    def iter_all(self, *, page_size: int = 100) -> Iterator[TenantInfo]:
        """Every visible tenant, newest first, fetching pages as needed."""
        return _paginate(lambda after: self.list(limit=page_size, after=after))

    def update(
        self,
        tenant_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        metadata: dict[str, Any] | NotGiven = NOT_GIVEN,
    ) -> TenantInfo:
        payload = body({"name": name, "metadata": metadata}, drop_none=False)
        response = self._c._request("PATCH", f"/v1/tenants/{segment(tenant_id)}", json=payload)
        return parse(TenantInfo, response)


class Keys(_Resource):
    """``/v1/keys``: issue, inspect, change, rotate, revoke and verify API keys."""

    def create(
        self,
        name: str,
        scopes: Sequence[ApiKeyScope | str],
        *,
        kind: str = "tenant",
        environment: IntegrationEnvironment | str | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        allowed_ips: Sequence[str] | None = None,
        rate_limit: int | None = None,
        rate_limit_period_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> ApiKeyCreated:
        """Create a key. ``result.key`` is the only time the key is ever shown: store it now."""
        payload = body(
            {
                "name": name,
                "scopes": scope_list(scopes),
                "kind": kind,
                "environment": environment,
                "expiresAt": expires_at,
                "metadata": metadata,
                "allowedIps": list(allowed_ips) if allowed_ips is not None else None,
                "rateLimit": rate_limit_body(rate_limit, rate_limit_period_seconds),
            },
            drop_none=True,
        )
        response = self._c._request("POST", "/v1/keys", json=payload, tenant_id=tenant_id)
        return parse(ApiKeyCreated, response)

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        status: ApiKeyStatus | str | None = None,
        tenant_id: str | None = None,
    ) -> Page[ApiKeyInfo]:
        params = query({"limit": limit, "after": after, "status": status})
        response = self._c._request("GET", "/v1/keys", params=params, tenant_id=tenant_id)
        return parse_page(ApiKeyInfo, response)

    def iter_all(
        self,
        *,
        status: ApiKeyStatus | str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[ApiKeyInfo]:
        """Every key of the tenant, newest first, fetching pages as needed."""
        return _paginate(
            lambda after: self.list(limit=page_size, after=after, status=status, tenant_id=tenant_id)
        )

    def get(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyInfo:
        response = self._c._request("GET", f"/v1/keys/{segment(key_id)}", tenant_id=tenant_id)
        return parse(ApiKeyInfo, response)

    def update(
        self,
        key_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        scopes: Sequence[ApiKeyScope | str] | NotGiven = NOT_GIVEN,
        expires_at: datetime | NotGiven | None = NOT_GIVEN,
        metadata: dict[str, Any] | NotGiven = NOT_GIVEN,
        allowed_ips: Sequence[str] | NotGiven = NOT_GIVEN,
        rate_limit: int | NotGiven | None = NOT_GIVEN,
        rate_limit_period_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> ApiKeyInfo:
        """Change what is given; ``expires_at=None`` / ``rate_limit=None`` remove them."""
        payload = body(
            {
                "name": name,
                "scopes": scope_list(scopes) if not isinstance(scopes, NotGiven) else scopes,
                "expiresAt": expires_at,
                "metadata": metadata,
                "allowedIps": list(allowed_ips) if not isinstance(allowed_ips, NotGiven) else allowed_ips,
                "rateLimit": rate_limit_body(rate_limit, rate_limit_period_seconds),
            },
            drop_none=False,
        )
        response = self._c._request("PATCH", f"/v1/keys/{segment(key_id)}", json=payload, tenant_id=tenant_id)
        return parse(ApiKeyInfo, response)

    def rotate(
        self, key_id: str, *, grace_period_seconds: int | None = None, tenant_id: str | None = None
    ) -> ApiKeyRotated:
        """Issue a replacement (``result.new_key.key``, shown once); the old key lasts the grace period."""
        payload = body({"gracePeriodSeconds": grace_period_seconds}, drop_none=True)
        response = self._c._request(
            "POST", f"/v1/keys/{segment(key_id)}/rotate", json=payload, tenant_id=tenant_id
        )
        return parse(ApiKeyRotated, response)

    def revoke(self, key_id: str, *, reason: str | None = None, tenant_id: str | None = None) -> ApiKeyInfo:
        """Revoke at once, in every process of the service."""
        payload = body({"reason": reason}, drop_none=True)
        response = self._c._request(
            "POST", f"/v1/keys/{segment(key_id)}/revoke", json=payload, tenant_id=tenant_id
        )
        return parse(ApiKeyInfo, response)

    def verify(
        self,
        key: str,
        *,
        scopes: Sequence[ApiKeyScope | str] | None = None,
        ip: str | None = None,
        tenant_id: str | None = None,
    ) -> VerifyKeyResponse:
        """Check a key presented to your application. An invalid key is an answer, not an error."""
        payload = body(
            {"key": key, "scopes": scope_list(scopes) if scopes is not None else None, "ip": ip},
            drop_none=True,
        )
        response = self._c._request("POST", "/v1/keys/verify", json=payload, tenant_id=tenant_id)
        return parse(VerifyKeyResponse, response)


class AuditEvents(_Resource):
    """``/v1/audit-events``: every mutation in the tenant, newest first."""

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor_key_id: str | None = None,
        correlation_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> Page[AuditEventInfo]:
        params = query(
            {
                "limit": limit,
                "after": after,
                "action": action,
                "resourceType": resource_type,
                "resourceId": resource_id,
                "actorKeyId": actor_key_id,
                "correlationId": correlation_id,
                "since": since,
                "until": until,
            }
        )
        response = self._c._request("GET", "/v1/audit-events", params=params, tenant_id=tenant_id)
        return parse_page(AuditEventInfo, response)

    def iter_all(self, *, page_size: int = 100, **filters: Any) -> Iterator[AuditEventInfo]:
        """Every matching event (same filters as :meth:`list`), fetching pages as needed."""
        return _paginate(lambda after: self.list(limit=page_size, after=after, **filters))


class SecurityEvents(_Resource):
    """``/v1/security-events``: failed authentication, denied IPs, rotations, revocations, ..."""

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        event_type: str | None = None,
        key_id: str | None = None,
        source_ip: str | None = None,
        min_risk: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> Page[ApiSecurityAuditEvent]:
        params = query(
            {
                "limit": limit,
                "after": after,
                "eventType": event_type,
                "keyId": key_id,
                "sourceIp": source_ip,
                "minRisk": min_risk,
                "since": since,
                "until": until,
            }
        )
        response = self._c._request("GET", "/v1/security-events", params=params, tenant_id=tenant_id)
        return parse_page(ApiSecurityAuditEvent, response)

    def iter_all(self, *, page_size: int = 100, **filters: Any) -> Iterator[ApiSecurityAuditEvent]:
        """Every matching event (same filters as :meth:`list`), fetching pages as needed."""
        return _paginate(lambda after: self.list(limit=page_size, after=after, **filters))


class Secrets(_Resource):
    """``/v1/secrets``: encrypted credentials. Values go in, never come back out."""

    def create(
        self,
        name: str,
        value: str,
        token_type: TokenType | str,
        *,
        owner_type: str | None = None,
        owner_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        rotate_by: datetime | None = None,
        expires_at: datetime | None = None,
        tenant_id: str | None = None,
    ) -> SecretInfo:
        payload = body(
            {
                "name": name,
                "value": value,
                "tokenType": token_type,
                "ownerType": owner_type,
                "ownerId": owner_id,
                "metadata": metadata,
                "rotateBy": rotate_by,
                "expiresAt": expires_at,
            },
            drop_none=True,
        )
        response = self._c._request("POST", "/v1/secrets", json=payload, tenant_id=tenant_id)
        return parse(SecretInfo, response)

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        owner_type: str | None = None,
        owner_id: str | None = None,
        tenant_id: str | None = None,
    ) -> Page[SecretInfo]:
        params = query({"limit": limit, "after": after, "ownerType": owner_type, "ownerId": owner_id})
        response = self._c._request("GET", "/v1/secrets", params=params, tenant_id=tenant_id)
        return parse_page(SecretInfo, response)

    def iter_all(
        self,
        *,
        owner_type: str | None = None,
        owner_id: str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[SecretInfo]:
        """Every matching secret, newest first, fetching pages as needed."""
        return _paginate(
            lambda after: self.list(
                limit=page_size, after=after, owner_type=owner_type, owner_id=owner_id, tenant_id=tenant_id
            )
        )

    def get(self, secret_id: str, *, tenant_id: str | None = None) -> SecretInfo:
        response = self._c._request("GET", f"/v1/secrets/{segment(secret_id)}", tenant_id=tenant_id)
        return parse(SecretInfo, response)

    def rotate(
        self,
        secret_id: str,
        value: str,
        *,
        rotate_by: datetime | None = None,
        expires_at: datetime | None = None,
        tenant_id: str | None = None,
    ) -> SecretInfo:
        """Replace the value (the version goes up; ``lastRotatedAt`` and ``rotateBy`` move)."""
        payload = body({"value": value, "rotateBy": rotate_by, "expiresAt": expires_at}, drop_none=True)
        response = self._c._request(
            "POST", f"/v1/secrets/{segment(secret_id)}/rotate", json=payload, tenant_id=tenant_id
        )
        return parse(SecretInfo, response)

    def delete(self, secret_id: str, *, tenant_id: str | None = None) -> None:
        self._c._request("DELETE", f"/v1/secrets/{segment(secret_id)}", tenant_id=tenant_id)

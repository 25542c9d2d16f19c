"""The blocking client: :class:`InterlinkClient`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from interlink.client import _account_calls as calls
from interlink.client._api_requests import ApiRequests
from interlink.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    ClientCore,
    NotGiven,
    Params,
    SyncResource,
    body,
    call,
    empty_call,
    item_path,
    page_call,
    paginate,
    query,
    scope_list,
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


class InterlinkClient(ClientCore):
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
        super().__init__(base_url, api_key, tenant_id=tenant_id, timeout=timeout, max_retries=max_retries)
        headers = self._config.default_headers()
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )
        self._bind()

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
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        tenant_id: str | None = None,
        retry_safe: bool = False,
        passthrough: bool = False,
    ) -> httpx.Response:
        correlation_id, sent = self._start(tenant_id)
        if headers:
            sent = {**headers, **sent}
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._http.request(
                    method, path, params=params, json=json, content=content, headers=sent
                )
            except httpx.TransportError as exc:
                outcome = exc
            step = self._config.settle(
                method, attempt, correlation_id, outcome, retry_safe=retry_safe, passthrough=passthrough
            )
            if isinstance(step, httpx.Response):
                return step
            if isinstance(outcome, httpx.Response):
                outcome.close()
            time.sleep(step)
            attempt += 1


class Tenants(SyncResource):
    """``/v1/tenants``: platform keys create and change tenants; tenant keys read their own."""

    def create(
        self, name: str, *, slug: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TenantInfo:
        payload = body({"name": name, "slug": slug, "metadata": metadata}, drop_none=True)
        return self._send(call(TenantInfo, "POST", calls.TENANTS, json=payload))

    def get(self, tenant_id: str) -> TenantInfo:
        return self._send(call(TenantInfo, "GET", item_path(calls.TENANTS, tenant_id)))

    def list(self, *, limit: int = 50, after: str | None = None) -> Page[TenantInfo]:
        return self._send(page_call(TenantInfo, calls.TENANTS, query({"limit": limit, "after": after})))

    def iter_all(self, *, page_size: int = 100) -> Iterator[TenantInfo]:
        """Every visible tenant, newest first, fetching pages as needed."""
        return paginate(lambda after: self.list(limit=page_size, after=after))

    def update(
        self,
        tenant_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        metadata: dict[str, Any] | NotGiven = NOT_GIVEN,
    ) -> TenantInfo:
        payload = body({"name": name, "metadata": metadata}, drop_none=False)
        return self._send(call(TenantInfo, "PATCH", item_path(calls.TENANTS, tenant_id), json=payload))


class Keys(SyncResource):
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
        return self._send(calls.create_key(
            name, scopes, kind, environment, expires_at, metadata, allowed_ips, rate_limit,
            rate_limit_period_seconds, tenant_id,
        ))  # fmt: skip

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        status: ApiKeyStatus | str | None = None,
        tenant_id: str | None = None,
    ) -> Page[ApiKeyInfo]:
        params = query({"limit": limit, "after": after, "status": status})
        return self._send(page_call(ApiKeyInfo, calls.KEYS, params, tenant_id))

    def iter_all(
        self,
        *,
        status: ApiKeyStatus | str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[ApiKeyInfo]:
        """Every key of the tenant, newest first, fetching pages as needed."""
        return paginate(
            lambda after: self.list(limit=page_size, after=after, status=status, tenant_id=tenant_id)
        )

    def get(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyInfo:
        return self._send(call(ApiKeyInfo, "GET", item_path(calls.KEYS, key_id), tenant_id=tenant_id))

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
        return self._send(calls.update_key(
            key_id, name, scopes, expires_at, metadata, allowed_ips, rate_limit,
            rate_limit_period_seconds, tenant_id,
        ))  # fmt: skip

    def rotate(
        self, key_id: str, *, grace_period_seconds: int | None = None, tenant_id: str | None = None
    ) -> ApiKeyRotated:
        """Issue a replacement (``result.new_key.key``, shown once); the old key lasts the grace period."""
        payload = body({"gracePeriodSeconds": grace_period_seconds}, drop_none=True)
        path = item_path(calls.KEYS, key_id, "/rotate")
        return self._send(call(ApiKeyRotated, "POST", path, json=payload, tenant_id=tenant_id))

    def revoke(self, key_id: str, *, reason: str | None = None, tenant_id: str | None = None) -> ApiKeyInfo:
        """Revoke at once, in every process of the service."""
        payload = body({"reason": reason}, drop_none=True)
        path = item_path(calls.KEYS, key_id, "/revoke")
        return self._send(call(ApiKeyInfo, "POST", path, json=payload, tenant_id=tenant_id))

    def verify(
        self,
        key: str,
        *,
        scopes: Sequence[ApiKeyScope | str] | None = None,
        ip: str | None = None,
        tenant_id: str | None = None,
    ) -> VerifyKeyResponse:
        """Check a key presented to your application. An invalid key is an answer, not an error."""
        wanted = scope_list(scopes) if scopes is not None else None
        payload = body({"key": key, "scopes": wanted, "ip": ip}, drop_none=True)
        return self._send(
            call(VerifyKeyResponse, "POST", f"{calls.KEYS}/verify", json=payload, tenant_id=tenant_id)
        )


class AuditEvents(SyncResource):
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
        return self._send(calls.list_audit_events(
            limit, after, action, resource_type, resource_id, actor_key_id, correlation_id, since, until,
            tenant_id,
        ))  # fmt: skip

    def iter_all(self, *, page_size: int = 100, **filters: Any) -> Iterator[AuditEventInfo]:
        """Every matching event (same filters as :meth:`list`), fetching pages as needed."""
        return paginate(lambda after: self.list(limit=page_size, after=after, **filters))


class SecurityEvents(SyncResource):
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
        return self._send(calls.list_security_events(
            limit, after, event_type, key_id, source_ip, min_risk, since, until, tenant_id
        ))  # fmt: skip

    def iter_all(self, *, page_size: int = 100, **filters: Any) -> Iterator[ApiSecurityAuditEvent]:
        """Every matching event (same filters as :meth:`list`), fetching pages as needed."""
        return paginate(lambda after: self.list(limit=page_size, after=after, **filters))


class Secrets(SyncResource):
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
        return self._send(calls.create_secret(
            name, value, token_type, owner_type, owner_id, metadata, rotate_by, expires_at, tenant_id
        ))  # fmt: skip

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
        return self._send(page_call(SecretInfo, calls.SECRETS, params, tenant_id))

    def iter_all(
        self,
        *,
        owner_type: str | None = None,
        owner_id: str | None = None,
        page_size: int = 100,
        tenant_id: str | None = None,
    ) -> Iterator[SecretInfo]:
        """Every matching secret, newest first, fetching pages as needed."""
        return paginate(lambda after: self.list(
            limit=page_size, after=after, owner_type=owner_type, owner_id=owner_id, tenant_id=tenant_id
        ))  # fmt: skip

    def get(self, secret_id: str, *, tenant_id: str | None = None) -> SecretInfo:
        return self._send(call(SecretInfo, "GET", item_path(calls.SECRETS, secret_id), tenant_id=tenant_id))

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
        path = item_path(calls.SECRETS, secret_id, "/rotate")
        return self._send(call(SecretInfo, "POST", path, json=payload, tenant_id=tenant_id))

    def delete(self, secret_id: str, *, tenant_id: str | None = None) -> None:
        self._send(empty_call("DELETE", item_path(calls.SECRETS, secret_id), tenant_id))

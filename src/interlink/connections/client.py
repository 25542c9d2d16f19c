"""Calling a provider through a connection: credentials injected, token refreshed on 401.

:meth:`ConnectionClients.open` gives a :class:`ConnectionClient` for one connection of the actor's
tenant. Its ``request``/``call`` have the shape of :class:`~interlink.outbound.client.ApiClient`'s
(so connectors and health checks take either) and go through the outbound client: the request
log, retries, the per-connection rate limit, retry budget and circuit breaker all apply.

Contracts:

* **Every call checks the connection's state** (its status, auth type, stored secret ids, token
  version and ``updated_at``: one small Core select; tenant-scoped: another tenant's id is 404),
  kept in this process for at most ``connection_cache_ttl_seconds`` and dropped from every
  process's cache when a unit of work changing the connection commits (the row is
  :class:`~interlink.core.db.CachedInProcesses`; see :mod:`interlink.core.invalidation`). A
  ``DISABLED`` or ``REVOKED`` connection, or an OAuth2 authorization-code connection never
  authorized, is refused with :class:`~interlink.connections.oauth.ConnectionUnavailable` (409)
  before anything is sent. A status change therefore applies to the next call in this process at
  once and in the others as soon as the invalidation reaches them (PostgreSQL NOTIFY or Redis;
  SQLite with several processes and no Redis: within the TTL).
* **Base URL**: the provider's base URL for the connection's environment, placeholders filled from
  the connection's config (for OAuth2 connections the provider's ``api_base_url`` when it has one).
* **Credentials** by authentication type: ``API_KEY`` where the provider's ``api_key`` placement
  says (a header with a prefix, a query parameter, or basic auth; default ``Authorization:
  Bearer <key>``), ``BASIC`` as ``Authorization: Basic``, ``BEARER`` as ``Authorization: Bearer``,
  OAuth2 as ``Authorization: Bearer <access token>`` (refreshed first when it expires within a
  minute; see :mod:`interlink.connections.oauth`), ``NONE`` and ``HMAC`` add nothing. Credentials
  are decrypted once per change of the connection (``updated_at``/``token_version``) and kept in
  this process for at most :data:`PLAN_TTL_SECONDS`, so a busy connection does not write a
  ``secret.accessed`` audit row per call; they replace any header of the same name the caller set.
* **Connection headers**: the provider's ``request_headers`` filled from the connection's config
  (Stripe's ``Stripe-Account: {account_id}``); a header whose settings have no value is not sent.
  Like credentials they replace a header of the same name the caller set, so the host app acts
  for the account the connection names and for no other. The provider's ``default_headers`` are
  filled the same way but a caller's header of the same name wins. Both are part of the plan, so
  a change of config (which moves ``updated_at``) applies to the very next call.
* **401 on an OAuth2 connection**: the token is refreshed single-flight with ``stale_version`` set
  to the version the call used (a burst of 401s across workers makes one token request) and the
  call is sent once more with the new token. A second 401 is returned as it is.
* Provider rate limits of the catalogue (the first ``rate`` limit for the environment) become the
  connection's client-side rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from interlink.connections.models import IntegrationConnection
from interlink.connections.oauth import ConnectionUnavailable, Tokens
from interlink.connections.schemas import IntegrationProviderExtended, RateLimitKind, render_headers
from interlink.connections.service import (
    OAUTH2_TYPES,
    ROLE_ACCESS,
    ROLE_CREDENTIALS,
    ROLE_REFRESH,
    Connections,
    render,
    resolve_base_url,
)
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.secrets import SecretStore
from interlink.outbound.client import ApiClient, OutboundService
from interlink.outbound.config import DEFAULT_MAX_RESPONSE_BYTES, ApiClientConfig, RateLimit, RetryPolicy
from interlink.outbound.request import (
    NO_BODY,
    ApiEndpointConfig,
    ApiRequestBuilder,
    PathValue,
    QueryValue,
)
from interlink.outbound.response import ApiResponse

if TYPE_CHECKING:
    from interlink.runtime import Runtime

A = AuthenticationType
S = IntegrationConnectionStatus


@dataclass(frozen=True, slots=True)
class _CachedState:
    tenant_id: str
    row: tuple[Any, ...]
    """As :meth:`_StateReader.read` returned it."""
    expires_at: float
    """``time.monotonic()`` deadline."""


PLAN_TTL_SECONDS: Final = 60.0
"""How long decrypted credentials of an unchanged connection are reused in one process."""
TOKEN_MIN_VALID: Final = timedelta(seconds=60)
MAX_PLANS: Final = 10_000


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a call through one connection needs, built from one version of the connection."""

    fingerprint: tuple[str, int, datetime]
    connection: IntegrationConnection
    """The row the plan was built from (detached; read-only)."""
    client: ApiClient
    fixed_headers: Mapping[str, str]
    """Credential and connection headers; they replace the caller's of the same name."""
    auth_query: Mapping[str, str]
    token_version: int | None
    token_stale_at: datetime | None
    """When the plan's OAuth2 token is due for a refresh (``None``: never)."""
    built_at: float
    state: tuple[Any, ...] | None = None
    """The state row (:class:`_StateReader`) the plan was last confirmed by."""
    fixed_lowered: frozenset[str] = field(init=False)
    """``fixed_headers``' names in lower case."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed_lowered", frozenset(n.lower() for n in self.fixed_headers))


def _fingerprint(conn: IntegrationConnection) -> tuple[str, int, datetime]:
    return (conn.status.value, conn.token_version, conn.updated_at)


_C = IntegrationConnection.__table__.c
_STATE = sa.select(_C.status, _C.auth_type, _C.secret_ids, _C.token_version, _C.updated_at).where(
    _C.tenant_id == sa.bindparam("tenant_id"), _C.id == sa.bindparam("connection_id")
)


class _StateReader:
    """The per-call read of :data:`_STATE`: whether a call may go out, and whether a cached plan
    still holds.

    On SQLite (aiosqlite) and PostgreSQL (psycopg) the compiled statement runs on the pooled
    connection's driver connection: one ``execute_fetchall`` on SQLite (one hop to the aiosqlite
    thread instead of seven through a SQLAlchemy transaction), one round trip on PostgreSQL (the
    statement runs in autocommit: no ``BEGIN`` and no ``ROLLBACK``). Values come
    back as the driver gives them (enum values as strings, JSON as text on SQLite); the state key
    compared with a plan's is the raw ``(status, token_version, updated_at)``. Other drivers go
    through SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.engine.dialect
        self.driver = dialect.driver if dialect.driver in ("aiosqlite", "psycopg") else ""
        compiled = _STATE.compile(dialect=dialect)
        self.sql = compiled.string
        self.positions = list(compiled.positiontup) if compiled.positiontup else None

    async def read(self, tenant_id: str, connection_id: str) -> tuple[Any, ...] | None:
        """``(status, auth_type, secret_ids, token_version, updated_at)`` or None."""
        params = {"tenant_id": tenant_id, "connection_id": connection_id}
        async with self.db.engine.connect() as db_conn:
            if not self.driver:
                return tuple(row) if (row := (await db_conn.execute(_STATE, params)).first()) else None
            raw = await db_conn.get_raw_connection()
            driver = raw.driver_connection
            args: Any = [params[name] for name in self.positions] if self.positions else params
            if self.driver == "aiosqlite":
                rows = list(await driver.execute_fetchall(self.sql, args))  # type: ignore[union-attr]
                return tuple(rows[0]) if rows else None
            # psycopg: autocommit for this one statement, so no BEGIN is sent before it and no
            # ROLLBACK when the connection goes back to the pool (one round trip instead of three).
            await driver.set_autocommit(True)  # type: ignore[union-attr]
            try:
                cursor = await driver.execute(self.sql, args)  # type: ignore[union-attr]
                row = await cursor.fetchone()
            finally:
                await driver.set_autocommit(False)  # type: ignore[union-attr]
            return tuple(row) if row is not None else None


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def check_callable(conn: IntegrationConnection) -> None:
    """Refuse a connection that cannot be called (see the module doc)."""
    _refuse_uncallable(conn.id, conn.status, conn.auth_type, conn.secret_ids)


def _refuse_uncallable(
    connection_id: str,
    status: IntegrationConnectionStatus,
    auth_type: AuthenticationType,
    secret_ids: Mapping[str, str] | None,
) -> None:
    if status in (S.DISABLED, S.REVOKED):
        raise ConnectionUnavailable(
            f"connection {connection_id} is {status.value}", extra={"connectionStatus": status.value}
        )
    stored = secret_ids or {}
    authorized = ROLE_ACCESS in stored or ROLE_REFRESH in stored
    if auth_type is A.OAUTH2_AUTHORIZATION_CODE and not authorized:
        raise ConnectionUnavailable(
            f"connection {connection_id} is not authorized yet: send the user to its authorize URL "
            "(GET /v1/connections/{id}/oauth/authorize-url)",
            extra={"connectionStatus": status.value},
        )


def api_base_url(provider: IntegrationProviderExtended, conn: IntegrationConnection) -> str:
    """The base URL calls through ``conn`` go to (see the module doc)."""
    if conn.auth_type in OAUTH2_TYPES and provider.oauth2 is not None and provider.oauth2.api_base_url:
        return render(provider.oauth2.api_base_url, conn.config or {}, provider)
    return resolve_base_url(provider, conn.environment, conn.config or {})


def connection_headers(
    provider: IntegrationProviderExtended, conn: IntegrationConnection, templates: Mapping[str, str]
) -> dict[str, str]:
    """``templates`` (``request_headers`` or ``default_headers``) filled from ``conn``'s config;
    a header whose settings have no value is left out (422 naming ``config.<name>`` for a value
    that cannot be sent in a header)."""
    if not templates:
        return {}
    try:
        return render_headers(templates, conn.config or {}, provider.config_schema)
    except ValueError as exc:
        text = str(exc)
        raise ValidationFailed(text, field=text.split(" ", 1)[0]) from None


def provider_rate_limit(
    provider: IntegrationProviderExtended, conn: IntegrationConnection
) -> RateLimit | None:
    """The provider's documented request rate for the connection's environment, if any."""
    for limit in provider.rate_limits:
        if limit.kind is not RateLimitKind.RATE or limit.window_seconds is None or limit.unit != "requests":
            continue
        if limit.environment is not None and limit.environment is not conn.environment:
            continue
        return RateLimit(limit=limit.limit, period_seconds=limit.window_seconds)
    return None


class ConnectionClients:
    """Builds :class:`ConnectionClient` objects; one per process (``runtime.connection_clients``)
    so the credential plans are shared."""

    def __init__(
        self,
        db: Database,
        connections: Connections,
        tokens: Tokens,
        outbound: OutboundService,
        *,
        state_ttl_seconds: float = 0.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.db = db
        self.connections = connections
        self.tokens = tokens
        self.outbound = outbound
        self.max_response_bytes = max_response_bytes
        """The largest answer a call through a connection reads
        (``INTERLINK_CONNECTION_MAX_RESPONSE_BYTES``)."""
        self.state_ttl_seconds = state_ttl_seconds
        """How long a connection's state is reused without reading it (0: read on every call;
        only safe above 0 when changes reach :meth:`forget`, as the runtime's bus does)."""
        self._plans: dict[tuple[str, RetryPolicy | None, bool, float | None], _Plan] = {}
        self._state = _StateReader(db)
        self._states: dict[str, _CachedState] = {}
        self._generation = 0
        self._building: dict[tuple[Any, ...], asyncio.Future[_Plan]] = {}

    @classmethod
    def build(cls, runtime: Runtime) -> ConnectionClients:
        """A new instance for ``runtime`` (use :meth:`from_runtime` to share the process's)."""
        connections = Connections(runtime.providers, SecretStore.from_runtime(runtime))
        return cls(
            runtime.db,
            connections,
            Tokens.from_runtime(runtime),
            runtime.outbound,
            state_ttl_seconds=runtime.settings.connection_cache_ttl_seconds,
            max_response_bytes=runtime.settings.connection_max_response_bytes,
        )

    def forget(self, connection_id: str) -> None:
        """The connection changed: its next call reads its state again."""
        self._generation += 1
        self._states.pop(connection_id, None)

    def forget_all(self) -> None:
        """Changes may have been missed (the invalidation listener reconnected): read every
        connection's state again."""
        self._generation += 1
        self._states.clear()

    @staticmethod
    def from_runtime(runtime: Runtime) -> ConnectionClients:
        """The process's instance (``runtime.connection_clients``)."""
        return runtime.connection_clients

    async def open(
        self,
        actor: Actor,
        connection_id: str,
        *,
        retry: RetryPolicy | None = None,
        log_requests: bool = True,
        timeout_seconds: float | None = None,
    ) -> ConnectionClient:
        """A client for ``connection_id`` (NotFound for an unknown id or another tenant's).
        ``retry`` replaces the default retry policy (e.g. one attempt for a health check)."""
        options = (retry, log_requests, timeout_seconds)
        conn, state = await self._read(actor, connection_id, options)
        return ConnectionClient(self, actor, connection_id, options, conn, state)

    async def _read(
        self, actor: Actor, connection_id: str, options: tuple[RetryPolicy | None, bool, float | None]
    ) -> tuple[IntegrationConnection, tuple[Any, ...]]:
        """The connection for a call, checked callable, and its state key. Reads only the few
        columns of :data:`_STATE`; when the cached plan was confirmed by the same status, token
        version and ``updated_at``, its row serves, otherwise the full row is loaded."""
        row = await self._current_state(actor.tenant_id, connection_id)
        status, auth_type, secret_ids, token_version, updated_at = row
        auth = A(auth_type)
        if isinstance(secret_ids, str):
            secret_ids = json.loads(secret_ids) if auth is A.OAUTH2_AUTHORIZATION_CODE else None
        _refuse_uncallable(connection_id, S(status), auth, secret_ids)
        state = (status, token_version, updated_at)
        plan = self._plans.get((connection_id, *options))
        if plan is not None and plan.state == state:
            return plan.connection, state
        return await self._load(actor, connection_id), state

    async def _current_state(self, tenant_id: str, connection_id: str) -> tuple[Any, ...]:
        """The state row of :data:`_STATE`, from this process's cache while it holds (NotFound
        for an unknown id or another tenant's)."""
        now = time.monotonic()
        cached = self._states.get(connection_id)
        if cached is not None and cached.tenant_id == tenant_id and cached.expires_at > now:
            return cached.row
        generation = self._generation
        # An id holding a NUL names no connection; PostgreSQL would refuse to compare it at all.
        row = None if "\x00" in connection_id else await self._state.read(tenant_id, connection_id)
        if row is None:
            raise NotFound(f"connection {connection_id} not found")
        # Not cached when a change was announced during the read: the row may predate it.
        if self.state_ttl_seconds > 0 and generation == self._generation:
            if len(self._states) >= MAX_PLANS:
                self._states.pop(next(iter(self._states)))
            self._states[connection_id] = _CachedState(tenant_id, row, now + self.state_ttl_seconds)
        return row

    async def _load(self, actor: Actor, connection_id: str) -> IntegrationConnection:
        async with self.db.unit_of_work(write=False) as session:
            conn = await self.connections.get(session, actor, connection_id)
        check_callable(conn)
        return conn

    async def _plan(
        self,
        actor: Actor,
        conn: IntegrationConnection,
        options: tuple[RetryPolicy | None, bool, float | None],
        *,
        state: tuple[Any, ...] | None = None,
        stale_version: int | None = None,
    ) -> _Plan:
        key = (conn.id, *options)
        plan = self._plans.get(key)
        now = time.monotonic()
        if (
            plan is not None
            and stale_version is None
            and plan.fingerprint == _fingerprint(conn)
            and now - plan.built_at < PLAN_TTL_SECONDS
            and (plan.token_stale_at is None or plan.token_stale_at > utcnow())
        ):
            if state is not None and plan.state != state:
                plan = self._plans[key] = replace(plan, state=state)
            return plan
        # Single-flight: concurrent calls needing the same plan wait for one build (one credential
        # read and one ``secret.accessed`` audit row for a burst, not one per call).
        flight = (key, _fingerprint(conn), stale_version)
        pending = self._building.get(flight)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
            # the build we waited for was cancelled: build here
        future: asyncio.Future[_Plan] = asyncio.get_running_loop().create_future()
        self._building[flight] = future
        try:
            built = await self._build(actor, conn, options, stale_version=stale_version)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: nobody may be waiting
            raise
        finally:
            if self._building.get(flight) is future:
                del self._building[flight]
        plan = replace(built, state=state)
        if len(self._plans) >= MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan
        future.set_result(plan)
        return plan

    async def _build(
        self,
        actor: Actor,
        conn: IntegrationConnection,
        options: tuple[RetryPolicy | None, bool, float | None],
        *,
        stale_version: int | None,
    ) -> _Plan:
        provider = self.connections.provider(conn.provider_key)
        headers = connection_headers(provider, conn, provider.request_headers)
        query: dict[str, str] = {}
        token_version: int | None = None
        token_stale_at: datetime | None = None
        if conn.auth_type in OAUTH2_TYPES:
            token = await self.tokens.get_access_token(
                actor, conn.id, min_valid=TOKEN_MIN_VALID, stale_version=stale_version
            )
            headers["Authorization"] = f"Bearer {token.value}"
            token_version = token.version
            token_stale_at = token.stale_at(TOKEN_MIN_VALID)
        elif conn.auth_type in (A.API_KEY, A.BASIC, A.BEARER):
            creds = await self._credentials(actor, conn)
            if conn.auth_type is A.BASIC:
                headers["Authorization"] = _basic(creds.get("username", ""), creds.get("password", ""))
            elif conn.auth_type is A.BEARER:
                headers["Authorization"] = f"Bearer {creds.get('token', '')}"
            else:
                key = creds.get("apiKey", "")
                placement = provider.api_key
                if placement is None or placement.location == "header":
                    name = placement.name if placement is not None else "Authorization"
                    prefix = placement.prefix if placement is not None else "Bearer "
                    headers[name] = f"{prefix}{key}"
                elif placement.location == "query":
                    query[placement.name] = key
                elif placement.location == "basic_username":
                    headers["Authorization"] = _basic(key, "")
                else:
                    headers["Authorization"] = _basic("", key)
        retry, log_requests, timeout = options
        config = ApiClientConfig(
            tenant_id=conn.tenant_id,
            base_url=api_base_url(provider, conn),
            connection_id=conn.id,
            provider_key=conn.provider_key,
            headers=connection_headers(provider, conn, provider.default_headers),
            retry=retry or RetryPolicy(),
            rate_limit=provider_rate_limit(provider, conn),
            log_requests=log_requests,
            timeout_seconds=timeout or 30.0,
            max_response_bytes=self.max_response_bytes,
        )
        return _Plan(
            fingerprint=_fingerprint(conn),
            connection=conn,
            client=self.outbound.client(config),
            fixed_headers=headers,
            auth_query=query,
            token_version=token_version,
            token_stale_at=token_stale_at,
            built_at=time.monotonic(),
        )

    async def _credentials(self, actor: Actor, conn: IntegrationConnection) -> dict[str, str]:
        if ROLE_CREDENTIALS not in (conn.secret_ids or {}):
            return {}
        async with self.db.unit_of_work() as session:
            return await self.tokens.credentials(session, actor, conn, purpose="connection API call")


class ConnectionClient:
    """Calls through one connection (see the module doc). Cheap to create; holds no I/O state."""

    def __init__(
        self,
        clients: ConnectionClients,
        actor: Actor,
        connection_id: str,
        options: tuple[RetryPolicy | None, bool, float | None],
        connection: IntegrationConnection,
        state: tuple[Any, ...] | None = None,
    ) -> None:
        self._clients = clients
        self._actor = actor
        self._options = options
        self.connection_id = connection_id
        self.connection = connection
        """The connection as of the last call (or :meth:`ConnectionClients.open`): its status,
        token version and ``updated_at`` as read then; the other fields may come from the same
        version of the row read earlier in this process."""
        self._fresh = True
        self._state = state

    @property
    def provider(self) -> IntegrationProviderExtended:
        return self._clients.connections.provider(self.connection.provider_key)

    @property
    def base_url(self) -> str:
        return api_base_url(self.provider, self.connection)

    async def request(self, builder: ApiRequestBuilder, *, correlation_id: str | None = None) -> ApiResponse:
        """Send ``builder`` through the connection (see the module doc for the contracts)."""
        if self._fresh:  # the row read by open() serves the first call
            self._fresh = False
            conn = self.connection
        else:
            conn, self._state = await self._clients._read(self._actor, self.connection_id, self._options)
            self.connection = conn
        clients, actor, options = self._clients, self._actor, self._options
        plan = await clients._plan(actor, conn, options, state=self._state)
        cid = correlation_id
        response = await plan.client.request(self._authorized(builder, plan), correlation_id=cid)
        if response.status == 401 and conn.auth_type in OAUTH2_TYPES:
            plan = await clients._plan(actor, conn, options, stale_version=plan.token_version)
            response = await plan.client.request(self._authorized(builder, plan), correlation_id=cid)
        return response

    async def call(
        self,
        method: str,
        path: str,
        *,
        parameters: Mapping[str, PathValue] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = NO_BODY,
        form: Mapping[str, QueryValue] | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> ApiResponse:
        """Shorthand like :meth:`ApiClient.call` (plus ``form``)."""
        builder = ApiRequestBuilder(ApiEndpointConfig(path=path, method=method)).with_call(
            parameters=parameters,
            query=query,
            headers=headers,
            body=json,
            form=form,
            idempotency_key=idempotency_key,
        )
        return await self.request(builder, correlation_id=correlation_id)

    @staticmethod
    def _authorized(builder: ApiRequestBuilder, plan: _Plan) -> ApiRequestBuilder:
        headers = query = None
        if plan.fixed_headers:
            lowered = plan.fixed_lowered
            kept = {k: v for k, v in builder.headers.items() if k.lower() not in lowered}
            headers = {**kept, **plan.fixed_headers}
        if plan.auth_query:
            query = {**builder.query, **plan.auth_query}
        if headers is None and query is None:
            return builder
        return builder.replaced(headers=headers, query=query)

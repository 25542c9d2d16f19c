"""OAuth2 tokens of connections: client credentials, refresh, and the single-flight refresh.

Contracts:

* :meth:`Tokens.get_access_token` returns a usable access token of an OAuth2 connection. A stored
  token valid for at least ``min_valid`` more (or for more than half its lifetime, when that is
  shorter: :func:`refresh_margin`) is returned as is (fast path, no lock). Otherwise the
  caller takes the connection row lock (``SELECT ... FOR UPDATE`` on PostgreSQL; the database
  write lock on SQLite, whose writers start with ``BEGIN IMMEDIATE``), looks again, and only if
  the token is still stale asks the provider's token endpoint, stores the answer and bumps
  ``token_version`` before it commits. Callers queued on the lock find the new token when they get
  it, so any number of workers and processes make **one** token request per expiry.
* "Refresh on demand" (e.g. after a 401) passes the ``token_version`` the caller used as
  ``stale_version``: under the lock, a version that has moved on means another caller refreshed
  already and its token is returned (compare-and-swap on the version), so a burst of 401s also
  makes one request.
* Token requests use the process's SSRF-guarded transport (``runtime.transport``) with the
  provider's token URL (per environment, placeholders filled from the connection's config), client
  authentication per ``token_auth_method``. Network errors and 5xx answers are retried
  (:data:`ATTEMPTS` attempts, short backoff) while the lock is held. An answer whose tokens cannot
  be stored or sent (not a non-empty string, control characters, too large) is a refusal with
  ``error`` ``invalid_response``; the provider's ``error``/``error_description`` are kept with
  control characters replaced by ``?``.
* A failed refresh changes the connection's status in the same transaction and publishes an
  operational event for the tenant's endpoints that subscribe to it explicitly (like
  ``endpoint.disabled``): ``invalid_grant`` → ``EXPIRED`` and ``connection.expired``; any other
  refusal, or network errors and 5xx after the retries → ``ERROR`` and ``connection.error``. The
  event marks the change: another failure of a connection already in that status updates its
  ``lastError`` (and the audit trail) without publishing again. The
  caller then gets :class:`ConnectionUnavailable` (409). Access and refresh tokens are stored
  only as IntegrationSecret rows; their values never reach a log line or an audit row.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.connections.models import IntegrationConnection
from interlink.connections.schemas import IntegrationProviderExtended, OAuth2Endpoints
from interlink.connections.service import (
    OAUTH2_TYPES,
    OWNER_TYPE,
    ROLE_ACCESS,
    ROLE_CREDENTIALS,
    ROLE_REFRESH,
    Connections,
    render,
)
from interlink.core import audit
from interlink.core.actor import Actor, system_actor
from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus, TokenType
from interlink.core.errors import Conflict, NotFound
from interlink.core.secret_schemas import MAX_VALUE_BYTES
from interlink.core.secrets import SecretSpec, SecretStore
from interlink.core.text import CONTROL_CHARACTERS, has_control_characters
from interlink.outbound.transport import HttpTransport, TransportError
from interlink.webhooks import operational

if TYPE_CHECKING:
    from interlink.runtime import Runtime

log = structlog.get_logger(__name__)

S = IntegrationConnectionStatus
ATTEMPTS: Final = 3
BACKOFF_SECONDS: Final = (0.2, 0.5)
TOKEN_TIMEOUT_SECONDS: Final = 15.0
DEFAULT_MIN_VALID: Final = timedelta(seconds=60)
MAX_TOKEN_BYTES: Final = MAX_VALUE_BYTES
EXPIRED_EVENT: Final = "connection.expired"
ERROR_EVENT: Final = "connection.error"


class ConnectionUnavailable(Conflict):
    """The connection cannot give a token: it is not OAuth2, not connected, disabled, or failed."""

    code = "connection-unavailable"
    title = "Connection unavailable"


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: datetime | None
    version: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type name
    issued_at: datetime | None = None
    """When it was obtained (the connection's ``last_refreshed_at``)."""

    def stale_at(self, min_valid: timedelta) -> datetime | None:
        """When it is due for a refresh (:func:`refresh_margin`); ``None``: it does not expire."""
        if self.expires_at is None:
            return None
        return self.expires_at - refresh_margin(self.expires_at, self.issued_at, min_valid)


def refresh_margin(expires_at: datetime, issued_at: datetime | None, min_valid: timedelta) -> timedelta:
    """How long before ``expires_at`` a token is due for a refresh: ``min_valid``, but at most half
    of the token's lifetime, so a token that lives shorter than twice ``min_valid`` (say 30 s) is
    used for the first half of its life instead of being refreshed again at every call."""
    if issued_at is None or expires_at <= issued_at:
        return min_valid
    return min(min_valid, (expires_at - issued_at) / 2)


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str = field(repr=False)
    expires_in: int | None
    refresh_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type name
    scope: str | None = None


class TokenRequestFailed(Exception):
    """The token endpoint refused (``error`` set) or could not be reached (``error`` None)."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.error is None and (self.status is None or self.status >= 500 or self.status == 429)

    @property
    def expired(self) -> bool:
        return self.error == "invalid_grant"


def token_endpoints(provider: IntegrationProviderExtended, conn: IntegrationConnection) -> OAuth2Endpoints:
    if provider.oauth2 is None:
        raise ConnectionUnavailable(f"provider {provider.key!r} has no OAuth2 settings")
    return provider.oauth2.environments.get(conn.environment) or provider.oauth2


async def request_token(
    transport: HttpTransport,
    provider: IntegrationProviderExtended,
    conn: IntegrationConnection,
    form: dict[str, str],
    client_id: str,
    client_secret: str | None,
    *,
    url: str | None = None,
) -> TokenAnswer:
    """One POST to the token endpoint. Raises :class:`TokenRequestFailed`."""
    assert provider.oauth2 is not None
    if url is None:
        endpoints = token_endpoints(provider, conn)
        template = endpoints.token_url
        if form.get("grant_type") == "refresh_token" and provider.oauth2.refresh_url:
            template = provider.oauth2.refresh_url
        url = render(template, conn.config, provider)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        **provider.oauth2.token_request_headers,
    }
    body = dict(form)
    basic = provider.oauth2.token_auth_method == "client_secret_basic"  # noqa: S105 - a method name
    if basic and client_secret is not None:
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        body["client_id"] = client_id
        if client_secret is not None:
            body["client_secret"] = client_secret
    try:
        answer = await transport.send("POST", url, headers, urlencode(body).encode(), TOKEN_TIMEOUT_SECONDS)
    except TransportError as exc:
        raise TokenRequestFailed(f"token endpoint unreachable ({exc.error_class}): {exc}") from None
    if answer.truncated and answer.status < 400:
        raise TokenRequestFailed(
            f"token endpoint answered {answer.status} with more than {len(answer.body)} bytes: "
            "not a usable token answer",
            error="invalid_response",
            status=answer.status,
        )
    try:
        data: Any = json.loads(answer.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    if answer.status >= 400 or "access_token" not in data:
        error = _shown(data.get("error"), 100)
        description = _shown(data.get("error_description"), 300)
        if answer.status >= 500 or answer.status == 429:
            error = None
        elif error is None:
            error = "invalid_response"
        text = f"token endpoint answered {answer.status}"
        if error:
            text += f" {error}"
        if description:
            text += f": {description}"
        raise TokenRequestFailed(text, error=error, description=description, status=answer.status)
    access = data["access_token"]
    refresh = data.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = None  # none, or nothing usable: the access token alone
    given = [("access_token", access)] + ([("refresh_token", refresh)] if refresh is not None else [])
    for name, value in given:
        if not _usable_token(value):
            raise TokenRequestFailed(
                f"token endpoint answered {answer.status} with an unusable {name} (it must be a "
                f"non-empty string of at most {MAX_TOKEN_BYTES} bytes without control characters)",
                error="invalid_response",
                status=answer.status,
            )
    expires_in = data.get("expires_in")
    try:
        expires = int(expires_in) if expires_in is not None else provider.oauth2.access_token_ttl_seconds
    except (TypeError, ValueError):
        expires = provider.oauth2.access_token_ttl_seconds
    return TokenAnswer(
        access_token=access,
        expires_in=expires,
        refresh_token=refresh,
        token_type=str(data.get("token_type") or "Bearer"),
        scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
    )


def _shown(value: Any, limit: int) -> str | None:
    """A provider's text field cut to ``limit``, control characters as ``?``; None if not text."""
    if not isinstance(value, str) or not value:
        return None
    return CONTROL_CHARACTERS.sub("?", value[:limit])


def _usable_token(value: Any) -> bool:
    """A token Interlink can store and send in a header: a non-empty string, at most
    :data:`MAX_TOKEN_BYTES` bytes, no control characters."""
    return (
        isinstance(value, str)
        and bool(value)
        and len(value.encode("utf-8", "surrogatepass")) <= MAX_TOKEN_BYTES
        and not has_control_characters(value)
    )


async def publish(
    session: AsyncSession, conn: IntegrationConnection, event_type: str, reason: str
) -> str | None:
    """Write an operational event about ``conn`` for its explicit subscribers; None when nobody listens."""
    payload = {
        "connectionId": conn.id,
        "providerKey": conn.provider_key,
        "environment": conn.environment.value,
        "name": conn.name,
        "status": conn.status.value,
        "reason": reason[:1000],
    }
    return await operational.publish(session, conn.tenant_id, event_type, payload)


class Tokens:
    """Obtains, stores and refreshes OAuth2 tokens of connections."""

    def __init__(self, db: Database, connections: Connections, transport: HttpTransport) -> None:
        self.db = db
        self.connections = connections
        self.secrets: SecretStore = connections.secrets
        self.transport = transport

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> Tokens:
        connections = Connections(runtime.providers, SecretStore.from_runtime(runtime))
        return cls(runtime.db, connections, runtime.transport)

    @staticmethod
    def fresh(conn: IntegrationConnection, now: datetime, min_valid: timedelta) -> bool:
        if ROLE_ACCESS not in (conn.secret_ids or {}):
            return False
        if conn.token_expires_at is None:
            return True
        margin = refresh_margin(conn.token_expires_at, conn.last_refreshed_at, min_valid)
        return conn.token_expires_at > now + margin

    async def _reveal(self, session: AsyncSession, actor: Actor, conn: IntegrationConnection) -> AccessToken:
        revealed = await self.secrets.reveal(
            session,
            actor,
            conn.secret_ids[ROLE_ACCESS],
            purpose="connection access token",
            allow_expired=True,
        )
        return AccessToken(
            revealed.value, conn.token_expires_at, conn.token_version, issued_at=conn.last_refreshed_at
        )

    async def credentials(
        self,
        session: AsyncSession,
        actor: Actor,
        conn: IntegrationConnection,
        *,
        purpose: str = "connection token request",
    ) -> dict[str, str]:
        """The connection's stored credentials (``{}`` if none); audited as ``secret.accessed``."""
        secret_id = (conn.secret_ids or {}).get(ROLE_CREDENTIALS)
        if secret_id is None:
            return {}
        unusable = ConnectionUnavailable(
            f"connection {conn.id}: its stored credentials cannot be read; set them again with "
            f"PATCH /v1/connections/{conn.id}",
            extra={"connectionStatus": conn.status.value},
        )
        try:
            revealed = await self.secrets.reveal(session, actor, secret_id, purpose=purpose)
        except NotFound:
            raise unusable from None
        try:
            value: Any = json.loads(revealed.value)
        except ValueError:
            raise unusable from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise unusable
        return value

    async def get_access_token(
        self,
        actor: Actor,
        connection_id: str,
        *,
        min_valid: timedelta = DEFAULT_MIN_VALID,
        stale_version: int | None = None,
    ) -> AccessToken:
        """A usable access token (see the module docstring). Raises ConnectionUnavailable/NotFound."""
        if stale_version is None:
            async with self.db.unit_of_work() as session:
                conn = await self.connections.get(session, actor, connection_id)
                self._check_usable(conn)
                if self.fresh(conn, utcnow(), min_valid):
                    return await self._reveal(session, actor, conn)
        return await self.refresh(actor, connection_id, min_valid=min_valid, stale_version=stale_version)

    @staticmethod
    def _check_usable(conn: IntegrationConnection) -> None:
        if conn.auth_type not in OAUTH2_TYPES:
            raise ConnectionUnavailable(
                f"connection {conn.id} uses {conn.auth_type.value}, not OAuth2: it has no access token"
            )
        if conn.status in (S.DISABLED, S.REVOKED):
            raise ConnectionUnavailable(
                f"connection {conn.id} is {conn.status.value}", extra={"connectionStatus": conn.status.value}
            )
        stored = conn.secret_ids or {}
        if (
            conn.auth_type is AuthenticationType.OAUTH2_AUTHORIZATION_CODE
            and ROLE_ACCESS not in stored
            and ROLE_REFRESH not in stored
        ):
            raise ConnectionUnavailable(
                f"connection {conn.id} is not authorized yet: send the user to its authorize URL "
                "(GET /v1/connections/{id}/oauth/authorize-url)",
                extra={"connectionStatus": conn.status.value},
            )

    async def refresh(
        self,
        actor: Actor,
        connection_id: str,
        *,
        min_valid: timedelta = DEFAULT_MIN_VALID,
        stale_version: int | None = None,
        force: bool = False,
    ) -> AccessToken:
        """Single-flight refresh under the connection row lock (see the module docstring)."""
        failure: TokenRequestFailed | None = None
        status: IntegrationConnectionStatus | None = None
        async with self.db.unit_of_work() as session:
            conn = await self.connections.get(session, actor, connection_id, for_update=True)
            self._check_usable(conn)
            now = utcnow()
            moved_on = stale_version is not None and conn.token_version != stale_version
            if self.fresh(conn, now, min_valid) and not force and (stale_version is None or moved_on):
                return await self._reveal(session, actor, conn)
            try:
                answer = await self._obtain(session, actor, conn)
            except TokenRequestFailed as exc:
                failure = exc
                status = await self._failed(session, actor, conn, exc)
            else:
                await self.store(session, actor, conn, answer)
                return await self._reveal(session, actor, conn)
        assert failure is not None and status is not None
        raise ConnectionUnavailable(
            f"connection {connection_id}: token refresh failed, now {status.value}: {failure}",
            extra={"connectionStatus": status.value, "error": failure.error},
        )

    async def _obtain(self, session: AsyncSession, actor: Actor, conn: IntegrationConnection) -> TokenAnswer:
        provider = self.connections.provider(conn.provider_key)
        creds = await self.credentials(session, actor, conn)
        client_id = creds.get("clientId", "")
        client_secret = creds.get("clientSecret")
        form: dict[str, str]
        if conn.auth_type is AuthenticationType.OAUTH2_CLIENT_CREDENTIALS:
            form = {"grant_type": "client_credentials"}
        else:
            refresh_id = (conn.secret_ids or {}).get(ROLE_REFRESH)
            if refresh_id is None:
                raise TokenRequestFailed(
                    "no refresh token: the connection must be authorized again", error="invalid_grant"
                )
            refresh = await self.secrets.reveal(
                session, actor, refresh_id, purpose="connection token refresh"
            )
            form = {"grant_type": "refresh_token", "refresh_token": refresh.value}
        if conn.scopes:
            separator = provider.oauth2.scope_separator if provider.oauth2 else " "
            form["scope"] = separator.join(conn.scopes)
        last: TokenRequestFailed | None = None
        for attempt in range(ATTEMPTS):
            try:
                return await request_token(self.transport, provider, conn, form, client_id, client_secret)
            except TokenRequestFailed as exc:
                last = exc
                if not exc.retryable or attempt == ATTEMPTS - 1:
                    break
                await asyncio.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
        assert last is not None
        raise last

    async def store(
        self, session: AsyncSession, actor: Actor, conn: IntegrationConnection, answer: TokenAnswer
    ) -> None:
        """Store a token answer as secrets, bump the version, make the connection ACTIVE (audited)."""
        now = utcnow()
        expires_at = now + timedelta(seconds=answer.expires_in) if answer.expires_in else None
        secret_expiry = expires_at if expires_at is not None and expires_at > now else None
        ids = dict(conn.secret_ids or {})
        ids[ROLE_ACCESS] = await self._put(
            session, actor, conn, ids.get(ROLE_ACCESS), ROLE_ACCESS, answer.access_token,
            TokenType.OAUTH2_ACCESS, secret_expiry,
        )  # fmt: skip
        if answer.refresh_token is not None:
            ids[ROLE_REFRESH] = await self._put(
                session, actor, conn, ids.get(ROLE_REFRESH), ROLE_REFRESH, answer.refresh_token,
                TokenType.OAUTH2_REFRESH, None,
            )  # fmt: skip
        before = {"status": conn.status, "version": conn.token_version, "expiresAt": conn.token_expires_at}
        conn.secret_ids = ids
        conn.token_version += 1
        conn.token_expires_at = expires_at
        conn.last_refreshed_at = now
        conn.last_error = None
        conn.last_error_at = None
        self.connections.set_status(conn, S.ACTIVE, now)
        conn.updated_at = now
        after = {"status": conn.status, "version": conn.token_version, "expiresAt": conn.token_expires_at}
        audit.record(
            session, actor, "connection.token_refreshed", "connection", conn.id, audit.diff(before, after)
        )
        await session.flush()

    async def _put(
        self,
        session: AsyncSession,
        actor: Actor,
        conn: IntegrationConnection,
        existing: str | None,
        role: str,
        value: str,
        token_type: TokenType,
        expires_at: datetime | None,
    ) -> str:
        if existing is not None:
            secret = await self.secrets.rotate(session, actor, existing, value, expires_at=expires_at)
            return secret.id
        secret = await self.secrets.create(
            session,
            actor,
            SecretSpec(
                name=f"connection {conn.id} {role}",
                value=value,
                token_type=token_type,
                owner_type=OWNER_TYPE,
                owner_id=conn.id,
                meta={"connectionId": conn.id},
                expires_at=expires_at,
            ),
        )
        return secret.id

    async def _failed(
        self, session: AsyncSession, actor: Actor, conn: IntegrationConnection, exc: TokenRequestFailed
    ) -> IntegrationConnectionStatus:
        now = utcnow()
        new = S.EXPIRED if exc.expired else S.ERROR
        before = conn.status
        moved = self.connections.set_status(conn, new, now, error=str(exc))
        conn.last_error = str(exc)[:1000]
        conn.last_error_at = now
        conn.updated_at = now
        audit.record(
            session,
            actor,
            "connection.expired" if new is S.EXPIRED else "connection.error",
            "connection",
            conn.id,
            {
                "status": {"old": before.value, "new": new.value},
                "error": {"old": None, "new": str(exc)[:500]},
            },
        )
        log.warning(
            "connection_token_failed", connection_id=conn.id, tenant_id=conn.tenant_id, status=new.value,
            error=exc.error, http_status=exc.status,
        )  # fmt: skip
        if moved:  # once per change: a connection already EXPIRED/ERROR does not repeat it
            await publish(session, conn, EXPIRED_EVENT if new is S.EXPIRED else ERROR_EVENT, str(exc))
        await session.flush()
        return new


async def refresh_expiring(runtime: Runtime, within: timedelta, *, limit: int = 500) -> dict[str, int]:
    """The ``connections.refresh`` job: refresh OAuth2 tokens that expire within ``within`` (at most
    half their lifetime: :func:`refresh_margin`)."""
    tokens = Tokens.from_runtime(runtime)
    now = utcnow()
    deadline = now + within
    async with runtime.db.unit_of_work(write=False) as session:
        found = (
            await session.execute(
                sa.select(
                    IntegrationConnection.id,
                    IntegrationConnection.tenant_id,
                    IntegrationConnection.token_expires_at,
                    IntegrationConnection.last_refreshed_at,
                )
                .where(
                    IntegrationConnection.token_expires_at.is_not(None),
                    IntegrationConnection.token_expires_at <= deadline,
                    IntegrationConnection.status == S.ACTIVE,
                    IntegrationConnection.auth_type.in_(list(OAUTH2_TYPES)),
                )
                .order_by(IntegrationConnection.token_expires_at)
                .limit(limit)
            )
        ).all()
    rows = [
        (connection_id, tenant_id)
        for connection_id, tenant_id, expires_at, issued_at in found
        if expires_at is not None and expires_at <= now + refresh_margin(expires_at, issued_at, within)
    ]
    refreshed = failed = 0
    for connection_id, tenant_id in rows:
        try:
            await tokens.get_access_token(system_actor(tenant_id), connection_id, min_valid=within)
            refreshed += 1
        except ConnectionUnavailable:
            failed += 1
    return {"due": len(rows), "refreshed": refreshed, "failed": failed}

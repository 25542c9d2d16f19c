"""Connections (the guide's IntegrationConnectionInfo): a tenant's link to one provider.

A connection names a provider of the catalogue (``providerKey``), one of the provider's
environments (IntegrationEnvironment), a ``name`` unique in the tenant, a ``config`` validated
against the provider's ``config_schema`` (JSON Schema 2020-12), one of the provider's
authentication types and the credentials of that type.

Credentials
-----------
Credentials are stored only as IntegrationSecret rows (:class:`~interlink.core.secrets.SecretStore`:
encrypted, owner type ``connection``, owner id the connection id); the connection row keeps the
secret ids by role (``credentials``, ``accessToken``, ``refreshToken``) and never a value. No
answer of the API contains them, and audit rows carry field names, never values. Shapes by
authentication type (every value a non-empty string of at most 4096 characters):

==============================  =============================================================
``authType``                    ``credentials``
==============================  =============================================================
``NONE``                        none (``{}`` or omitted)
``API_KEY``                     ``apiKey``
``BASIC``                       ``username``, ``password``
``BEARER``                      ``token``
``HMAC``                        ``secret``
``OAUTH2_CLIENT_CREDENTIALS``   ``clientId``, ``clientSecret``
``OAUTH2_AUTHORIZATION_CODE``   ``clientId``, optional ``clientSecret`` (public clients use PKCE)
==============================  =============================================================

Status and transitions
----------------------
A new connection is ``ACTIVE`` when its credentials are usable as given (``NONE``, ``API_KEY``,
``BASIC``, ``BEARER``, ``HMAC``) and ``PENDING`` for the OAuth2 types until a token is obtained.

============  =======================================================  ==========================
from          to                                                       by
============  =======================================================  ==========================
PENDING       ACTIVE, ERROR, EXPIRED, DISABLED, REVOKED                token obtained / failure /
                                                                       tenant
ACTIVE        PENDING, EXPIRED, ERROR, DISABLED, REVOKED               new OAuth2 credentials /
                                                                       refresh failure / tenant
EXPIRED       ACTIVE, PENDING, ERROR, DISABLED, REVOKED                new token or credentials
ERROR         ACTIVE, PENDING, EXPIRED, DISABLED, REVOKED              new token or credentials
DISABLED      ACTIVE, PENDING, REVOKED                                 tenant (re-enable)
REVOKED       (none: final; the connection can only be deleted)
============  =======================================================  ==========================

Through ``PATCH`` a tenant may ask for ``ACTIVE`` (re-enable; a connection without a usable
credential or token goes to ``PENDING`` instead), ``DISABLED`` or ``REVOKED``; ``EXPIRED``,
``ERROR`` and ``PENDING`` are set by Interlink only. Any other change is refused with 409.
Replacing the credentials of an ``EXPIRED`` or ``ERROR`` connection makes it ``ACTIVE`` (static
types) or ``PENDING`` (OAuth2 types, until the next token).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.connections.catalogue import ProviderCatalogue
from interlink.connections.models import IntegrationConnection
from interlink.connections.schemas import IntegrationProviderExtended, render_template
from interlink.core import audit
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.enums import (
    AuthenticationType,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
    IntegrationProviderStatus,
    TokenType,
)
from interlink.core.errors import Conflict, NotFound, ValidationFailed
from interlink.core.ids import new_id
from interlink.core.models import IntegrationSecret
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.core.secrets import SecretSpec, SecretStore
from interlink.core.text import has_control_characters

S = IntegrationConnectionStatus
A = AuthenticationType

OWNER_TYPE = "connection"
MAX_CONFIG_BYTES = 16_384
MAX_METADATA_BYTES = 16_384
MAX_CREDENTIAL_CHARS = 4096
MAX_SCOPES = 50
MAX_JSON_DEPTH = 32
"""Nesting levels allowed in ``config`` and ``metadata`` (answers must stay serializable)."""
_SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$")

TRANSITIONS: dict[IntegrationConnectionStatus, frozenset[IntegrationConnectionStatus]] = {
    S.PENDING: frozenset({S.ACTIVE, S.ERROR, S.EXPIRED, S.DISABLED, S.REVOKED}),
    S.ACTIVE: frozenset({S.PENDING, S.EXPIRED, S.ERROR, S.DISABLED, S.REVOKED}),
    S.EXPIRED: frozenset({S.ACTIVE, S.PENDING, S.ERROR, S.DISABLED, S.REVOKED}),
    S.ERROR: frozenset({S.ACTIVE, S.PENDING, S.EXPIRED, S.DISABLED, S.REVOKED}),
    S.DISABLED: frozenset({S.ACTIVE, S.PENDING, S.REVOKED}),
    S.REVOKED: frozenset(),
}
"""Allowed status changes (see the module docstring)."""

TENANT_SETTABLE = frozenset({S.ACTIVE, S.DISABLED, S.REVOKED})
OAUTH2_TYPES = frozenset({A.OAUTH2_CLIENT_CREDENTIALS, A.OAUTH2_AUTHORIZATION_CODE})

# auth type -> (required fields, optional fields)
CREDENTIAL_FIELDS: dict[AuthenticationType, tuple[tuple[str, ...], tuple[str, ...]]] = {
    A.NONE: ((), ()),
    A.API_KEY: (("apiKey",), ()),
    A.BASIC: (("username", "password"), ()),
    A.BEARER: (("token",), ()),
    A.HMAC: (("secret",), ()),
    A.OAUTH2_CLIENT_CREDENTIALS: (("clientId", "clientSecret"), ()),
    A.OAUTH2_AUTHORIZATION_CODE: (("clientId",), ("clientSecret",)),
}
TOKEN_TYPES: dict[AuthenticationType, TokenType] = {
    A.API_KEY: TokenType.API_KEY,
    A.BASIC: TokenType.BASIC,
    A.BEARER: TokenType.BEARER,
    A.HMAC: TokenType.GENERIC,
    A.OAUTH2_CLIENT_CREDENTIALS: TokenType.OAUTH2_CLIENT_SECRET,
    A.OAUTH2_AUTHORIZATION_CODE: TokenType.OAUTH2_CLIENT_SECRET,
}
ROLE_CREDENTIALS = "credentials"
ROLE_ACCESS = "accessToken"
ROLE_REFRESH = "refreshToken"


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection to create (or to validate without saving)."""

    provider_key: str
    name: str
    environment: IntegrationEnvironment = IntegrationEnvironment.PRODUCTION
    config: dict[str, Any] | None = None
    auth_type: AuthenticationType | None = None
    credentials: dict[str, str] | None = None
    scopes: list[str] | None = None
    metadata: dict[str, Any] | None = None

    def __repr__(self) -> str:  # credentials must never reach a log line or a traceback
        return (
            f"ConnectionSpec(provider_key={self.provider_key!r}, name={self.name!r}, "
            f"environment={self.environment!r}, credentials=[redacted])"
        )


@dataclass(frozen=True)
class CheckedConnection:
    """A spec that passed validation, with what was derived from the provider."""

    provider: IntegrationProviderExtended
    auth_type: AuthenticationType
    environment: IntegrationEnvironment
    config: dict[str, Any]
    base_url: str
    scopes: list[str]


@dataclass(frozen=True)
class ConnectionFilter:
    provider_key: str | None = None
    environment: IntegrationEnvironment | None = None
    status: IntegrationConnectionStatus | None = None
    auth_type: AuthenticationType | None = None


# -- validation ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 200 or name != name.strip():
        raise ValidationFailed("name must be 1–200 characters without surrounding spaces", field="name")
    if has_control_characters(name):
        raise ValidationFailed("name must not contain control characters", field="name")
    return name


def _json_size(value: Any, field: str, limit: int) -> None:
    """``value`` is JSON of at most ``limit`` bytes nested at most :data:`MAX_JSON_DEPTH` levels."""
    try:
        size = len(json.dumps(value, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationFailed(f"{field} must be a JSON object", field=field) from exc
    if size > limit:
        raise ValidationFailed(f"{field} must be at most {limit} bytes as JSON", field=field)
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValidationFailed(
            f"{field} must not nest objects and arrays more than {MAX_JSON_DEPTH} levels deep", field=field
        )


def _depth(value: Any) -> int:
    """Levels of objects and arrays in ``value`` (``{}`` is 1, a scalar 0)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_config(provider: IntegrationProviderExtended, config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` against the provider's JSON Schema; errors name ``config.<path>``."""
    config = dict(config or {})
    _json_size(config, "config", MAX_CONFIG_BYTES)
    schema = provider.config_schema
    if schema is None:
        if config:
            name = sorted(config)[0]
            raise ValidationFailed(
                f"provider {provider.key!r} takes no config (got {name!r})", field=f"config.{name}"
            )
        return config
    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return config
    found: list[dict[str, str]] = []
    for error in errors[:20]:
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [r for r in error.validator_value if r not in error.instance]
            path += missing[:1]
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set((error.schema or {}).get("properties", {}))
            extra = sorted(k for k in error.instance if k not in allowed)
            path += extra[:1]
        found.append({"field": ".".join(["config", *path]), "message": error.message[:300]})
    first = found[0]
    raise ValidationFailed(f"{first['field']}: {first['message']}", extra={"errors": found})


def check_credentials(auth_type: AuthenticationType, credentials: dict[str, Any] | None) -> dict[str, str]:
    """The credentials of ``auth_type`` (see the module docstring); errors name ``credentials.<x>``."""
    credentials = dict(credentials or {})
    required, optional = CREDENTIAL_FIELDS[auth_type]
    for name in sorted(credentials):
        if name not in required and name not in optional:
            allowed = ", ".join(required + optional) or "no credentials"
            raise ValidationFailed(
                f"credentials.{name} is not a field of {auth_type.value} credentials (takes {allowed})",
                field=f"credentials.{name}",
            )
    for name in required:
        if name not in credentials:
            raise ValidationFailed(
                f"credentials.{name} is required for {auth_type.value}", field=f"credentials.{name}"
            )
    for name, value in credentials.items():
        if not isinstance(value, str) or not value:
            raise ValidationFailed(
                f"credentials.{name} must be a non-empty string", field=f"credentials.{name}"
            )
        if len(value) > MAX_CREDENTIAL_CHARS or has_control_characters(value):
            raise ValidationFailed(
                f"credentials.{name} must be at most {MAX_CREDENTIAL_CHARS} characters without "
                "control characters",
                field=f"credentials.{name}",
            )
    return credentials


def check_scopes(scopes: list[str] | None) -> list[str] | None:
    if scopes is None:
        return None
    if len(scopes) > MAX_SCOPES:
        raise ValidationFailed(f"scopes takes at most {MAX_SCOPES} entries", field="scopes")
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            raise ValidationFailed(
                "a scope is 1–200 printable characters without spaces, quotes or backslashes",
                field=f"scopes.{index}",
            )
    return list(dict.fromkeys(scopes))


def default_scopes(provider: IntegrationProviderExtended, auth_type: AuthenticationType) -> list[str]:
    if provider.oauth2 is None or auth_type not in OAUTH2_TYPES:
        return []
    if auth_type is A.OAUTH2_CLIENT_CREDENTIALS and provider.oauth2.client_credentials_scopes is not None:
        return list(provider.oauth2.client_credentials_scopes)
    return list(provider.oauth2.default_scopes)


def resolve_base_url(
    provider: IntegrationProviderExtended, environment: IntegrationEnvironment, config: dict[str, Any]
) -> str:
    template = provider.base_urls.get(environment)
    if template is None:
        offered = ", ".join(e.value for e in provider.base_urls)
        raise ValidationFailed(
            f"provider {provider.key!r} has no {environment.value} environment (offers {offered})",
            field="environment",
        )
    return render(template, config, provider)


def render(template: str, config: dict[str, Any], provider: IntegrationProviderExtended) -> str:
    try:
        return render_template(template, config, provider.config_schema)
    except ValueError as exc:
        text = str(exc)
        match = re.match(r"(config\.[a-z0-9_]+)", text)
        raise ValidationFailed(text, field=match.group(1) if match else "config") from None


def initial_status(auth_type: AuthenticationType) -> IntegrationConnectionStatus:
    return S.PENDING if auth_type in OAUTH2_TYPES else S.ACTIVE


def _snapshot(conn: IntegrationConnection) -> dict[str, Any]:
    return {
        "providerKey": conn.provider_key,
        "environment": conn.environment,
        "name": conn.name,
        "status": conn.status,
        "authType": conn.auth_type,
        "config": conn.config,
        "metadata": conn.meta,
        "scopes": conn.scopes,
    }


async def connection_holding(
    session: AsyncSession, secret: IntegrationSecret
) -> tuple[IntegrationConnection, str] | None:
    """The connection that uses ``secret`` as one of its roles, with the role; None if none.
    Such a secret changes only through the connection (``PATCH``, token refresh, ``DELETE``)."""
    if secret.owner_type != OWNER_TYPE or secret.owner_id is None:
        return None
    conn = await session.scalar(
        sa.select(IntegrationConnection).where(
            IntegrationConnection.tenant_id == secret.tenant_id,
            IntegrationConnection.id == secret.owner_id,
        )
    )
    if conn is None:
        return None
    for role, secret_id in (conn.secret_ids or {}).items():
        if secret_id == secret.id:
            return conn, role
    return None


# -- the service -----------------------------------------------------------------------------------


class Connections:
    """Connection operations for one catalogue and secret store (no state of its own)."""

    def __init__(self, catalogue: ProviderCatalogue, secrets: SecretStore) -> None:
        self.catalogue = catalogue
        self.secrets = secrets

    def provider(self, key: str, field: str = "providerKey") -> IntegrationProviderExtended:
        provider = self.catalogue.get(key)
        if provider is None:
            raise ValidationFailed(f"provider {key!r} is not in the catalogue", field=field)
        return provider

    def check(self, spec: ConnectionSpec) -> CheckedConnection:
        """Validate a spec without touching the database (``POST /v1/connections/validate``)."""
        check_name(spec.name)
        provider = self.provider(spec.provider_key)
        if provider.status is IntegrationProviderStatus.DISABLED:
            # A DISABLED provider takes no new connections; existing ones keep working.
            raise ValidationFailed(
                f"provider {provider.key!r} is disabled in the catalogue (no new connections)",
                field="providerKey",
            )
        auth_type = spec.auth_type or provider.auth_types[0]
        if auth_type not in provider.auth_types:
            offered = ", ".join(t.value for t in provider.auth_types)
            raise ValidationFailed(
                f"provider {provider.key!r} does not accept {auth_type.value} (accepts {offered})",
                field="authType",
            )
        config = check_config(provider, spec.config)
        base_url = resolve_base_url(provider, spec.environment, config)
        check_credentials(auth_type, spec.credentials)
        scopes = check_scopes(spec.scopes)
        if scopes and auth_type not in OAUTH2_TYPES:
            raise ValidationFailed("scopes are only used with OAUTH2_* authentication", field="scopes")
        if spec.metadata is not None:
            _json_size(spec.metadata, "metadata", MAX_METADATA_BYTES)
        return CheckedConnection(
            provider=provider,
            auth_type=auth_type,
            environment=spec.environment,
            config=config,
            base_url=base_url,
            scopes=scopes if scopes is not None else default_scopes(provider, auth_type),
        )

    # -- queries -----------------------------------------------------------------------------------

    async def get(
        self, session: AsyncSession, actor: Actor, connection_id: str, *, for_update: bool = False
    ) -> IntegrationConnection:
        stmt = sa.select(IntegrationConnection).where(
            IntegrationConnection.tenant_id == actor.tenant_id, IntegrationConnection.id == connection_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        conn = await session.scalar(stmt)
        if conn is None:
            raise NotFound(f"connection {connection_id} not found")
        return conn

    async def list_connections(
        self, session: AsyncSession, actor: Actor, page: PageRequest, flt: ConnectionFilter
    ) -> Page[IntegrationConnection]:
        """Connections of the actor's tenant, newest first."""
        stmt = sa.select(IntegrationConnection).where(IntegrationConnection.tenant_id == actor.tenant_id)
        if flt.provider_key is not None:
            stmt = stmt.where(IntegrationConnection.provider_key == flt.provider_key)
        if flt.environment is not None:
            stmt = stmt.where(IntegrationConnection.environment == flt.environment)
        if flt.status is not None:
            stmt = stmt.where(IntegrationConnection.status == flt.status)
        if flt.auth_type is not None:
            stmt = stmt.where(IntegrationConnection.auth_type == flt.auth_type)
        rows = (await session.scalars(paginate_query(stmt, IntegrationConnection.id, page))).all()
        return make_page(rows, page, lambda c: c.id)

    # -- mutations ---------------------------------------------------------------------------------

    async def _name_free(self, session: AsyncSession, actor: Actor, name: str, exclude: str = "") -> None:
        taken = await session.scalar(
            sa.select(IntegrationConnection.id).where(
                IntegrationConnection.tenant_id == actor.tenant_id,
                IntegrationConnection.name == name,
                IntegrationConnection.id != exclude,
            )
        )
        if taken is not None:
            raise Conflict(f"a connection named {name!r} exists already in this tenant")

    async def _store_credentials(
        self,
        session: AsyncSession,
        actor: Actor,
        conn: IntegrationConnection,
        credentials: dict[str, str],
    ) -> None:
        """Create or replace the connection's ``credentials`` secret (nothing stored for NONE)."""
        ids = dict(conn.secret_ids or {})
        old = ids.pop(ROLE_CREDENTIALS, None)
        if old is not None:
            await self._delete_secret(session, actor, old)
        if credentials:
            secret = await self.secrets.create(
                session,
                actor,
                SecretSpec(
                    name=f"connection {conn.id} {ROLE_CREDENTIALS}",
                    value=json.dumps(credentials, separators=(",", ":")),
                    token_type=TOKEN_TYPES[conn.auth_type],
                    owner_type=OWNER_TYPE,
                    owner_id=conn.id,
                    meta={"connectionId": conn.id, "fields": sorted(credentials)},
                ),
            )
            ids[ROLE_CREDENTIALS] = secret.id
        conn.secret_ids = ids

    async def _delete_secret(self, session: AsyncSession, actor: Actor, secret_id: str) -> None:
        """Delete one of the connection's secrets; one already gone is not an error."""
        try:
            await self.secrets.delete(session, actor, secret_id)
        except NotFound:
            return

    async def drop_tokens(self, session: AsyncSession, actor: Actor, conn: IntegrationConnection) -> None:
        """Delete the stored access and refresh tokens (new credentials make them meaningless)."""
        ids = dict(conn.secret_ids or {})
        for role in (ROLE_ACCESS, ROLE_REFRESH):
            secret_id = ids.pop(role, None)
            if secret_id is not None:
                await self._delete_secret(session, actor, secret_id)
        conn.secret_ids = ids
        conn.token_expires_at = None

    async def create(
        self, session: AsyncSession, actor: Actor, spec: ConnectionSpec
    ) -> IntegrationConnection:
        checked = self.check(spec)
        await self._name_free(session, actor, spec.name)
        now = utcnow()
        conn = IntegrationConnection(
            id=new_id("conn"),
            tenant_id=actor.tenant_id,
            provider_key=checked.provider.key,
            environment=checked.environment,
            name=spec.name,
            status=initial_status(checked.auth_type),
            auth_type=checked.auth_type,
            config=checked.config,
            meta=dict(spec.metadata or {}),
            scopes=checked.scopes,
            secret_ids={},
            token_version=0,
            token_expires_at=None,
            last_refreshed_at=None,
            last_error=None,
            last_error_at=None,
            status_changed_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(conn)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"a connection named {spec.name!r} exists already in this tenant") from exc
        credentials = check_credentials(checked.auth_type, spec.credentials)
        await self._store_credentials(session, actor, conn, credentials)
        changes = audit.diff({}, _snapshot(conn))
        changes["credentialFields"] = {"old": None, "new": sorted(credentials)}
        audit.record(session, actor, "connection.created", "connection", conn.id, changes)
        await session.flush()
        return conn

    def set_status(
        self,
        conn: IntegrationConnection,
        new: IntegrationConnectionStatus,
        now: datetime,
        *,
        error: str | None = None,
    ) -> bool:
        """Move ``conn`` to ``new`` if the table allows it (409 otherwise); False if unchanged."""
        if conn.status is new:
            return False
        if new not in TRANSITIONS[conn.status]:
            raise Conflict(
                f"connection {conn.id} cannot go from {conn.status.value} to {new.value}",
                extra={"connectionStatus": conn.status.value},
            )
        conn.status = new
        conn.status_changed_at = now
        if error is not None:
            conn.last_error = error[:1000]
            conn.last_error_at = now
        return True

    def usable(self, conn: IntegrationConnection) -> bool:
        """True when the connection has what it needs to call the provider without a new grant."""
        if conn.auth_type is A.NONE:
            return True
        if conn.auth_type is A.OAUTH2_AUTHORIZATION_CODE:
            return ROLE_ACCESS in (conn.secret_ids or {}) or ROLE_REFRESH in (conn.secret_ids or {})
        if conn.auth_type is A.OAUTH2_CLIENT_CREDENTIALS:
            return ROLE_ACCESS in (conn.secret_ids or {})
        return ROLE_CREDENTIALS in (conn.secret_ids or {})

    async def update(
        self, session: AsyncSession, actor: Actor, connection_id: str, changes: dict[str, Any]
    ) -> IntegrationConnection:
        """Change ``name``, ``config``, ``credentials``, ``scopes``, ``metadata`` and/or ``status``."""
        conn = await self.get(session, actor, connection_id, for_update=True)
        provider = self.provider(conn.provider_key)
        before = _snapshot(conn)
        now = utcnow()
        if conn.status is S.REVOKED and set(changes) - {"metadata"}:
            raise Conflict(f"connection {conn.id} is REVOKED; only its metadata can change")
        if "name" in changes:
            name = check_name(changes["name"])
            await self._name_free(session, actor, name, exclude=conn.id)
            conn.name = name
        if "config" in changes:
            config = check_config(provider, changes["config"])
            resolve_base_url(provider, conn.environment, config)
            conn.config = config
        if "scopes" in changes:
            scopes = check_scopes(changes["scopes"])
            if scopes and conn.auth_type not in OAUTH2_TYPES:
                raise ValidationFailed("scopes are only used with OAUTH2_* authentication", field="scopes")
            conn.scopes = scopes if scopes is not None else default_scopes(provider, conn.auth_type)
        if "metadata" in changes:
            meta = dict(changes["metadata"] or {})
            _json_size(meta, "metadata", MAX_METADATA_BYTES)
            conn.meta = meta
        credential_fields: list[str] | None = None
        if changes.get("credentials") is not None:
            credentials = check_credentials(conn.auth_type, changes["credentials"])
            credential_fields = sorted(credentials)
            await self._store_credentials(session, actor, conn, credentials)
            if conn.auth_type in OAUTH2_TYPES:
                await self.drop_tokens(session, actor, conn)
                conn.token_version += 1
            if conn.status in (S.EXPIRED, S.ERROR, S.ACTIVE, S.PENDING):
                self.set_status(conn, S.ACTIVE if self.usable(conn) else S.PENDING, now)
                conn.last_error = None
                conn.last_error_at = None
        if changes.get("status") is not None:
            wanted = IntegrationConnectionStatus(changes["status"])
            if wanted not in TENANT_SETTABLE:
                raise Conflict(
                    f"status {wanted.value} is set by Interlink only (a tenant may set ACTIVE, "
                    "DISABLED or REVOKED)"
                )
            if wanted is S.ACTIVE and not self.usable(conn):
                wanted = S.PENDING
            self.set_status(conn, wanted, now)
        conn.updated_at = now
        diff = audit.diff(before, _snapshot(conn))
        if credential_fields is not None:
            diff["credentialFields"] = {"old": None, "new": credential_fields}
        if diff:
            audit.record(session, actor, "connection.updated", "connection", conn.id, diff)
        await session.flush()
        return conn

    async def delete(self, session: AsyncSession, actor: Actor, connection_id: str) -> None:
        """Delete the connection and every secret it owns."""
        conn = await self.get(session, actor, connection_id, for_update=True)
        before = _snapshot(conn)
        owned = await session.scalars(
            sa.select(IntegrationSecret.id).where(
                IntegrationSecret.tenant_id == actor.tenant_id,
                IntegrationSecret.owner_type == OWNER_TYPE,
                IntegrationSecret.owner_id == conn.id,
            )
        )
        for secret_id in sorted(set(owned.all()) | set((conn.secret_ids or {}).values())):
            try:
                await self.secrets.delete(session, actor, secret_id)
            except NotFound:
                continue
        await session.delete(conn)
        audit.record(
            session, actor, "connection.deleted", "connection", connection_id, audit.diff(before, {})
        )
        await session.flush()

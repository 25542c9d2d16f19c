"""REST and SDK shapes of connections (the guide's IntegrationConnectionInfo). Never a credential."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from interlink.connections.models import IntegrationConnection
from interlink.connections.schemas import PROVIDER_KEY_PATTERN
from interlink.connections.service import CheckedConnection
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus, IntegrationEnvironment
from interlink.core.schemas import ApiModel, RequestModel, UtcDatetime

_CREDENTIALS_DOC = (
    "Credentials of `authType` (write-only, stored encrypted, never returned): API_KEY `apiKey`; "
    "BASIC `username`, `password`; BEARER `token`; HMAC `secret`; OAUTH2_CLIENT_CREDENTIALS "
    "`clientId`, `clientSecret`; OAUTH2_AUTHORIZATION_CODE `clientId` and optional `clientSecret`; "
    "NONE takes none."
)


class ConnectionCreate(RequestModel):
    provider_key: str = Field(pattern=PROVIDER_KEY_PATTERN, description="A provider of `/v1/providers`.")
    environment: IntegrationEnvironment = IntegrationEnvironment.PRODUCTION
    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Settings checked against the provider's `configSchema`."
    )
    auth_type: AuthenticationType | None = Field(
        default=None, description="One of the provider's `authTypes`; default: its first."
    )
    credentials: dict[str, str] | None = Field(default=None, description=_CREDENTIALS_DOC)
    scopes: list[str] | None = Field(
        default=None, max_length=50, description="OAuth2 scopes; default: the provider's default scopes."
    )
    metadata: dict[str, Any] | None = None


class ConnectionUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    credentials: dict[str, str] | None = Field(
        default=None, description="Replaces the stored credentials (and drops OAuth2 tokens)."
    )
    scopes: list[str] | None = Field(default=None, max_length=50)
    metadata: dict[str, Any] | None = None
    status: IntegrationConnectionStatus | None = Field(
        default=None, description="ACTIVE (re-enable), DISABLED or REVOKED; see the documented transitions."
    )


class ConnectionInfo(ApiModel):
    """A connection. ``credentialRoles`` names what is stored (``credentials``, ``accessToken``,
    ``refreshToken``), never a value."""

    id: str
    tenant_id: str
    provider_key: str
    environment: IntegrationEnvironment
    name: str
    status: IntegrationConnectionStatus
    auth_type: AuthenticationType
    config: dict[str, Any]
    metadata: dict[str, Any]
    scopes: list[str]
    credential_roles: list[str]
    token_version: int
    token_expires_at: UtcDatetime | None = None
    last_refreshed_at: UtcDatetime | None = None
    last_error: str | None = None
    last_error_at: UtcDatetime | None = None
    status_changed_at: UtcDatetime
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ConnectionValidation(ApiModel):
    """``POST /v1/connections/validate``: the request is valid; what it would create."""

    valid: bool = True
    provider_key: str
    environment: IntegrationEnvironment
    auth_type: AuthenticationType
    base_url: str
    scopes: list[str]
    status: IntegrationConnectionStatus = Field(description="The status a connection would start in.")


class AuthorizeUrl(ApiModel):
    """Where to send the user to grant access; valid until ``expiresAt``."""

    url: str
    state_expires_at: UtcDatetime
    redirect_uri: str


class OAuthCallbackResult(ApiModel):
    connection_id: str
    status: IntegrationConnectionStatus
    token_expires_at: UtcDatetime | None = None


def connection_info(conn: IntegrationConnection) -> ConnectionInfo:
    return ConnectionInfo(
        id=conn.id,
        tenant_id=conn.tenant_id,
        provider_key=conn.provider_key,
        environment=conn.environment,
        name=conn.name,
        status=conn.status,
        auth_type=conn.auth_type,
        config=conn.config or {},
        metadata=conn.meta or {},
        scopes=conn.scopes or [],
        credential_roles=sorted(conn.secret_ids or {}),
        token_version=conn.token_version,
        token_expires_at=conn.token_expires_at,
        last_refreshed_at=conn.last_refreshed_at,
        last_error=conn.last_error,
        last_error_at=conn.last_error_at,
        status_changed_at=conn.status_changed_at,
        created_at=conn.created_at,
        updated_at=conn.updated_at,
    )


def validation_info(checked: CheckedConnection, status: IntegrationConnectionStatus) -> ConnectionValidation:
    return ConnectionValidation(
        provider_key=checked.provider.key,
        environment=checked.environment,
        auth_type=checked.auth_type,
        base_url=checked.base_url,
        scopes=checked.scopes,
        status=status,
    )


ProxyQueryValue = str | int | float | bool | list[str | int | float | bool] | None


class ProxyCall(RequestModel):
    """``POST /v1/connections/{id}/proxy``: one call to the provider through the connection."""

    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(
        min_length=1,
        max_length=2048,
        description="Starts with `/`; joined to the connection's base URL (e.g. `/v1/customers`).",
    )
    query: dict[str, ProxyQueryValue] | None = Field(default=None, description="Query parameters.")
    headers: dict[str, str] | None = Field(
        default=None, description="Extra headers; credentials are injected by the connection."
    )
    body: Any = Field(default=None, description="A JSON body (omit for none).")
    form: dict[str, ProxyQueryValue] | None = Field(
        default=None, description="A form body (`application/x-www-form-urlencoded`) instead of `body`."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Sent as `Idempotency-Key`; allows retrying POST/PATCH.",
    )
    max_attempts: int = Field(default=3, ge=1, le=5, description="Attempts including retries.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=120, description="Per attempt; default 30.")


class ProxyTiming(ApiModel):
    dns_ms: float
    connect_ms: float
    tls_ms: float
    first_byte_ms: float
    total_ms: float
    reused: bool


class ProxyRateLimit(ApiModel):
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


class ProxyAnswer(ApiModel):
    """The provider's answer (any status): Interlink answers 200 whenever the provider answered."""

    status: int = Field(description="The provider's HTTP status.")
    ok: bool
    headers: dict[str, str] = Field(description="Lower-case names; hop-by-hop and Set-Cookie removed.")
    data: Any = Field(default=None, description="The JSON-decoded body, or the text of a text body.")
    body_base64: str | None = Field(default=None, description="A binary body, base64-encoded.")
    truncated: bool = False
    error_class: str | None = None
    request_id: str | None = Field(default=None, description="The call in `GET /v1/api-requests/{id}`.")
    attempts: int
    duration_ms: float
    retry_after_seconds: float | None = None
    timing: ProxyTiming
    rate_limit: ProxyRateLimit | None = None

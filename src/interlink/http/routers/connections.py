"""``/v1/connections``: a tenant's connections to providers, and the public OAuth2 callback.

Thin: validation, storage and tokens live in :mod:`interlink.connections.service`,
:mod:`interlink.connections.oauth` and :mod:`interlink.connections.authorize`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlink.connections.authorize import Authorizer, StateSigner
from interlink.connections.connection_schemas import (
    AuthorizeUrl,
    ConnectionCreate,
    ConnectionInfo,
    ConnectionUpdate,
    ConnectionValidation,
    OAuthCallbackResult,
    connection_info,
    validation_info,
)
from interlink.connections.oauth import Tokens
from interlink.connections.schemas import PROVIDER_KEY_PATTERN
from interlink.connections.service import ConnectionFilter, Connections, ConnectionSpec, initial_status
from interlink.core.actor import Actor
from interlink.core.enums import (
    ApiKeyScope,
    AuthenticationType,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
)
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.core.secrets import SecretStore
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/connections", tags=["connections"], responses=STANDARD_ERRORS)
callback_router = APIRouter(tags=["connections"], responses=error_responses(400, 413, 422, 429, 503))

ConnectionId = Path(max_length=64, description="A connection id (`conn_...`).")


def _service(request: Request) -> Connections:
    runtime = get_runtime(request)
    return Connections(runtime.providers, SecretStore.from_runtime(runtime))


def _authorizer(request: Request) -> Authorizer:
    runtime = get_runtime(request)
    settings = runtime.settings
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    return Authorizer(Tokens.from_runtime(runtime), StateSigner(runtime.local_secrets.key_pepper), public_url)


def _spec(body: ConnectionCreate) -> ConnectionSpec:
    return ConnectionSpec(
        provider_key=body.provider_key,
        name=body.name,
        environment=body.environment,
        config=body.config,
        auth_type=body.auth_type,
        credentials=body.credentials,
        scopes=body.scopes,
        metadata=body.metadata,
    )


@router.post("", status_code=201, response_model=ConnectionInfo, responses=error_responses(409))
async def create_connection(
    body: ConnectionCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE))
) -> ConnectionInfo:
    """Create a connection; credentials are stored encrypted and never returned."""
    async with get_runtime(request).db.unit_of_work() as session:
        conn = await _service(request).create(session, actor, _spec(body))
    return connection_info(conn)


@router.post("/validate", response_model=ConnectionValidation)
async def validate_connection(
    body: ConnectionCreate, request: Request, _actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE))
) -> ConnectionValidation:
    """Check a create request (provider, environment, config, auth type, credentials) without saving."""
    checked = _service(request).check(_spec(body))
    return validation_info(checked, initial_status(checked.auth_type))


@router.get("", response_model=PageOut[ConnectionInfo])
async def list_connections(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    provider_key: str | None = Query(None, alias="providerKey", pattern=PROVIDER_KEY_PATTERN),
    environment: IntegrationEnvironment | None = Query(None),
    status: IntegrationConnectionStatus | None = Query(None),
    auth_type: AuthenticationType | None = Query(None, alias="authType"),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> PageOut[ConnectionInfo]:
    """Connections of the tenant, newest first."""
    flt = ConnectionFilter(
        provider_key=provider_key, environment=environment, status=status, auth_type=auth_type
    )
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await _service(request).list_connections(session, actor, PageRequest(limit, after), flt)
    return PageOut[ConnectionInfo](
        data=[connection_info(c) for c in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{connection_id}", response_model=ConnectionInfo)
async def get_connection(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> ConnectionInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        conn = await _service(request).get(session, actor, connection_id)
    return connection_info(conn)


@router.patch("/{connection_id}", response_model=ConnectionInfo, responses=error_responses(409))
async def update_connection(
    body: ConnectionUpdate,
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> ConnectionInfo:
    """Change name, config, credentials, scopes, metadata or status (documented transitions; else 409)."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    async with get_runtime(request).db.unit_of_work() as session:
        conn = await _service(request).update(session, actor, connection_id, changes)
    return connection_info(conn)


@router.delete("/{connection_id}", status_code=204, response_class=Response)
async def delete_connection(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> Response:
    """Delete the connection and its stored credentials and tokens."""
    async with get_runtime(request).db.unit_of_work() as session:
        await _service(request).delete(session, actor, connection_id)
    return Response(status_code=204)


@router.get(
    "/{connection_id}/oauth/authorize-url", response_model=AuthorizeUrl, responses=error_responses(409)
)
async def authorize_url(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> AuthorizeUrl:
    """The provider's authorize URL (PKCE S256, signed state valid 10 minutes) for an
    OAUTH2_AUTHORIZATION_CODE connection; send the user there."""
    link = await _authorizer(request).authorize_url(actor, connection_id)
    return AuthorizeUrl(url=link.url, state_expires_at=link.state_expires_at, redirect_uri=link.redirect_uri)


@callback_router.get(
    "/v1/oauth/callback",
    response_model=OAuthCallbackResult,
    responses=error_responses(502),
)
async def oauth_callback(
    request: Request,
    code: str | None = Query(None, max_length=4096),
    state: str | None = Query(None, max_length=4096),
    error: str | None = Query(None, max_length=200),
    error_description: str | None = Query(None, max_length=1000),
) -> OAuthCallbackResult:
    """Where the provider sends the user back (public: the signed ``state`` authenticates it)."""
    conn = await _authorizer(request).callback(code, state, error, error_description)
    return OAuthCallbackResult(
        connection_id=conn.id, status=conn.status, token_expires_at=conn.token_expires_at
    )

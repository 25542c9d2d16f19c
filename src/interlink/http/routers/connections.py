"""``/v1/connections``: a tenant's connections to providers, and the public OAuth2 callback.

Thin: validation, storage and tokens live in :mod:`interlink.connections.service`,
:mod:`interlink.connections.oauth` and :mod:`interlink.connections.authorize`.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, Security
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

from interlink.connections.authorize import Authorizer, StateSigner
from interlink.connections.connection_schemas import (
    AuthorizeUrl,
    ConnectionCreate,
    ConnectionInfo,
    ConnectionUpdate,
    ConnectionValidation,
    OAuthCallbackResult,
    ProxyAnswer,
    ProxyCall,
    connection_info,
    validation_info,
)
from interlink.connections.oauth import Tokens
from interlink.connections.schemas import PROVIDER_KEY_PATTERN
from interlink.connections.service import ConnectionFilter, Connections, ConnectionSpec, initial_status
from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.enums import (
    ApiKeyScope,
    AuthenticationType,
    IntegrationConnectionStatus,
    IntegrationEnvironment,
)
from interlink.core.errors import InterlinkError
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut, UtcDatetime
from interlink.core.secrets import SecretStore
from interlink.http import proxy_path
from interlink.http.auth import bearer_scheme, get_runtime, require
from interlink.http.direct import DirectRequest, first_values
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.outbound import metrics as outbound_metrics
from interlink.outbound.schemas import ApiMetrics

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
    return_to: str | None = Query(
        None,
        alias="returnTo",
        max_length=500,
        description="A path on this server (e.g. `/ui/connections/conn_...`) the callback redirects the "
        "user to, with `oauth=connected` or `oauth=error&error=...&message=...` added to its query.",
    ),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> AuthorizeUrl:
    """The provider's authorize URL (PKCE S256, signed state valid 10 minutes) for an
    OAUTH2_AUTHORIZATION_CODE connection; send the user there."""
    link = await _authorizer(request).authorize_url(actor, connection_id, return_to=return_to)
    return AuthorizeUrl(url=link.url, state_expires_at=link.state_expires_at, redirect_uri=link.redirect_uri)


@router.post("/{connection_id}/oauth/refresh", response_model=ConnectionInfo, responses=error_responses(409))
async def refresh_token(
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> ConnectionInfo:
    """Obtain a new access token now for an OAuth2 connection (its refresh token, or client
    credentials), single-flight with every other refresh of the connection; the connection after.
    409 ``connection-unavailable`` when it cannot have a token (not OAuth2, DISABLED, REVOKED,
    never authorized) or the provider refused (the connection is then EXPIRED or ERROR)."""
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work(write=False) as session:
        seen = (await _service(request).get(session, actor, connection_id)).token_version
    # A token newer than the one seen here (a refresh that finished while this one waited for the
    # lock) is the answer: concurrent requests make one token request.
    await Tokens.from_runtime(runtime).refresh(actor, connection_id, stale_version=seen)
    async with runtime.db.unit_of_work(write=False) as session:
        conn = await _service(request).get(session, actor, connection_id)
    return connection_info(conn)


@callback_router.get(
    "/v1/oauth/callback",
    response_model=OAuthCallbackResult,
    responses={
        **error_responses(502),
        303: {"description": "Back to the `returnTo` path of the authorization."},
    },
)
async def oauth_callback(
    request: Request,
    code: str | None = Query(None, max_length=4096),
    state: str | None = Query(None, max_length=4096),
    error: str | None = Query(None, max_length=200),
    error_description: str | None = Query(None, max_length=1000),
) -> OAuthCallbackResult | RedirectResponse:
    """Where the provider sends the user back (public: the signed ``state`` authenticates it).
    Answers JSON, or, when the authorization was started with ``returnTo``, a 303 to that path with
    the outcome in its query (an unverifiable state is always a problem, never a redirect)."""
    authorizer = _authorizer(request)
    verified = authorizer.signer.verify(state or "", utcnow())
    try:
        conn = await authorizer.callback(code, state, error, error_description)
    except InterlinkError as exc:
        if verified.return_to is None:
            raise
        outcome = {"oauth": "error", "error": exc.code, "message": exc.detail[:300]}
        return RedirectResponse(_with_query(verified.return_to, outcome), status_code=303)
    if verified.return_to is not None:
        outcome = {"oauth": "connected", "connectionId": conn.id}
        return RedirectResponse(_with_query(verified.return_to, outcome), status_code=303)
    return OAuthCallbackResult(
        connection_id=conn.id, status=conn.status, token_expires_at=conn.token_expires_at
    )


@callback_router.head("/v1/oauth/callback", include_in_schema=False)
async def oauth_callback_head() -> Response:
    """405: a HEAD (a link checker, a prefetch) must not complete the authorization as the GET
    would, and a state works once."""
    return Response(status_code=405, headers={"Allow": "GET"})


def _with_query(path: str, values: dict[str, str]) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode(values)}"


@router.post(
    "/{connection_id}/proxy",
    response_model=ProxyAnswer,
    responses=error_responses(409, 502, 504),
)
async def proxy_call(
    body: ProxyCall,
    request: Request,
    connection_id: str = ConnectionId,
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_WRITE)),
) -> Response:
    """Call the provider through the connection: credentials injected, the connection's rate
    limits, retries and circuit breaker applied, the call written to the request log. Any answer of
    the provider is a 200 carrying its status; no answer is 502, 503 (held back) or 504 (timeout)."""
    # Served by interlink.http.proxy_path when the body validates; this route documents the
    # operation and answers the rest (e.g. a 422 for an invalid body) the same way.
    answer = await proxy_path.proxy_for(get_runtime(request), actor, connection_id, body)
    return proxy_path.answer_response(answer)


def _header_doc(description: str, kind: str) -> dict[str, object]:
    return {"description": description, "schema": {"type": kind}}


_PASSTHROUGH_DOC = {
    "description": "The provider's answer, as it came: its status, headers and body.",
    "headers": {
        "Interlink-Request-Id": _header_doc("The call's request log row.", "string"),
        "Interlink-Attempts": _header_doc("Attempts made, retries included.", "integer"),
        "Interlink-Duration-Ms": _header_doc("The whole call, retries included.", "number"),
    },
}


async def proxy_passthrough(
    request: Request,
    connection_id: str = ConnectionId,
    path: str = Path(description="The provider path, joined to the connection's base URL."),
    credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    x_tenant_id: str | None = Header(
        default=None, max_length=64, description="Platform keys: the tenant to act for."
    ),
    interlink_max_attempts: int | None = Header(
        default=None, description="Attempts including retries, 1-5 (default 3)."
    ),
    interlink_timeout_seconds: float | None = Header(
        default=None, description="Per attempt, at most 120 (default 30)."
    ),
) -> Response:
    """Call the provider as the host would call it itself, through the connection: the method,
    path, query string and body are passed on with `Content-Type`, `Accept`, `Accept-Language`,
    `Idempotency-Key` and every `Interlink-Proxy-<Name>` header (as `<Name>`); credentials are
    injected, and the connection's rate limits, retries and circuit breaker apply, and the call is
    written to the request log. The provider's answer is returned as it is, with
    `Interlink-Request-Id`, `Interlink-Attempts`, `Interlink-Duration-Ms` and the key's
    `Interlink-RateLimit-*` headers; an answer to `HEAD` has no body and the provider's
    `Content-Length` (none when its answer came compressed). No answer is 502 (`too_large`: above
    the response limit), 503 (held back) or 504 (timeout)."""
    # Served by interlink.http.proxy_path's direct route unless the path holds a percent escape or
    # the body is chunked; the header parameters above document what passthrough_for reads.
    raw_path = request.scope.get("raw_path") or request.url.path.encode("latin-1")
    target = proxy_path.passthrough_target(raw_path.decode("latin-1"))
    if target is None:  # an escape in the route's own part of the path
        target = (connection_id, "/" + quote(path, safe="/:@!$&'()*+,;=-._~"))
    direct = DirectRequest(
        request.url.path,
        first_values(request.scope["headers"]),
        await request.body(),
        request.scope.get("client"),
        request.method,
        request.scope.get("query_string", b""),
        request.scope["headers"],
    )
    answer = await proxy_path.passthrough_for(get_runtime(request), direct, *target)
    response = Response(answer.body, status_code=answer.status)
    if request.method == "HEAD":  # the provider's length or none (the route's doc), not the empty body's
        response.raw_headers = [h for h in response.raw_headers if h[0] != b"content-length"]
    response.raw_headers.extend(answer.headers)
    return response


for _method in sorted(proxy_path.PASSTHROUGH_METHODS):  # one operation (and operation id) per method
    router.add_api_route(
        "/{connection_id}/proxy/{path:path}",
        proxy_passthrough,
        methods=[_method],
        operation_id=f"proxy_passthrough_{_method.lower()}",
        summary=f"Proxy passthrough ({_method})",
        response_class=Response,
        responses={200: _PASSTHROUGH_DOC, **error_responses(409, 413, 502, 503, 504)},
    )


@router.get("/{connection_id}/metrics", response_model=ApiMetrics)
async def connection_metrics(
    request: Request,
    connection_id: str = ConnectionId,
    since: UtcDatetime | None = Query(None, description="Window start (default: 24 hours before until)."),
    until: UtcDatetime | None = Query(None, description="Window end (default: now)."),
    actor: Actor = Depends(require(ApiKeyScope.CONNECTIONS_READ)),
) -> ApiMetrics:
    """ApiMetrics of the calls made through the connection (proxy, connectors, health checks) in
    the window: count, success rate, p50/p95/p99, throughput, errors by class, and this process's
    circuit breaker state."""
    runtime = get_runtime(request)
    snapshot = runtime.outbound.circuit(connection_id)
    async with runtime.db.unit_of_work(write=False) as session:
        conn = await _service(request).get(session, actor, connection_id)
        return await outbound_metrics.api_metrics(
            session,
            actor.tenant_id,
            connection_id=conn.id,
            since=since,
            until=until,
            circuit_state=snapshot.state if snapshot is not None else None,
        )

"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink import __version__
from interlink.core.logging import configure_logging
from interlink.core.schemas import Problem
from interlink.core.settings import Settings, get_settings
from interlink.http.direct import DirectRoutes, DirectRoutesMiddleware
from interlink.http.errors import finish_openapi, install_error_handlers
from interlink.http.middleware import RequestContextMiddleware, server_error_handler
from interlink.http.proxy_path import ConnectionPassthroughRoute, ConnectionProxyRoute
from interlink.http.routers import (
    api_requests,
    audit,
    connection_health,
    connections,
    health,
    inbound,
    keys,
    providers,
    secrets,
    tenants,
    ui,
    ui_integrations,
    ui_records,
    ui_webhooks,
    webhook_config,
    webhooks_endpoints,
    webhooks_events,
    webhooks_metrics,
    webhooks_replays,
)
from interlink.http.routers import connectors as connector_routes
from interlink.http.verify_path import KeyVerifyRoute
from interlink.runtime import Runtime, tune_garbage_collector

DESCRIPTION = """Interlink: API keys, webhooks, external references and connections for multi-tenant
SaaS backends. Authenticate with `Authorization: Bearer <key>`. Errors are RFC 9457 problem+json.
Lists are newest first with cursor pagination (`limit`, `after`)."""


class InterlinkApp(FastAPI):
    """The FastAPI app behind an edge of plain ASGI layers.

    Every HTTP request enters :attr:`edge` first: the request context (correlation id, body limit,
    metrics, access log, the problem answer to an escaped exception), then the hot routes
    (:attr:`direct_routes`: key verification, the connection proxy), which hand everything else,
    unread, to :meth:`framework`: FastAPI's own stack (its server-error layer, which answers
    through :func:`~interlink.http.middleware.server_error_handler`, native telemetry, routing).
    The hot routes so skip a framework layer per call that they have no use for. Interlink's own
    server protocol (:mod:`interlink.http.server`) serves :attr:`direct_routes` without ASGI at all.
    """

    edge: ASGIApp | None = None
    direct_routes: DirectRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.edge is not None and scope["type"] == "http":
            await self.edge(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own handling of a request (what :attr:`edge` hands on). A HEAD request that no
        route takes as HEAD is answered as its GET would be, without the body (RFC 9110 9.3.2:
        FastAPI's routes take only the methods they name, so HEAD /healthz was a 405)."""
        if scope["method"] == "HEAD" and not self._takes_head(scope):
            # In place, so the edge labels the request with the route it took; HEAD again from
            # the answer's start, so the server (which holds the same scope) sends no body.
            scope["method"] = "GET"
            try:
                await super().__call__(scope, receive, _as_head_answer(scope, send))
            finally:
                scope["method"] = "HEAD"
            return
        await super().__call__(scope, receive, send)

    def _takes_head(self, scope: Scope) -> bool:
        """Whether a route answers HEAD itself (the passthrough proxy, Starlette routes, mounts)."""
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)


def _as_head_answer(scope: Scope, send: Send) -> Send:
    """``send`` for a GET answer to a HEAD request: the request is HEAD again from the answer's
    start, and every body part is emptied (the headers, Content-Length included, unchanged)."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            scope["method"] = "HEAD"
        elif message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return send_head


def create_served_app() -> InterlinkApp:
    """The app of one of ``interlink serve --processes N``'s processes: settings from the
    environment (as the command read them), the garbage collector tuned once started."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, tune_gc_after_start=True)


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    access_log: bool = True,
    tune_gc_after_start: bool = False,
) -> InterlinkApp:
    """Build the app. The runtime's background tasks start and stop with the app's lifespan.

    When the app owns its runtime and ``run_worker`` is set (the embedded default), a job worker
    runs in the same process. ``tune_gc_after_start`` (the server process: ``interlink serve``)
    calls :func:`~interlink.runtime.tune_garbage_collector` once the runtime has started.
    """
    settings = settings or get_settings()
    rt = runtime or Runtime(settings)
    owns_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await rt.start(with_worker=owns_runtime and settings.run_worker)
        if tune_gc_after_start:
            tune_garbage_collector()
        try:
            yield
        finally:
            if owns_runtime:
                await rt.stop()

    app = InterlinkApp(
        title="Interlink",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = rt
    install_error_handlers(app)
    app.add_exception_handler(Exception, server_error_handler)
    app.direct_routes = DirectRoutes(
        [ConnectionProxyRoute(rt), ConnectionPassthroughRoute(rt), KeyVerifyRoute(rt)],
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
        declined=RequestContextMiddleware(
            app.framework, max_body_bytes=settings.max_body_bytes, access_log=access_log
        ),
    )
    app.edge = RequestContextMiddleware(
        DirectRoutesMiddleware(app.framework, app.direct_routes),
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
    )
    for router in (health.router, tenants.router, keys.router, audit.router, secrets.router, ui.router):
        app.include_router(router)
    app.include_router(ui_webhooks.router)
    app.include_router(webhooks_events.router)
    app.include_router(webhooks_endpoints.router)
    app.include_router(webhooks_metrics.router)
    app.include_router(webhook_config.router)
    app.include_router(webhooks_replays.router)
    app.include_router(providers.router)
    app.include_router(api_requests.router)
    app.include_router(connections.router)
    app.include_router(connections.callback_router)
    app.include_router(connection_health.router)
    app.include_router(inbound.router)
    app.include_router(inbound.receive_router)
    app.include_router(ui_integrations.router)
    app.include_router(ui_records.router)
    app.include_router(connector_routes.router)
    app.include_router(connector_routes.records_router)
    _ensure_problem_schema(app)
    return app


def _ensure_problem_schema(app: FastAPI) -> None:
    """Make sure ``Problem`` is in the OpenAPI components even if only referenced by $ref."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        if "Problem" not in schemas:
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}", by_alias=True
            )
        app.openapi_schema = finish_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

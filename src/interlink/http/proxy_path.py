"""``POST /v1/connections/{id}/proxy``: the shared implementation and its direct ASGI path.

The proxy is on the request path of the host application's own calls to providers, so it is a hot
route. :class:`ConnectionProxyFastPath` answers it without FastAPI's routing (which walks every
router of the app), dependency injection and response-model validation, calling exactly the same
:func:`~interlink.http.auth.authenticate` (scope ``connections:write``) and :func:`proxy_for` as
the documented FastAPI route. As for the verify fast path (:mod:`interlink.http.verify_path`),
only requests whose body parses and validates as :class:`ProxyCall` and whose connection id and
``X-Tenant-Id`` are within bounds are answered here; anything else is handed, unread by anything
else, to the FastAPI route, which answers with its usual 400/422 problems. Nothing with a side
effect happens before that decision.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import to_json
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.connections import proxy
from interlink.connections.connection_schemas import ProxyCall
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError
from interlink.http.auth import authenticate
from interlink.http.errors import interlink_problem
from interlink.http.fast_path import (
    MAX_TENANT_HEADER,
    RouteLabel,
    bearer,
    caller_ip,
    is_json,
    read_request,
    replay,
)
from interlink.runtime import Runtime

PREFIX: Final = "/v1/connections/"
SUFFIX: Final = "/proxy"
MAX_CONNECTION_ID: Final = 64
"""As the route's ``connection_id`` path parameter (``max_length=64``)."""


async def proxy_for(runtime: Runtime, actor: Actor, connection_id: str, body: ProxyCall) -> dict[str, Any]:
    """Send ``body`` through the connection and describe the provider's answer (see
    :mod:`interlink.connections.proxy` for the contracts): the JSON object of :class:`ProxyAnswer`."""
    call = proxy.ProxyRequest(
        method=body.method,
        path=body.path,
        query=body.query,
        headers=body.headers,
        body=body.body if "body" in body.model_fields_set else proxy.NO_BODY,
        form=body.form,
        idempotency_key=body.idempotency_key,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
    )
    result = await proxy.send(runtime.connection_clients, actor, connection_id, call)
    response = result.response
    timing = response.timing
    limit = response.rate_limit
    # Built as the JSON object itself: every value comes from our own typed objects, so building
    # the model (and validating it again) would only cost time. A test holds it to ProxyAnswer.
    return {
        "status": response.status,
        "ok": response.ok,
        "headers": result.headers,
        "data": result.data,
        "bodyBase64": result.body_base64,
        "truncated": response.truncated,
        "errorClass": response.error_class,
        "requestId": response.request_id,
        "attempts": response.attempts,
        "durationMs": round(response.duration_ms, 3),
        "retryAfterSeconds": response.retry_after_seconds,
        "timing": {
            "dnsMs": timing.dns_ms,
            "connectMs": timing.connect_ms,
            "tlsMs": timing.tls_ms,
            "firstByteMs": timing.first_byte_ms,
            "totalMs": timing.total_ms,
            "reused": timing.reused,
        },
        "rateLimit": None
        if limit is None
        else {"limit": limit.limit, "remaining": limit.remaining, "resetSeconds": limit.reset_seconds},
    }


def answer_response(answer: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The JSON response of ``answer`` (from :func:`proxy_for`)."""
    return Response(to_json(answer), media_type="application/json", headers=headers)


_ROUTE = RouteLabel(PREFIX + "{connection_id}" + SUFFIX)


def connection_id_of(path: str) -> str | None:
    """The ``{id}`` of ``/v1/connections/{id}/proxy`` (None for any other path)."""
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    connection_id = path[len(PREFIX) : -len(SUFFIX)]
    if not connection_id or "/" in connection_id or len(connection_id) > MAX_CONNECTION_ID:
        return None
    return connection_id


class ConnectionProxyFastPath:
    """ASGI middleware serving ``POST /v1/connections/{id}/proxy`` directly (see the module doc)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        connection_id = connection_id_of(path)
        if connection_id is None:
            await self.app(scope, receive, send)
            return
        read = await read_request(scope, receive)
        if read is None:
            return  # the client went away
        body, headers = read
        call = _parse(headers, body)
        tenant = headers.get(b"x-tenant-id")
        if call is None or (tenant is not None and len(tenant) > MAX_TENANT_HEADER):
            await self.app(scope, replay(body, receive), send)
            return
        scope["route"] = _ROUTE
        ip = caller_ip(scope, headers, self.runtime)
        agent = headers.get(b"user-agent")
        try:
            actor, rate_headers = await authenticate(
                self.runtime,
                key=bearer(headers.get(b"authorization")),
                tenant_header=tenant.decode("latin-1") if tenant is not None else None,
                scope=ApiKeyScope.CONNECTIONS_WRITE,
                ip=ip,
                user_agent=agent.decode("latin-1") if agent is not None else None,
                method="POST",
                path=path,
            )
            answer = await proxy_for(self.runtime, actor, connection_id, call)
        except InterlinkError as exc:
            await interlink_problem(exc, path)(scope, receive, send)
            return
        await send_answer(send, answer, rate_headers)


async def send_answer(send: Send, answer: dict[str, Any], headers: dict[str, str]) -> None:
    """Send ``answer`` as :func:`answer_response` would, without building a Response object:
    the same status, headers (``headers``, names lower-cased, then Content-Length and Content-Type)
    and body. ``headers`` are the rate-limit headers, never the two framing ones."""
    body = to_json(answer)
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _parse(headers: dict[bytes, bytes], body: bytes) -> ProxyCall | None:
    """The validated body, or None when the FastAPI route should answer."""
    if not is_json(headers.get(b"content-type", b"")):
        return None
    try:
        return ProxyCall.model_validate_json(body)
    except ValidationError:
        return None

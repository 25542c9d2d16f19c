"""Direct routes: hot routes answered without the web framework.

Host applications call a few routes on every request they serve (``POST /v1/keys/verify``,
``POST /v1/connections/{id}/proxy``, ``/v1/connections/{id}/proxy/{path}``). Each of them is a
:class:`DirectRoute`: a handler that takes the whole request (:class:`DirectRequest`: method,
path, query, headers, body, peer) and returns the whole answer
(:class:`DirectResponse`), or None when it leaves the request to the framework's documented route
(a body that does not parse or validate, another content type, …), which then answers with its
usual 400/422 problems. A handler decides that before anything with a side effect happens, so no
request is authenticated twice.

They are served two ways, with the same handlers:

* by Interlink's HTTP server protocol (:mod:`interlink.http.server`), which calls
  :meth:`DirectRoutes.answer` straight from the parsed request: no ASGI scope, messages or
  middleware per call. :meth:`~DirectRoutes.answer` does what the request-context middleware does
  for routed requests (correlation id, metrics, access log, the problem answer to an escaped
  exception);
* under any other ASGI server (and in-process tests), by :class:`DirectRoutesMiddleware`, inside
  that middleware.

A declined request goes, body replayed, to :attr:`DirectRoutes.declined`: the request-context
middleware around the framework.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink.core.context import accept_correlation_id, correlation_id_var
from interlink.http.auth import resolve_client_ip
from interlink.http.middleware import observe_request, unhandled_problem_body
from interlink.runtime import Runtime

log = structlog.get_logger("interlink.http")

MAX_TENANT_HEADER: Final = 64
"""Longest ``X-Tenant-Id`` a direct route accepts; longer ones go to the route for its 422."""

_JSON: Final = (b"content-type", b"application/json")

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class RouteLabel:
    """Stands in for the matched route (``scope["route"]``), so metrics label direct requests
    like routed ones."""

    path: str


@dataclass(slots=True)
class DirectRequest:
    """A whole request to a direct route. ``headers``: lower-case names, the first value of each;
    ``path``: as decoded (a percent-escaped path reaches a direct route only through
    :class:`DirectRoutesMiddleware`, decoded, and never one whose ``raw_path`` is set);
    ``query``: the raw query string; ``header_lines``: every header line as received (lower-case
    names, in order, repeats included)."""

    path: str
    headers: dict[bytes, bytes]
    body: bytes
    client: tuple[str, int] | None
    method: str = "POST"
    query: bytes = b""
    header_lines: Sequence[tuple[bytes, bytes]] = ()


@dataclass(slots=True)
class DirectResponse:
    """A whole answer. ``headers``: lower-case names and values the server made (never a request's
    bytes echoed unchecked), without Content-Length, which the sender adds. An answer to HEAD is
    sent without its body and without a Content-Length of the sender's: a route that knows the
    length a GET would have puts it in ``headers``."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def has_body(self) -> bool:
        """Whether the status carries a body (and so a Content-Length): not 1xx, 204 or 304."""
        return self.status >= 200 and self.status not in (204, 304)

    @classmethod
    def json(cls, body: bytes, headers: dict[str, str] | None = None, status: int = 200) -> DirectResponse:
        """A JSON answer; ``headers`` (e.g. rate-limit headers) come first."""
        raw = (
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            if headers
            else []
        )
        raw.append(_JSON)
        return cls(status, body, raw)

    @classmethod
    def of(cls, response: Response) -> DirectResponse:
        """A framework response (e.g. a problem) as a direct answer."""
        headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
        return cls(response.status_code, bytes(response.body), headers)


class DirectRoute:
    """One hot route: which methods and paths it takes, and its handler."""

    label: RouteLabel
    methods: frozenset[str] = frozenset({"POST"})
    raw_path: bool = False
    """The handler passes the path on as it was sent: a path with a percent escape (which the
    server decodes) goes to the framework's route, which reads the raw path."""

    def matches(self, path: str) -> bool:
        raise NotImplementedError

    async def __call__(self, request: DirectRequest) -> DirectResponse | None:
        """The answer, or None to leave the request to the framework (decided before any side
        effect)."""
        raise NotImplementedError


class DirectRoutes:
    """The direct routes of an app, and the serving of one request by them (see the module doc)."""

    def __init__(
        self, routes: Sequence[DirectRoute], *, max_body_bytes: int, access_log: bool, declined: ASGIApp
    ) -> None:
        self.routes = tuple(routes)
        self.max_body_bytes = max_body_bytes
        """Bodies above this go the framework's way (which answers 413)."""
        self.access_log = access_log
        self.declined = declined
        """The ASGI app for requests a handler leaves to the framework."""

    def route_for(self, method: str, path: str) -> DirectRoute | None:
        for route in self.routes:
            if method in route.methods and route.matches(path):
                return route
        return None

    async def answer(self, route: DirectRoute, request: DirectRequest) -> DirectResponse | None:
        """``route``'s answer with what the request-context middleware adds to routed requests:
        the correlation id (``X-Correlation-Id`` in and out, and in the context while the handler
        runs), metrics and the access log, and a problem answer (logged) to an exception the
        handler let escape. None when the handler leaves the request to the framework (nothing
        recorded)."""
        incoming = request.headers.get(b"x-correlation-id")
        correlation_id = accept_correlation_id(incoming.decode("latin-1") if incoming is not None else None)
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        try:
            try:
                response = await route(request)
            except Exception as exc:
                response = _unhandled(exc, request.path, correlation_id)
            if response is None:
                return None
            response.headers.append((b"x-correlation-id", correlation_id.encode()))
            elapsed = time.perf_counter() - started
            observe_request(request.method, route.label.path, response.status, elapsed)
            if self.access_log:
                log.info(
                    "http_request",
                    method=request.method,
                    path=request.path,
                    route=route.label.path,
                    status=response.status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            return response
        finally:
            correlation_id_var.reset(token)


def _unhandled(exc: Exception, path: str, correlation_id: str) -> DirectResponse:
    status, body, headers = unhandled_problem_body(exc, path, correlation_id)
    return DirectResponse(status, body, headers)


class DirectRoutesMiddleware:
    """Serves :class:`DirectRoutes` inside an ASGI app (for servers other than Interlink's own
    protocol). Goes inside the request-context middleware, which handles correlation ids, metrics
    and escaped exceptions for these requests as for any other."""

    def __init__(self, app: ASGIApp, routes: DirectRoutes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.route_for(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if route is not None and route.raw_path and b"%" in scope.get("raw_path", b"%"):
            route = None
        if route is None:
            await self.app(scope, receive, send)
            return
        read = await read_request(scope, receive)
        if read is None:
            return  # the client went away
        body, headers = read
        request = DirectRequest(
            scope["path"],
            headers,
            body,
            scope.get("client"),
            scope["method"],
            scope["query_string"],
            scope["headers"],
        )
        response = await route(request)
        if response is None:
            await self.app(scope, replay(body, receive), send)
            return
        scope["route"] = route.label
        raw = list(response.headers)
        head = scope["method"] == "HEAD"
        if response.has_body and not head:
            raw.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if head else response.body})


async def read_request(scope: Scope, receive: Receive) -> tuple[bytes, dict[bytes, bytes]] | None:
    """The whole body and the headers (lower-case names, first value of each), or None when the
    client went away before the body was complete."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), first_values(scope["headers"])


def first_values(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Header name → its first value."""
    first: dict[bytes, bytes] = {}
    for name, value in headers:
        first.setdefault(name, value)
    return first


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the next app, then defers to the server."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


# -- helpers of the handlers ---------------------------------------------------------------------


def caller_ip(request: DirectRequest, runtime: Runtime) -> str | None:
    """The client IP as the routed requests see it (``X-Forwarded-For`` only from trusted proxies)."""
    forwarded = request.headers.get(b"x-forwarded-for")
    return resolve_client_ip(
        request.client[0] if request.client else None,
        forwarded.decode("latin-1") if forwarded else None,
        runtime,
    )


def validated_body(request: DirectRequest, model: type[ModelT]) -> ModelT | None:
    """The JSON body validated as ``model``, or None (another content type, or a body that does not
    parse or validate: the framework's route answers it with its problem)."""
    if not is_json(request.headers.get(b"content-type", b"")):
        return None
    try:
        return model.model_validate_json(request.body)
    except ValidationError:
        return None


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def bearer(header: bytes | None) -> str | None:
    """The credentials of ``Authorization: Bearer <key>`` (None when absent or another scheme)."""
    if not header:
        return None
    scheme, _, credentials = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def text_header(request: DirectRequest, name: bytes) -> str | None:
    value = request.headers.get(name)
    return value.decode("latin-1") if value is not None else None


def tenant_header_fits(request: DirectRequest) -> bool:
    tenant = request.headers.get(b"x-tenant-id")
    return tenant is None or len(tenant) <= MAX_TENANT_HEADER

"""Pure ASGI middleware: correlation id, body size limit, access log, Prometheus metrics, and the
last line of defence that turns any escaped exception into a problem+json response."""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink.core.context import accept_correlation_id, correlation_id_var, current_correlation_id
from interlink.http.errors import PROBLEM_MEDIA_TYPE, is_database_unavailable, problem_type

log = structlog.get_logger("interlink.http")

HTTP_REQUESTS = Counter("interlink_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "interlink_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Label children by label values. The values are bounded (methods above, route templates or
# "unmatched", status codes), so are these dicts; looking a child up in them costs a fraction of
# ``labels()``, which validates and locks on every call.
_request_counters: dict[tuple[str, str, int], Any] = {}
_latency_histograms: dict[tuple[str, str], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    counter = _request_counters.get((method, route, status))
    if counter is None:
        counter = _request_counters[(method, route, status)] = HTTP_REQUESTS.labels(
            method, route, str(status)
        )
    counter.inc()
    histogram = _latency_histograms.get((method, route))
    if histogram is None:
        histogram = _latency_histograms[(method, route)] = HTTP_LATENCY.labels(method, route)
    histogram.observe(seconds)


class BodyTooLarge(HTTPException):
    """Raised while reading a body (with or without Content-Length) that outgrows the limit.

    An ``HTTPException``, so the framework passes it through its body parsing untouched and the
    problem handler answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


def problem_bytes(
    status: int, code: str, title: str, detail: str, correlation_id: str, instance: str | None
) -> bytes:
    """The JSON body of a problem answer made outside the framework's error handlers."""
    return json.dumps(
        {
            "type": problem_type(code),
            "title": title,
            "status": status,
            "detail": detail,
            "instance": instance,
            "correlationId": correlation_id,
        }
    ).encode()


def unhandled_problem(exc: BaseException) -> tuple[int, str, str, str, list[tuple[bytes, bytes]]]:
    """Status, code, title, detail and extra headers of the answer to an exception nothing handled:
    503 with ``Retry-After`` when the database is unreachable, otherwise 500."""
    if is_database_unavailable(exc):
        return (
            503,
            "service-unavailable",
            "Service unavailable",
            "a backing service (database or Redis) is unavailable; retry shortly",
            [(b"retry-after", b"1")],
        )
    return (
        500,
        "internal-error",
        "Internal error",
        "an unexpected error occurred; quote the correlation id when reporting it",
        [],
    )


def log_unhandled(exc: BaseException, path: str | None) -> None:
    """Log an exception nothing handled (the trace goes to the log only, never to the client)."""
    if is_database_unavailable(exc):
        log.warning("database_unavailable", error=type(exc).__name__, path=path)
    else:
        log.error("unhandled_error", error=type(exc).__name__, path=path, exc_info=exc)


def unhandled_problem_body(
    exc: BaseException, path: str, correlation_id: str
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Log ``exc`` and make the problem answer to it: status, body and headers (content type
    first), as :class:`RequestContextMiddleware` sends it."""
    log_unhandled(exc, path)
    status, code, title, detail, headers = unhandled_problem(exc)
    body = problem_bytes(status, code, title, detail, correlation_id, path)
    return status, body, [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), *headers]


async def server_error_handler(request: Request, exc: Exception) -> Response:
    """The framework's answer to an exception no route handled (its ``ServerErrorMiddleware``
    calls it, then re-raises to :class:`RequestContextMiddleware`, which logs it): the same
    problem+json the middleware would send."""
    status, code, title, detail, headers = unhandled_problem(exc)
    body = problem_bytes(status, code, title, detail, current_correlation_id(), request.url.path)
    response = Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    for name, value in headers:
        response.headers[name.decode("latin-1")] = value.decode("latin-1")
    return response


class RequestContextMiddleware:
    """Sets the correlation id (``X-Correlation-Id`` in and out), caps the body, logs and measures."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, access_log: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        declared_length = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                if incoming is None:  # the first, as for every header a route reads
                    incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared_length = value
        correlation_id = accept_correlation_id(incoming)
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        status_holder = [0]
        cid_header = (b"x-correlation-id", correlation_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() != b"x-correlation-id"),
                    cid_header,
                ]
            await send(message)

        try:
            if declared_length is not None:
                try:
                    too_large = int(declared_length) > self.max_body_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._send_problem(
                        send_wrapper,
                        413,
                        "payload-too-large",
                        "Payload too large",
                        f"the request body exceeds {self.max_body_bytes} bytes",
                        correlation_id,
                        scope,
                    )
                    return
            received = 0

            async def receive_wrapper() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise BodyTooLarge(self.max_body_bytes)
                return message

            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except BodyTooLarge:
                if not status_holder[0]:
                    await self._send_problem(
                        send_wrapper,
                        413,
                        "payload-too-large",
                        "Payload too large",
                        f"the request body exceeds {self.max_body_bytes} bytes",
                        correlation_id,
                        scope,
                    )
            except Exception as exc:
                await self._unhandled(
                    exc, send_wrapper, correlation_id, scope, started=bool(status_holder[0])
                )
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            # Clients choose methods freely; the label set stays bounded.
            method_label = method if method in _METHODS else "OTHER"
            status = status_holder[0] or 500
            observe_request(method_label, route_path, status, elapsed)
            if self.access_log:
                log.info(
                    "http_request",
                    method=method,
                    path=scope.get("path"),
                    route=route_path,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            correlation_id_var.reset(token)

    async def _unhandled(
        self, exc: Exception, send: Send, correlation_id: str, scope: Scope, *, started: bool
    ) -> None:
        """Log ``exc`` (the trace goes to the log only) and answer its problem if nothing was sent."""
        log_unhandled(exc, scope.get("path"))
        if not started:
            status, code, title, detail, headers = unhandled_problem(exc)
            await self._send_problem(
                send, status, code, title, detail, correlation_id, scope, extra_headers=headers
            )

    async def _send_problem(
        self,
        send: Send,
        status: int,
        code: str,
        title: str,
        detail: str,
        correlation_id: str,
        scope: Scope,
        *,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = problem_bytes(status, code, title, detail, correlation_id, scope.get("path"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *(extra_headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

"""Pure ASGI middleware: correlation id, body size limit, access log and Prometheus metrics."""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink.core.context import accept_correlation_id, correlation_id_var

log = structlog.get_logger("interlink.http")

HTTP_REQUESTS = Counter("interlink_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "interlink_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _BodyTooLarge(Exception):
    pass


def _problem_bytes(status: int, code: str, title: str, detail: str, correlation_id: str) -> bytes:
    return json.dumps(
        {
            "type": f"urn:interlink:problem:{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "correlationId": correlation_id,
        }
    ).encode()


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
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared_length = value
        correlation_id = accept_correlation_id(incoming)
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        status_holder = [500]
        cid_header = (b"x-correlation-id", correlation_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), cid_header]
            await send(message)

        try:
            if declared_length is not None:
                try:
                    too_large = int(declared_length) > self.max_body_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._reject(send_wrapper, 413, correlation_id)
                    return
            received = 0

            async def receive_wrapper() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge
                return message

            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except _BodyTooLarge:
                await self._reject(send_wrapper, 413, correlation_id)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route_path, str(status_holder[0])).inc()
            HTTP_LATENCY.labels(method, route_path).observe(elapsed)
            if self.access_log:
                log.info(
                    "http_request",
                    method=method,
                    path=scope.get("path"),
                    status=status_holder[0],
                    duration_ms=round(elapsed * 1000, 2),
                )
            correlation_id_var.reset(token)

    async def _reject(self, send: Send, status: int, correlation_id: str) -> None:
        body = _problem_bytes(
            status,
            "payload-too-large",
            "Payload too large",
            f"the request body exceeds {self.max_body_bytes} bytes",
            correlation_id,
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

"""Pieces shared by the direct ASGI paths of hot routes (:mod:`interlink.http.verify_path`,
:mod:`interlink.http.proxy_path`).

A fast path reads the whole body itself, decides whether it can answer, and otherwise hands the
request, body replayed, to FastAPI. These helpers read the request, resolve the caller's IP the
way the routed requests do, and label the request for metrics like the route it stands in for.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive, Scope

from interlink.http.auth import resolve_client_ip
from interlink.runtime import Runtime

MAX_TENANT_HEADER = 64
"""Longest ``X-Tenant-Id`` a fast path accepts; longer ones go to the route for its 422."""


@dataclass(frozen=True)
class RouteLabel:
    """Stands in for the matched route (``scope["route"]``), so metrics label fast-path requests
    like routed ones."""

    path: str


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
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return b"".join(chunks), headers


def caller_ip(scope: Scope, headers: dict[bytes, bytes], runtime: Runtime) -> str | None:
    """The client IP as the routed requests see it (``X-Forwarded-For`` only from trusted proxies)."""
    client = scope.get("client")
    forwarded = headers.get(b"x-forwarded-for")
    return resolve_client_ip(
        client[0] if client else None, forwarded.decode("latin-1") if forwarded else None, runtime
    )


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

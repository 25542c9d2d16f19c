"""The HTTP transport for all outbound traffic: one shared aiohttp session per process.

Contracts:

* :meth:`HttpTransport.send` makes exactly one request: redirects are never followed (a 3xx is
  returned as it is), the whole exchange is bounded by ``timeout`` seconds, and at most
  ``max_body_bytes`` (20 KB by default) of the response body are read; the rest is discarded and
  the connection closed.
* Every target passes the SSRF guard (:func:`interlink.webhooks.ssrf.check_target`) before a
  connection is opened. A positive verdict is cached per scheme, host and port for
  ``target_cache_seconds``; refusals are never cached. Host names are resolved for connecting by
  the guard itself (a resolver that returns only checked addresses), so a second DNS answer cannot
  steer a connection to a refused address (DNS rebinding).
* Failures without an HTTP answer raise :class:`TransportError` whose ``error_class`` is one of
  ``timeout`` (no complete answer in time), ``dns`` (the name did not resolve), ``connect`` (the
  connection could not be opened, or was reset or closed before an answer), ``tls`` (handshake or
  certificate), ``refused`` (the SSRF guard refused the target) or ``other``.
* Connections are pooled and limited per host (``limit_per_host``) and in total (``limit``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from interlink import __version__
from interlink.webhooks import ssrf

MAX_BODY_BYTES: Final = 20_480
USER_AGENT: Final = f"Interlink/{__version__}"
ERROR_CLASSES: Final = frozenset({"timeout", "dns", "connect", "tls", "refused", "other"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TransportResponse:
    """An HTTP answer. ``body`` holds at most the transport's cap; ``truncated`` says if more came."""

    status: int
    headers: dict[str, str]
    body: bytes
    duration_ms: float
    truncated: bool = False


class TransportError(Exception):
    """No HTTP answer. ``error_class`` is one of :data:`ERROR_CLASSES`."""

    def __init__(self, error_class: str, message: str, *, duration_ms: float = 0.0) -> None:
        super().__init__(message)
        self.error_class = error_class if error_class in ERROR_CLASSES else "other"
        self.message = message
        self.duration_ms = duration_ms


def _classify(exc: BaseException) -> tuple[str, str]:
    """Map an aiohttp/asyncio failure to an error class and a readable message."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):  # includes aiohttp's ServerTimeoutError
        return "timeout", f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", f"name resolution failed: {detail}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls", f"TLS failed: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect", f"connection failed: {detail}"
    lost = (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        aiohttp.ClientPayloadError,
        ConnectionError,
    )
    if isinstance(exc, lost):
        return "connect", f"connection lost before an answer: {detail}"
    return "other", f"{type(exc).__name__}: {detail}"


def _target_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


class _GuardedResolver(AbstractResolver):
    """Resolves through the SSRF guard: only addresses it allowed are ever connected to."""

    def __init__(self, allowed_networks: list[Network]) -> None:
        self.allowed_networks = allowed_networks

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await ssrf.check_target(f"http://{host}:{port or 80}/", self.allowed_networks)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class HttpTransport:
    """Sends HTTP requests over one pooled aiohttp session (created lazily, inside the event loop)."""

    def __init__(
        self,
        *,
        allowed_networks: Sequence[Network] = (),
        limit: int = 512,
        limit_per_host: int = 64,
        max_body_bytes: int = MAX_BODY_BYTES,
        target_cache_seconds: float = 30.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.allowed_networks = list(allowed_networks)
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.max_body_bytes = max_body_bytes
        self.target_cache_seconds = target_cache_seconds
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._approved: dict[str, float] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit_per_host,
                ttl_dns_cache=int(self.target_cache_seconds),
                resolver=_GuardedResolver(self.allowed_networks),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                headers={"User-Agent": self.user_agent},
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def check_target(self, url: str) -> None:
        """Raise :class:`TransportError` (``refused``/``dns``) unless the SSRF guard allows ``url``."""
        key = _target_key(url)
        now = time.monotonic()
        if self._approved.get(key, 0.0) > now:
            return
        try:
            await ssrf.check_target(url, self.allowed_networks)
        except ssrf.TargetRefused as exc:
            error_class = "dns" if exc.reason == "unresolvable" else "refused"
            raise TransportError(error_class, f"target refused ({exc.reason}): {exc.detail}") from exc
        self._approved[key] = now + self.target_cache_seconds

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - the interface takes a per-request timeout
    ) -> TransportResponse:
        """One request, no redirects, bounded by ``timeout`` seconds. Raises :class:`TransportError`."""
        started = time.perf_counter()
        await self.check_target(url)
        session = self._client()
        truncated = False
        try:
            async with asyncio.timeout(timeout):
                async with session.request(
                    method,
                    url,
                    headers=dict(headers),
                    data=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response:
                    chunks: list[bytes] = []
                    size = 0
                    while size < self.max_body_bytes:
                        chunk = await response.content.read(self.max_body_bytes - size)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    if size >= self.max_body_bytes and not response.content.at_eof():
                        truncated = True
                        response.close()  # do not read (or pool) the rest
                    answer_headers: dict[str, str] = {}
                    for name, value in response.headers.items():
                        answer_headers[name] = (
                            f"{answer_headers[name]}, {value}" if name in answer_headers else value
                        )
                    status = response.status
        except ssrf.TargetRefused as exc:  # raised by the resolver at connect time
            error_class = "dns" if exc.reason == "unresolvable" else "refused"
            raise TransportError(error_class, f"target refused ({exc.reason}): {exc.detail}") from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error_class, message = _classify(exc)
            raise TransportError(
                error_class, message, duration_ms=(time.perf_counter() - started) * 1000
            ) from exc
        return TransportResponse(
            status=status,
            headers=answer_headers,
            body=b"".join(chunks),
            duration_ms=(time.perf_counter() - started) * 1000,
            truncated=truncated,
        )

    async def close(self) -> None:
        """Close pooled connections (the session is recreated on the next send)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

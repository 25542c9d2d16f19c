"""The HTTP transport for all outbound traffic: one shared aiohttp session per process.

Contracts:

* :meth:`HttpTransport.send` makes exactly one request: redirects are never followed (a 3xx is
  returned as it is), the whole exchange (name resolution included) is bounded by ``timeout``
  seconds, and at most ``max_body_bytes`` (20 KB by default) of the response body are read; the
  rest is discarded and the connection closed.
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
* Timing (``traced=True``): pass an :class:`AttemptTrace` to :meth:`HttpTransport.send` and it is
  filled by the connector and the resolver themselves: DNS (the guarded resolver's time; 0 for IP
  literals and cached names), TCP connect, TLS handshake, first byte (start to response headers)
  and total. (aiohttp's ``TraceConfig`` signals give the same points but cost about a fifth of a
  bare request in Python per request; see docs/benchmarks.md.) TLS is split from the TCP connect
  by noting when the connected socket is handed to the protocol, which happens before the
  handshake starts; if a future aiohttp changes that internal step, the handshake is counted in
  ``connect_ms`` and ``tls_ms`` stays 0. A request on a pooled connection has ``reused=True`` and
  no DNS, connect or TLS time. A traced transport also turns off aiohttp's silent resend of an
  idempotent request whose connection dropped: the API client retries itself, counted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from interlink import __version__
from interlink.webhooks import ssrf

MAX_BODY_BYTES: Final = 20_480
_NO_CLIENT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None)  # asyncio.timeout bounds the exchange
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


@dataclass(slots=True)
class AttemptTrace:
    """Timing of one request, filled by a traced transport (``perf_counter`` seconds; see
    :meth:`durations`). ``connected`` says a connection was obtained, so the request may have been
    sent (a failure before that is known not to have reached the server)."""

    started: float = 0.0
    dns: float = 0.0
    create_started: float = 0.0
    tcp_connected: float = 0.0
    create_ended: float = 0.0
    first_byte: float = 0.0
    ended: float = 0.0
    reused: bool = False
    connected: bool = False
    secure: bool = False
    """https: the time after the TCP connect is the TLS handshake (plain http has none)."""

    def durations(self) -> tuple[float, float, float, float, float]:
        """DNS, connect, TLS, first byte and total, in milliseconds."""
        connect = tls = 0.0
        if self.create_started and self.create_ended:
            connected_at = self.tcp_connected or self.create_ended
            if self.secure and self.tcp_connected:
                tls = max(0.0, self.create_ended - self.tcp_connected)
            connect = max(0.0, connected_at - self.create_started)
        end = self.ended or time.perf_counter()
        return (
            self.dns * 1000,
            connect * 1000,
            tls * 1000,
            (self.first_byte - self.started) * 1000 if self.first_byte else 0.0,
            (end - self.started) * 1000 if self.started else 0.0,
        )


_current_trace: ContextVar[AttemptTrace | None] = ContextVar("interlink_attempt_trace", default=None)


class _TimedConnector(aiohttp.TCPConnector):
    """Fills the current :class:`AttemptTrace` (see the module doc): whether the connection came
    from the pool, when a new one started, when its TCP connection was up (the protocol is created
    before the TLS handshake begins) and when it was ready."""

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        trace = _current_trace.get()
        if trace is not None:
            trace.connected = True
            trace.reused = not trace.create_started
        return connection

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        trace = _current_trace.get()
        if trace is None or not args or not callable(args[0]):
            return await super()._wrap_create_connection(*args, **kwargs)
        factory: Callable[[], ResponseHandler] = args[0]

        def timed_factory() -> ResponseHandler:
            trace.tcp_connected = time.perf_counter()
            return factory()

        trace.create_started = trace.create_started or time.perf_counter()
        created = await super()._wrap_create_connection(timed_factory, *args[1:], **kwargs)
        trace.create_ended = time.perf_counter()
        return created


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
        trace = _current_trace.get()
        started = time.perf_counter()
        try:
            addresses = await ssrf.check_target(f"http://{host}:{port or 80}/", self.allowed_networks)
        finally:
            if trace is not None:
                trace.dns += time.perf_counter() - started
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
        traced: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed_networks = list(allowed_networks)
        self.traced = traced
        self.ssl_context = ssl_context
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.max_body_bytes = max_body_bytes
        self.target_cache_seconds = target_cache_seconds
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._approved: dict[str, float] = {}
        self._keys: dict[str, str] = {}  # url -> target key, for the no-I/O approval check

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector_class = _TimedConnector if self.traced else aiohttp.TCPConnector
            connector = connector_class(
                limit=self.limit,
                limit_per_host=self.limit_per_host,
                ttl_dns_cache=int(self.target_cache_seconds),
                resolver=_GuardedResolver(self.allowed_networks),
                ssl=self.ssl_context if self.ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                headers={"User-Agent": self.user_agent},
                skip_auto_headers=("Content-Type",),
            )
            if self.traced and hasattr(self._session, "_retry_connection"):
                # aiohttp resends an idempotent request once, unseen, when its connection drops;
                # the API client retries itself (counted, and within its retry budget).
                self._session._retry_connection = False
        return self._session

    def _approved_now(self, url: str) -> bool:
        """The guard's cached verdict for ``url``'s target is still valid (no I/O)."""
        key = self._keys.get(url)
        if key is None:
            key = _target_key(url)
            if len(self._keys) >= 4096:
                self._keys.clear()
            self._keys[url] = key
        return self._approved.get(key, 0.0) > time.monotonic()

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
        *,
        trace: AttemptTrace | None = None,
        target: str | None = None,
    ) -> TransportResponse:
        """One request, no redirects, bounded by ``timeout`` seconds. Raises :class:`TransportError`.

        ``trace`` (on a ``traced`` transport) receives the timing; ``target`` is what the SSRF guard
        checks when it is not ``url`` itself (e.g. the origin of a long API URL).
        """
        started = time.perf_counter()
        if trace is not None:
            trace.started = started
            trace.secure = url[:6].lower() == "https:"
        # The timeout bounds the whole exchange, name resolution by the SSRF guard included.
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if not self._approved_now(target or url):
                async with asyncio.timeout_at(deadline):
                    await self.check_target(target or url)
        except TimeoutError as exc:
            raise TransportError(
                "dns",
                f"name resolution did not finish in {timeout:g} s",
                duration_ms=(time.perf_counter() - started) * 1000,
            ) from exc
        session = self._client()
        truncated = False
        token = _current_trace.set(trace) if trace is not None else None
        try:
            async with asyncio.timeout_at(deadline):
                async with session.request(
                    method,
                    url,
                    headers=dict(headers),
                    data=body,
                    allow_redirects=False,
                    timeout=_NO_CLIENT_TIMEOUT,
                ) as response:
                    if trace is not None:
                        trace.first_byte = time.perf_counter()
                    chunks: list[bytes] = []
                    size = 0
                    length = response.content_length
                    if length is not None and length < self.max_body_bytes:
                        chunks.append(await response.read())  # one read when the size is known
                        size = len(chunks[0])
                    while size < self.max_body_bytes and not response.content.at_eof():
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
        finally:
            if token is not None:
                _current_trace.reset(token)
            if trace is not None:
                trace.ended = time.perf_counter()
        return TransportResponse(
            status=status,
            headers=answer_headers,
            body=b"".join(chunks),
            duration_ms=((trace.ended if trace is not None else time.perf_counter()) - started) * 1000,
            truncated=truncated,
        )

    async def close(self) -> None:
        """Close pooled connections (the session is recreated on the next send)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

"""The HTTP transport for all outbound traffic: pooled HTTP/1.1 connections per process.

Contracts:

* :meth:`HttpTransport.send` makes exactly one request: redirects are never followed (a 3xx is
  returned as it is), the whole exchange (name resolution and waiting for a pooled connection
  included) is bounded by ``timeout`` seconds, and at most ``max_body_bytes`` (20 KB by default)
  of the response body are read, decoded when it came gzip- or deflate-encoded; the rest is
  discarded and the connection closed.
* Every target passes the SSRF guard (:func:`interlink.webhooks.ssrf.check_target`) before a
  connection is opened. A positive verdict is cached per scheme, host and port for
  ``target_cache_seconds``; refusals are never cached. Connections are opened only to the
  addresses the guard returned (cached as long as its verdict), so a second DNS answer cannot steer
  a connection to a refused address (DNS rebinding).
* Failures without an HTTP answer raise :class:`TransportError` whose ``error_class`` is one of
  ``timeout`` (no complete answer in time), ``dns`` (the name did not resolve), ``connect`` (the
  connection could not be opened, or was reset or closed before an answer), ``tls`` (handshake or
  certificate), ``refused`` (the SSRF guard refused the target) or ``other`` (an invalid request
  or answer).
* Connections are pooled and limited per host (``limit_per_host``) and in total (``limit``); no
  cookies or other state are kept between requests (the pool serves every tenant).
* Timing (``traced=True``): pass an :class:`AttemptTrace` to :meth:`HttpTransport.send` and it is
  filled as the request goes: DNS (the guard's resolution; 0 for IP literals and cached names), TCP
  connect, TLS handshake (started on the connected socket, so the two are measured apart), first
  byte (start to response headers) and total. A request on a pooled connection has
  ``reused=True`` and no DNS, connect or TLS time.
* A request on a pooled connection that the server had closed (the close crossed the request, no
  byte of an answer came) is sent once more on a new connection when its method is idempotent and
  the transport is not ``traced``; a traced transport raises ``connect`` instead, so the API
  client's own retry (counted, within its retry budget) takes over.

The wire work (request encoding, llhttp parsing, the pool) is :mod:`interlink.outbound.wire`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from interlink import __version__
from interlink.core.deadlines import deadline_at
from interlink.outbound import wire
from interlink.webhooks import ssrf

MAX_BODY_BYTES: Final = 20_480
USER_AGENT: Final = f"Interlink/{__version__}"
ERROR_CLASSES: Final = frozenset({"timeout", "dns", "connect", "tls", "refused", "other"})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_ORIGIN_CACHE_SIZE: Final = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
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


class TransportError(Exception):
    """No HTTP answer. ``error_class`` is one of :data:`ERROR_CLASSES`."""

    def __init__(self, error_class: str, message: str, *, duration_ms: float = 0.0) -> None:
        super().__init__(message)
        self.error_class = error_class if error_class in ERROR_CLASSES else "other"
        self.message = message
        self.duration_ms = duration_ms


_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


@dataclass(frozen=True, slots=True)
class _Origin:
    """What a request needs from its URL's scheme and authority, parsed once per origin."""

    url: str
    """The origin as written (scheme://authority): what the SSRF guard checks."""
    key: str
    """Scheme, host and port: the key of the guard's verdict, the address cache and the pool."""
    secure: bool
    host: str
    """For connecting and for TLS: IDNA-encoded, IPv6 without brackets."""
    port: int
    host_header: str
    literal: bool
    """The host is an IP address (no name resolution)."""

    @classmethod
    def parse(cls, origin: str) -> _Origin:
        """Raises :class:`TransportError` (``other``) for an origin that cannot be requested."""
        try:
            parts = urlsplit(origin)
            scheme = parts.scheme.lower()
            hostname = parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            if scheme not in ("http", "https") or not hostname:
                raise ValueError("an http or https URL with a host is required")
            if "@" in parts.netloc:
                # as the SSRF guard and the API client's configuration: never credentials in a URL
                raise TransportError(
                    "refused", "target refused (invalid_url): the URL carries user:password@ credentials"
                )
            host = hostname if hostname.isascii() else hostname.encode("idna").decode("ascii")
        except (ValueError, UnicodeError) as exc:
            raise TransportError("other", f"invalid URL {origin[:200]!r}: {exc}") from None
        literal = True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            literal = False
        named = f"[{host}]" if literal and address.version == 6 else host
        return cls(
            url=origin,
            key=f"{scheme}://{named}:{port}",
            secure=scheme == "https",
            host=host,
            port=port,
            host_header=named if port == (443 if scheme == "https" else 80) else f"{named}:{port}",
            literal=literal,
        )


class HttpTransport:
    """Sends HTTP requests over pooled HTTP/1.1 connections (the pool is made lazily, inside the
    event loop, and made again if the transport is used from another loop)."""

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
        self._defaults = {"User-Agent": user_agent, "Accept": "*/*", "Accept-Encoding": wire.ACCEPT_ENCODING}
        self._pool: wire.ConnectionPool | None = None
        self._approved: dict[str, float] = {}
        self._origins: dict[str, _Origin] = {}
        self._addresses: dict[str, tuple[list[ssrf.IPAddress], float]] = {}

    def _connections(self) -> wire.ConnectionPool:
        pool = self._pool
        if pool is None or pool.closed or pool.loop is not asyncio.get_running_loop():
            pool = self._pool = wire.ConnectionPool(limit=self.limit, limit_per_host=self.limit_per_host)
        return pool

    def _split(self, url: str) -> tuple[_Origin, str]:
        """``url``'s origin (cached) and its request target (path and query, fragment dropped)."""
        origin, end = self._origin_of(url)
        rest = url[end:].partition("#")[0]
        path, _, query = rest.partition("?")
        return origin, wire.request_target(path, query)

    def _origin_of(self, url: str) -> tuple[_Origin, int]:
        """``url``'s origin (cached) and where the rest of the URL starts."""
        match = _ORIGIN.match(url)
        if match is None:
            raise TransportError("other", f"invalid URL {url[:200]!r}: an http or https URL is required")
        text = match.group(0)
        origin = self._origins.get(text)
        if origin is None:
            origin = _Origin.parse(text)
            if len(self._origins) >= _ORIGIN_CACHE_SIZE:
                self._origins.clear()
            self._origins[text] = origin
        return origin, match.end()

    def _approved_now(self, origin: _Origin) -> bool:
        """The guard's cached verdict for ``origin`` is still valid (no I/O)."""
        return self._approved.get(origin.key, 0.0) > time.monotonic()

    async def check_target(self, url: str) -> None:
        """Raise :class:`TransportError` (``refused``/``dns``/``other``) unless the SSRF guard allows
        ``url``."""
        await self._check(self._origin_of(url)[0])

    async def _check(self, origin: _Origin) -> None:
        now = time.monotonic()
        if self._approved.get(origin.key, 0.0) > now:
            return
        try:
            await ssrf.check_target(origin.url, self.allowed_networks)
        except ssrf.TargetRefused as exc:
            raise _refused(exc) from exc
        self._approved[origin.key] = now + self.target_cache_seconds

    async def _resolve(self, url: _Origin, trace: AttemptTrace | None) -> list[ssrf.IPAddress]:
        """The addresses to connect to, all allowed by the SSRF guard (cached like its verdict)."""
        cached = self._addresses.get(url.key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        started = time.perf_counter()
        try:
            addresses = await ssrf.check_target(url.url, self.allowed_networks)
        except ssrf.TargetRefused as exc:
            raise _refused(exc) from exc
        finally:
            if trace is not None and not url.literal:
                trace.dns += time.perf_counter() - started
        if len(self._addresses) >= _ORIGIN_CACHE_SIZE:
            self._addresses.clear()
        self._addresses[url.key] = (addresses, now + self.target_cache_seconds)
        return addresses

    async def _open(self, url: _Origin, trace: AttemptTrace | None) -> wire.Http1Connection:
        """A new connection to one of the guarded addresses (tried in order), TLS on top for https."""
        addresses = await self._resolve(url, trace)
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        for address in addresses:
            if trace is not None:
                trace.create_started = trace.create_started or time.perf_counter()
            try:
                transport, connection = await loop.create_connection(
                    wire.Http1Connection, str(address), url.port
                )
            except OSError as exc:
                failures.append(f"{address}: {exc.strerror or exc}")
                continue
            if trace is not None:
                trace.tcp_connected = time.perf_counter()
            if url.secure:
                context = self.ssl_context or _default_ssl_context()
                try:
                    secured = await loop.start_tls(transport, connection, context, server_hostname=url.host)
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    transport.close()
                    raise TransportError("tls", f"TLS failed: {exc}") from exc
                except OSError as exc:
                    transport.close()
                    raise TransportError(
                        "connect", f"connection lost during the TLS handshake: {exc}"
                    ) from exc
                if secured is None:
                    transport.close()
                    raise TransportError("tls", "TLS failed: the connection closed during the handshake")
                connection.transport = secured
            if trace is not None:
                trace.create_ended = time.perf_counter()
            return connection
        raise TransportError("connect", f"connection failed: {'; '.join(failures) or 'no address'}")

    async def _exchange(
        self,
        method: str,
        url: _Origin,
        request: bytes,
        trace: AttemptTrace | None,
    ) -> wire.Answer:
        pool = self._connections()
        attempts = 1 if self.traced or method not in _IDEMPOTENT else 2
        resend = False
        while True:
            attempts -= 1
            connection, reused = await pool.acquire(url.key, lambda: self._open(url, trace), fresh=resend)
            if trace is not None:
                trace.connected = True
                trace.reused = reused
            answer: wire.Answer | None = None
            try:
                answer = await connection.exchange(
                    request, max_body=self.max_body_bytes, head=method == "HEAD"
                )
            except wire.ConnectionLost as exc:
                if reused and not exc.received and attempts > 0:
                    resend = True  # the server had closed the idle connection: once more, on a new one
                    continue
                raise
            finally:
                pool.release(connection, reusable=answer is not None and answer.reusable)
            return answer

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
        origin, request_target = self._split(url)
        guarded = origin if target is None else self._origin_of(target)[0]
        try:
            if not self._approved_now(guarded):
                with deadline_at(deadline):
                    await self._check(guarded)
        except TimeoutError as exc:
            raise TransportError(
                "dns",
                f"name resolution did not finish in {timeout:g} s",
                duration_ms=(time.perf_counter() - started) * 1000,
            ) from exc
        try:
            request = wire.encode_request(
                method, request_target, origin.host_header, headers, body, self._defaults
            )
        except ValueError as exc:
            raise TransportError("other", f"invalid request: {exc}") from None
        try:
            with deadline_at(deadline):
                answer = await self._exchange(method, origin, request, trace)
        except TransportError as exc:
            exc.duration_ms = (time.perf_counter() - started) * 1000
            raise
        except TimeoutError as exc:
            raise TransportError(
                "timeout",
                f"no answer in time ({timeout:g} s)",
                duration_ms=(time.perf_counter() - started) * 1000,
            ) from exc
        except (wire.ConnectionLost, OSError) as exc:
            raise TransportError(
                "connect",
                f"connection lost before an answer: {exc}",
                duration_ms=(time.perf_counter() - started) * 1000,
            ) from exc
        except wire.InvalidAnswer as exc:
            raise TransportError(
                "other", str(exc), duration_ms=(time.perf_counter() - started) * 1000
            ) from exc
        finally:
            if trace is not None:
                trace.ended = time.perf_counter()
        ended = trace.ended if trace is not None else time.perf_counter()
        if trace is not None:
            trace.first_byte = answer.first_byte
        return TransportResponse(
            status=answer.status,
            headers=_header_dict(answer.headers),
            body=answer.body,
            duration_ms=(ended - started) * 1000,
            truncated=answer.truncated,
        )

    async def close(self) -> None:
        """Close pooled connections (a new pool is made on the next send)."""
        if self._pool is not None:
            self._pool.close()
        self._pool = None


def _refused(exc: ssrf.TargetRefused) -> TransportError:
    error_class = "dns" if exc.reason == "unresolvable" else "refused"
    return TransportError(error_class, f"target refused ({exc.reason}): {exc.detail}")


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Answer headers by name as received; repeated headers joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("utf-8", "replace")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, certificate and host name checks on (made once, when first needed)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context

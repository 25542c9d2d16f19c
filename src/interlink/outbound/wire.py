"""HTTP/1.1 on asyncio: client connections parsed by httptools (llhttp, in C) and a pool of them.

This is the wire layer under :class:`~interlink.outbound.transport.HttpTransport`, which adds the
SSRF guard, name resolution, timing and error classes. It does one thing per call, as cheaply as
Python allows: write a request that :func:`encode_request` built, read one answer.

Contracts:

* :meth:`Http1Connection.exchange` sends one request and returns its :class:`Answer`: the final
  status (1xx interim answers are skipped), the headers as received (bytes), and at most
  ``max_body`` bytes of the body, *decoded* when it came ``gzip`` or ``deflate`` encoded (the cap
  applies to the decoded size, so a compressed bomb stops at the cap). ``truncated`` says that more
  came; a truncated exchange closes the connection. A body ended by the server closing the
  connection (no length, not chunked) is complete; any other close before the end raises
  :class:`ConnectionLost` (``received`` says whether any byte of an answer had arrived). An answer
  llhttp cannot parse, or a body that does not decode, raises :class:`InvalidAnswer` and closes the
  connection. An exchange that is cancelled (a timeout) closes the connection too.
* ``Answer.reusable`` is true only for a complete answer on a connection the server keeps open
  (HTTP/1.1 without ``Connection: close``); answers to ``HEAD`` are never reusable (llhttp cannot
  know their body is empty, so the connection is closed rather than guessed about).
* :class:`ConnectionPool` keeps connections per origin key, opens at most ``limit_per_host`` per
  key and ``limit`` in all, hands a released connection straight to the longest waiter for its key,
  and drops idle connections the server closed or that were idle ``keepalive_seconds``.
* No cookies are kept and nothing is shared between requests but the connection itself: the pool
  serves every tenant, so nothing one answer sets may reach another request.
* Requests go out at the end of the event-loop step that made them (:class:`_StepWrites`), all
  together: a write to a nearby server wakes it at once, and on a busy machine the woken server
  often takes the CPU from this process in the middle of its step; written together, the servers
  are woken once per step instead of once per request. A request whose connection closed in the
  meantime is not written (its exchange fails as a lost connection).
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httptools

from interlink.core.loops import PerLoop

KEEPALIVE_SECONDS: Final = 15.0
ACCEPT_ENCODING: Final = "gzip, deflate"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
# Characters that may stand in a request target as they are; anything else is percent-encoded (as
# are '%' signs that do not start an escape), so what is sent is always a valid request line.
_PATH_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]|%(?![0-9A-Fa-f]{2})")
_QUERY_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]|%(?![0-9A-Fa-f]{2})")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MANAGED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ConnectionLost(Exception):
    """The connection closed (or could not be written to) before the answer was complete."""

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class InvalidAnswer(Exception):
    """The server's bytes are not a valid HTTP/1.x answer, or its body does not decode."""


@dataclass(slots=True)
class Answer:
    """One HTTP answer (see the module contracts)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool
    reusable: bool
    first_byte: float
    """``perf_counter`` time the answer's headers were complete."""


def _quoted(text: str, needs_quoting: re.Pattern[str], safe: str) -> str:
    if needs_quoting.search(text) is None:
        return text
    return quote(_LONE_PERCENT.sub("%25", text), safe=safe)


def request_target(path: str, query: str) -> str:
    """The request line's target for a URL's path and query, percent-encoded where needed."""
    target = _quoted(path, _PATH_NEEDS_QUOTING, "/%:@!$&'()*+,;=-._~") if path else "/"
    if query:
        target += "?" + _quoted(query, _QUERY_NEEDS_QUOTING, "/?%:@!$&'()*+,;=-._~")
    return target


def encode_request(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes | None,
    defaults: Mapping[str, str],
) -> bytes:
    """The bytes of one HTTP/1.1 request. ``defaults`` (e.g. ``User-Agent``) are sent unless
    ``headers`` names them (case-insensitively); ``Host`` likewise. The framing headers
    (``Content-Length``, ``Transfer-Encoding``, ``Connection``, ...) are always this function's:
    callers' values for them are dropped, so a header cannot smuggle a second request. Raises
    :class:`ValueError` for a method or header name that is not an HTTP token, or a value holding
    CR, LF or NUL."""
    if _TOKEN.match(method) is None:
        raise ValueError(f"invalid HTTP method {method!r}")
    given: set[str] = set()
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    for name, value in headers.items():
        if _TOKEN.match(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        if _UNSAFE_VALUE.search(value) is not None:
            raise ValueError(f"header {name!r} holds a line break or NUL character")
        lowered = name.lower()
        if lowered in _MANAGED:
            continue
        given.add(lowered)
        lines.append(f"{name}: {value}\r\n")
    if "host" not in given:
        lines.insert(1, f"Host: {host}\r\n")
    for name, value in defaults.items():
        if name.lower() not in given:
            lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    elif method in _BODY_METHODS:
        lines.append("Content-Length: 0\r\n\r\n")
    else:
        lines.append("\r\n")
    head = "".join(lines).encode("utf-8")
    return head + body if body else head


class _Decoder:
    """Incremental gzip/deflate decoding with an output cap. ``deflate`` is the zlib format, or raw
    deflate (which some servers send): told apart by the zlib header in the first two bytes."""

    __slots__ = ("_inflate", "_pending")

    def __init__(self, encoding: str) -> None:
        self._inflate: Any = None
        self._pending = b""
        if encoding == "gzip":
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decode(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """At most ``room`` decoded bytes of ``data``; the flag says more would have come.
        Raises :class:`zlib.error` for data that does not decode."""
        if self._inflate is None:
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return b"", False
            self._pending = b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        out = self._inflate.decompress(data, room + 1)
        return out[:room], len(out) > room or bool(self._inflate.unconsumed_tail)

    def finish(self, room: int) -> tuple[bytes, bool]:
        """What the decoder still holds once the body is complete."""
        if self._inflate is None:
            if self._pending:
                raise zlib.error("a deflate body of one byte")
            return b"", False
        out = self._inflate.flush()
        return out[:room], len(out) > room


class _StepWrites:
    """The request writes of one event loop, made together at the end of the current step."""

    __slots__ = ("loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[asyncio.Transport, bytes]] = []

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append((transport, data))

    def flush(self) -> None:
        pending = self.pending
        self.pending = []
        for transport, data in pending:
            if transport.is_closing():
                continue
            try:
                transport.write(data)
            except Exception:  # one refused write must not hold back the others
                transport.abort()  # its exchange then fails as a lost connection


_step_writes: PerLoop[_StepWrites] = PerLoop(_StepWrites)


class Http1Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection; one exchange at a time."""

    def __init__(self, key: str = "") -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._done = True
        self._received = False
        self._head = False
        self._max_body = 0
        self._status = 0
        self._interim = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._truncated = False
        self._decoder: _Decoder | None = None
        self._until_close = False
        self._reusable = False
        self._first_byte = 0.0
        self._error: BaseException | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done:
            return
        if self._until_close and self._first_byte:
            self._complete(reusable=False)  # a body delimited by the end of the connection
        else:
            self._fail(
                ConnectionLost(
                    f"the server closed the connection{f' ({exc})' if exc else ''}",
                    received=self._received,
                )
            )

    def data_received(self, data: bytes) -> None:
        if self._done:
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(reusable=False)
        except httptools.HttpParserError as exc:
            if not self._done:
                self._fail(InvalidAnswer(f"invalid HTTP answer: {exc}"))

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._done:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._done:
            self.close()  # a second answer to one request: the connection's state is unknown
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # e.g. 103 Early Hints: the real answer follows
            self._headers = []
            return
        self._status = status
        self._first_byte = time.perf_counter()
        if self._head:
            self._finish(reusable=False)
            return
        length = chunked = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = True
            elif lowered == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif lowered == b"content-encoding":
                encoding = value.strip().lower()
                if encoding in (b"gzip", b"x-gzip", b"deflate"):
                    self._decoder = _Decoder("deflate" if encoding == b"deflate" else "gzip")
        self._until_close = not (length or chunked) and status not in (204, 304)

    def on_body(self, data: bytes) -> None:
        if self._done or self._interim:
            return
        room = self._max_body - self._size
        if self._decoder is not None:
            try:
                data, over = self._decoder.decode(data, room)
            except zlib.error as exc:
                self._fail(InvalidAnswer(f"the answer's body does not decode: {exc}"))
                return
        else:
            over = len(data) > room
            if over:
                data = data[:room]
        if data:
            self._chunks.append(data)
            self._size += len(data)
        if over:
            self._truncated = True
            self._finish(reusable=False)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._done:
            self._complete(reusable=self._parser.should_keep_alive())

    def _complete(self, *, reusable: bool) -> None:
        """The whole body has come: decode what the decoder still holds, then finish."""
        if self._decoder is not None:
            try:
                tail, over = self._decoder.finish(self._max_body - self._size)
            except zlib.error as exc:
                self._fail(InvalidAnswer(f"the answer's body does not decode: {exc}"))
                return
            if tail:
                self._chunks.append(tail)
                self._size += len(tail)
            if over:
                self._truncated = True
                reusable = False
        self._finish(reusable=reusable)

    # -- exchanges -------------------------------------------------------------------------------

    def _finish(self, *, reusable: bool) -> None:
        self._done = True
        self._reusable = reusable
        if not reusable:
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._done = True
        self._error = error
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def exchange(self, request: bytes, *, max_body: int, head: bool = False) -> Answer:
        """Send ``request`` (from :func:`encode_request`) and read its answer."""
        if self.closed or self.transport is None:
            raise ConnectionLost("the connection is closed", received=False)
        self._done = self._received = self._truncated = self._interim = self._until_close = False
        self._head = head
        self._max_body = max_body
        self._status = self._size = 0
        self._first_byte = 0.0
        self._headers = []
        self._chunks = []
        self._decoder = None
        self._error = None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        try:
            _step_writes.get(loop).write(self.transport, request)
            await waiter
        except BaseException:
            self._done = True
            self.close()  # half an exchange: the connection's state is unknown
            raise
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error
        return Answer(
            self._status,
            self._headers,
            self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks),
            self._truncated,
            self._reusable and not self.closed,
            self._first_byte,
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Origin:
    __slots__ = ("idle", "open", "waiters")

    def __init__(self) -> None:
        self.idle: list[Http1Connection] = []
        self.open = 0
        self.waiters: deque[asyncio.Future[Http1Connection | None]] = deque()


class ConnectionPool:
    """Keep-alive connections per origin key (see the module contracts). Bound to one event loop."""

    def __init__(
        self, *, limit: int, limit_per_host: int, keepalive_seconds: float = KEEPALIVE_SECONDS
    ) -> None:
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.keepalive_seconds = keepalive_seconds
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._origins: dict[str, _Origin] = {}
        self._open = 0
        self._waiting_for_any: deque[asyncio.Future[Http1Connection | None]] = deque()

    def _origin(self, key: str) -> _Origin:
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin()
        return origin

    async def acquire(
        self, key: str, connect: Callable[[], Awaitable[Http1Connection]], *, fresh: bool = False
    ) -> tuple[Http1Connection, bool]:
        """A connection for ``key`` and whether it was reused; ``connect()`` opens a new one when
        the limits allow, otherwise this waits for one to be released. ``fresh``: not one that
        sat idle in the pool (one handed over by a request that just used it may still come)."""
        origin = self._origin(key)
        while True:
            idle = origin.idle
            while idle and not fresh:
                connection = idle.pop()
                if (
                    not connection.closed
                    and time.monotonic() - connection.idle_since < self.keepalive_seconds
                ):
                    return connection, True
                self._discard(origin, connection)
            if origin.open < self.limit_per_host and (
                self._open < self.limit or self._drop_idle_elsewhere(key)
            ):
                origin.open += 1
                self._open += 1
                try:
                    connection = await connect()
                except BaseException:
                    origin.open -= 1
                    self._open -= 1
                    self._wake(origin)
                    raise
                connection.key = key
                return connection, False
            waiter: asyncio.Future[Http1Connection | None] = self.loop.create_future()
            queue = origin.waiters if origin.open >= self.limit_per_host else self._waiting_for_any
            queue.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    passed = waiter.result()  # woken, then cancelled: pass the turn on
                    if passed is not None:
                        self.release(passed, reusable=True)
                    else:
                        self._wake(origin)
                raise
            finally:
                if waiter in queue:
                    queue.remove(waiter)
            if handed is not None:
                return handed, True

    def release(self, connection: Http1Connection, *, reusable: bool) -> None:
        """Return ``connection`` after an exchange; it is kept only if ``reusable`` and still open."""
        origin = self._origin(connection.key)
        if not reusable or connection.closed or self.closed:
            self._discard(origin, connection)
            return
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle_since = time.monotonic()
        origin.idle.append(connection)
        if self._waiting_for_any:
            self._wake(origin)  # someone waits at the total limit: this idle connection can go

    def _discard(self, origin: _Origin, connection: Http1Connection) -> None:
        connection.close()
        origin.open -= 1
        self._open -= 1
        self._wake(origin)

    def _wake(self, origin: _Origin) -> None:
        """A slot freed: let one waiter (of this origin first) try again."""
        for queue in (origin.waiters, self._waiting_for_any):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return

    def _drop_idle_elsewhere(self, key: str) -> bool:
        """At the total limit: close an idle connection of another origin to make room."""
        for other_key, origin in self._origins.items():
            if other_key != key and origin.idle:
                connection = origin.idle.pop(0)
                connection.close()
                origin.open -= 1
                self._open -= 1
                return True
        return False

    def close(self) -> None:
        """Close idle connections now and busy ones when they are released."""
        self.closed = True
        for origin in self._origins.values():
            for connection in origin.idle:
                connection.close()
                origin.open -= 1
                self._open -= 1
            origin.idle.clear()
            for waiter in origin.waiters:
                if not waiter.done():
                    waiter.cancel()
        for waiter in self._waiting_for_any:
            if not waiter.done():
                waiter.cancel()

"""The HTTP server protocol Interlink runs under uvicorn: direct routes without ASGI, one socket
write per response, one timer for idle connections.

A request to one of the app's direct routes (:mod:`interlink.http.direct`: key verification and
the connection proxy, with a method the route takes, no percent escape in the path, no body or a
Content-Length within the body limit, no ``Expect: 100-continue``, not queued behind another
request of the same connection) is read whole
and answered by :meth:`~interlink.http.direct.DirectRoutes.answer` from the parsed request: no
ASGI scope, cycle, messages or middleware per call, the answer written as one buffer. While it is
in flight a :class:`_DirectExchange` stands in as the connection's current request, so pipelined
requests queue behind it, a lost connection marks it, and a graceful shutdown waits for it and
then closes the connection. A request the route leaves to the framework runs through uvicorn's
own request cycle, its body replayed. Every other request is uvicorn's, unchanged.

uvicorn's httptools protocol writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body on ``http.response.body``: two ``send`` system calls, and on
loopback or a fast network two segments, for every small answer, with the client woken for each.
:class:`InterlinkHttpProtocol` gives uvicorn a transport that holds the writes made during
one event-loop step and hands them to the socket as one at the end of the step. Order, flow
control, ``close`` (which sends what is held first) and every other transport method are the real
transport's; a response whose body is streamed over several steps is still written step by step,
and more than :data:`HOLD_LIMIT` bytes held are written at once (so the real transport's flow
control still sees a large body as it is produced).

uvicorn also arms a keep-alive timer (``call_later``) after every response and cancels it when the
next request's bytes arrive: a timer per request on a busy keep-alive connection. This protocol
instead gives the connection a deadline in its server's :class:`~interlink.core.deadlines.DeadlineTimer`
(a dict insert, and a dict pop when bytes arrive or the connection is lost); the one timer they
share closes each connection once it has been idle for ``timeout_keep_alive`` seconds.

A new connection is idle (with a deadline) until its first request begins, and a request's head
must arrive within :data:`HEAD_TIMEOUT_SECONDS` of its first byte, so neither a silent
connection nor a head trickled a byte at a time holds a connection (uvicorn would keep both open
for ever). Every request's head (request line and headers) is bounded by
:data:`MAX_HEADER_BYTES` (414 or 431), and bytes the parser refuses get a 400 problem: the
server's own refusals are ``application/problem+json`` like the app's, with a correlation id.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from interlink.core.context import new_correlation_id
from interlink.core.deadlines import DeadlineTimer
from interlink.http.direct import (
    DirectRequest,
    DirectResponse,
    DirectRoute,
    DirectRoutes,
    first_values,
)
from interlink.http.errors import PROBLEM_MEDIA_TYPE
from interlink.http.middleware import problem_bytes

HOLD_LIMIT = 64 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
"""The most a request's line and headers may take together. Beyond it the request is refused (414
when the request target is most of it, else 431) and the connection closed: the parser keeps a
header whole until it ends, so without a bound one peer could make the server buffer without end."""


HEAD_TIMEOUT_SECONDS: Final = 30.0
"""How long a request's line and headers may take to arrive, from their first byte: a connection
that sends a head slower than that (a byte at a time, to hold the connection) is closed. A
connection that sends nothing at all is closed after the keep-alive timeout, as an idle one."""


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head that is too large."""


class CoalescingTransport:
    """A transport wrapper whose writes within one event-loop step reach the socket as one write."""

    __slots__ = ("_held", "_held_size", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._held_size += len(data)
        if self._held_size > HOLD_LIMIT:
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Send what is held now (called at the end of the step, and before closing)."""
        if not self._held:
            return
        held = self._held
        self._held = []
        self._held_size = 0
        if self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_size

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = []
        self._held_size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


IDLE_DEADLINES_ATTRIBUTE = "interlink_idle_deadlines"


def idle_deadlines(
    server_state: ServerState, loop: asyncio.AbstractEventLoop
) -> DeadlineTimer[HttpToolsProtocol]:
    """The idle keep-alive connections of the server whose shared state is ``server_state`` and
    their closing times, kept on that state (made on first use, collected with it). A connection
    whose time comes is closed by uvicorn's ``timeout_keep_alive_handler`` (unless already closing)."""
    timer: DeadlineTimer[HttpToolsProtocol] | None = getattr(server_state, IDLE_DEADLINES_ATTRIBUTE, None)
    if timer is None:
        timer = DeadlineTimer(loop, HttpToolsProtocol.timeout_keep_alive_handler)
        setattr(server_state, IDLE_DEADLINES_ATTRIBUTE, timer)
    return timer


class _NoEvent:
    """What uvicorn sets on a lost connection's current request; a direct exchange waits on nothing."""

    __slots__ = ()

    def set(self) -> None:
        return None


_NO_EVENT = _NoEvent()


class _DirectExchange:
    """A request served by a direct route, standing in as the protocol's ``cycle`` while in flight
    (uvicorn reads ``response_complete``, sets ``disconnected`` and ``keep_alive``, and sets
    ``message_event``)."""

    __slots__ = (
        "body",
        "disconnected",
        "header_lines",
        "headers",
        "keep_alive",
        "response_complete",
        "route",
        "scope",
    )

    message_event = _NO_EVENT

    def __init__(
        self,
        route: DirectRoute,
        scope: dict[str, Any],
        header_lines: list[tuple[bytes, bytes]],
        headers: dict[bytes, bytes],
        keep_alive: bool,
    ) -> None:
        self.route = route
        self.scope = scope
        self.header_lines = header_lines
        self.headers = headers
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.response_complete = False
        self.disconnected = False


class InterlinkHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol serving the app's direct routes itself, writing each response
    with one system call, its idle keep-alive connections closed through the server's
    :func:`idle_deadlines` (see the module doc). ``timeout_keep_alive_task`` stays None."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.idle_deadlines = idle_deadlines(server_state, self.loop)
        routes = getattr(self.app, "direct_routes", None)
        self.direct_routes: DirectRoutes | None = routes if isinstance(routes, DirectRoutes) else None
        self._reading: _DirectExchange | None = None
        # The size of the current request's head (see _check_head_size); a read is what one
        # data_received gets.
        self._read_size = 0
        self._reading_headers = False
        self._head_began = False
        self._head_first_read = 0
        self._head_later_reads = 0
        self._head_deadline = 0.0
        self._refused: tuple[int, str, str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        # Idle until its first request arrives (uvicorn would keep it open for ever).
        self.idle_deadlines.set(self, self.loop.time() + self.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn unsets the keep-alive timer only on a clean loss; a lost connection must never
        # keep a deadline, whatever the reason.
        self.idle_deadlines.discard(self)
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        # Per request (uvicorn calls it on every data_received): a dict pop, no timer to cancel.
        self.idle_deadlines.discard(self)

    # -- the size of a request's head -----------------------------------------------------------
    # MAX_HEADER_BYTES is held two ways. While a head arrives, the reads after the one it began in
    # are counted (never more than the head: no answer is refused early) and the head is refused
    # once they pass the bound, so no head takes more than the bound and one read (uvloop reads
    # up to 256 KiB) of buffer. When the head is complete it is measured exactly, but only when
    # all the reads since it began could hold more than the bound (a head that arrived within one
    # read of a usual size is not measured at all).

    def data_received(self, data: bytes) -> None:
        self._read_size = len(data)
        super().data_received(data)  # which drops the connection's deadline
        if not self._reading_headers or self.transport.is_closing():
            return
        self.idle_deadlines.set(self, self._head_deadline)  # fixed when the head began
        if self._head_began:
            self._head_began = False
            return
        self._head_later_reads += self._read_size
        if self._head_later_reads > MAX_HEADER_BYTES:
            self._send_problem(*self._head_refusal(self._head_later_reads))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = self._head_began = True
        self._head_first_read = self._read_size
        self._head_later_reads = 0
        self._head_deadline = self.loop.time() + HEAD_TIMEOUT_SECONDS

    def _check_head_size(self) -> None:
        """Raise (the parser stops; :meth:`send_400_response` answers) for a complete head larger
        than :data:`MAX_HEADER_BYTES`."""
        if self._head_first_read + self._head_later_reads + self._read_size <= MAX_HEADER_BYTES:
            return
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEADER_BYTES:
            self._refused = self._head_refusal(size)
            raise _HeadTooLarge

    def _head_refusal(self, size: int) -> tuple[int, str, str, str]:
        """414 when the request target is most of the ``size`` bytes of the head, else 431."""
        bound = f"the request line and headers may take {MAX_HEADER_BYTES} bytes together"
        if len(self.url) * 2 > size:
            return 414, "uri-too-long", "URI too long", f"the request target is too long: {bound}"
        return 431, "header-fields-too-large", "Request header fields too large", f"{bound}, not more"

    # -- direct routes --------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._check_head_size()
        exchange = self._direct_exchange()
        if exchange is None:
            super().on_headers_complete()
            return
        self._reading = exchange
        self.cycle = exchange  # type: ignore[assignment]

    def _direct_exchange(self) -> _DirectExchange | None:
        """The request as a direct exchange when a direct route takes it (see the module doc)."""
        routes = self.direct_routes
        if (
            routes is None
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or not (self.cycle is None or self.cycle.response_complete)
            or self.parser.should_upgrade()
        ):
            return None
        parsed = httptools.parse_url(self.url)
        raw_path: bytes = parsed.path
        if b"%" in raw_path:
            return None  # uvicorn unquotes it
        path = self.root_path + raw_path.decode("ascii")
        method = self.parser.get_method().decode("ascii")
        route = routes.route_for(method, path)
        if route is None:
            return None
        headers = first_values(self.headers)
        length = headers.get(b"content-length", b"0")  # neither it nor chunked: no body
        if b"transfer-encoding" in headers or not length.isdigit() or int(length) > routes.max_body_bytes:
            return None
        http_version = self.parser.get_http_version()
        scope = self.scope
        scope["method"] = method
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        return _DirectExchange(route, scope, self.headers, headers, keep_alive)  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_body(body)
        else:
            exchange.body.append(body)  # within the body limit (checked against Content-Length)

    def on_message_complete(self) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_message_complete()
            return
        self._reading = None
        answer = self._answer_direct(exchange)
        if self.config.reset_contextvars:
            task = self.loop.create_task(answer, context=contextvars.Context())
        else:
            task = self.loop.create_task(answer)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer_direct(self, exchange: _DirectExchange) -> None:
        assert self.direct_routes is not None
        body = b"".join(exchange.body)
        scope = exchange.scope
        request = DirectRequest(
            scope["path"],
            exchange.headers,
            body,
            self.client,
            scope["method"],
            scope["query_string"],
            exchange.header_lines,
        )
        try:
            response = await self.direct_routes.answer(exchange.route, request)
            if response is None:
                await self._hand_to_framework(exchange, body)
            else:
                self._write_direct(exchange, response)
        except Exception as exc:
            # answer() turns a route's failure into a problem; this is a failure of the serving
            # itself. As uvicorn does then: log it and close the connection, never leave it hanging.
            self.logger.error("Exception serving a direct route", exc_info=exc)
            self.transport.close()

    def _write_direct(self, exchange: _DirectExchange, response: DirectResponse) -> None:
        exchange.response_complete = True
        if exchange.disconnected:
            return
        keep_alive = exchange.keep_alive
        head = exchange.scope["method"] == "HEAD"
        content = [STATUS_LINE[response.status]]
        for name, value in (*self.server_state.default_headers, *response.headers):
            content.extend((name, b": ", value, b"\r\n"))
        if response.has_body and not head:
            content.append(b"content-length: %d\r\n" % len(response.body))
        if not keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if not head:
            content.append(response.body)
        self.transport.write(b"".join(content))
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()

    async def _hand_to_framework(self, exchange: _DirectExchange, body: bytes) -> None:
        """Run the request the route declined through uvicorn's request cycle, body replayed."""
        assert self.direct_routes is not None
        cycle = RequestResponseCycle(
            scope=exchange.scope,  # type: ignore[arg-type]
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=exchange.keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.body = bytearray(body)
        cycle.more_body = False
        cycle.disconnected = exchange.disconnected
        cycle.message_event.set()
        if self.cycle is exchange:  # type: ignore[comparison-overlap]  # see on_headers_complete
            self.cycle = cycle
        await cycle.run_asgi(self.direct_routes.declined)  # type: ignore[arg-type]

    # -- requests that are not HTTP -------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """The answer to bytes the parser refuses (a request line, header or framing that is not
        HTTP/1.1, such as raw non-ASCII bytes in the target): a 400 problem like every other
        error, with its correlation id, instead of uvicorn's plain text; the connection is closed,
        as nothing after such bytes can be framed. uvicorn has already logged the refusal. A
        head found too large by :meth:`_check_head_size` comes here too (the parser stopped on
        its exception), and gets its own status."""
        refused, self._refused = self._refused, None
        if refused is not None:
            self._send_problem(*refused)
            return
        self._send_problem(
            400,
            "malformed-request",
            "Malformed request",
            "the request is not valid HTTP/1.1: its request line, a header or its framing could not "
            "be parsed (a target must be percent-encoded ASCII)",
        )

    def _send_problem(self, status: int, code: str, title: str, detail: str) -> None:
        """Answer a request the server refuses before any route sees it, and close the connection;
        only close it while an earlier request's answer is still being written (a problem written
        now would land in the middle of that answer)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        correlation_id = new_correlation_id()
        body = problem_bytes(status, code, title, detail, correlation_id, None)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend((name, b": ", value, b"\r\n"))
        content.extend(
            (
                b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
                b"x-correlation-id: " + correlation_id.encode() + b"\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            )
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    # -- idle connections -----------------------------------------------------------------------

    def on_response_complete(self) -> None:
        # uvicorn 0.54's on_response_complete, giving the connection an idle deadline instead of
        # arming a timer of its own.
        self.server_state.total_requests += 1

        if self.transport.is_closing():
            return

        self._unset_keepalive_if_required()

        # Unpause data reads if needed.
        self.flow.resume_reading()

        # Start the next pipelined request if there is one; otherwise the connection is idle.
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_deadlines.set(self, self.loop.time() + self.timeout_keep_alive)


def server_options() -> dict[str, Any]:
    """The uvicorn options Interlink's API server runs with (``interlink serve``, and the test and
    benchmark servers): this module's protocol; no access log from uvicorn (the request-context
    middleware logs each request with its correlation id); uvicorn's logging left to Interlink's
    configuration; forwarded-for headers handled by the app's own trusted-proxy setting; no
    ``Server: uvicorn`` header (nothing to tell a scanner which server software answers)."""
    return {
        "http": InterlinkHttpProtocol,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
    }

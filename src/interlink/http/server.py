"""The HTTP server protocol Interlink runs under uvicorn: one socket write per response.

uvicorn's httptools protocol writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body on ``http.response.body``: two ``send`` system calls, and on
loopback or a fast network two segments, for every small answer, with the client woken for each.
:class:`CoalescingHttpToolsProtocol` gives uvicorn a transport that holds the writes made during
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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from interlink.core.deadlines import DeadlineTimer

HOLD_LIMIT = 64 * 1024


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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each response with one system call, its idle
    keep-alive connections closed through the server's :func:`idle_deadlines` (see the module
    doc). ``timeout_keep_alive_task`` stays None."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.idle_deadlines = idle_deadlines(server_state, self.loop)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn unsets the keep-alive timer only on a clean loss; a lost connection must never
        # keep a deadline, whatever the reason.
        self.idle_deadlines.discard(self)
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        # Per request (uvicorn calls it on every data_received): a dict pop, no timer to cancel.
        self.idle_deadlines.discard(self)

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
        "http": CoalescingHttpToolsProtocol,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
    }

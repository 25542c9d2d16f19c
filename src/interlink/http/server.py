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
instead marks the connection idle in its server's :class:`KeepAliveSweeper` (a dict insert, and a
dict pop when bytes arrive or the connection is lost), and the sweeper's one coarse timer closes
the connections idle for ``timeout_keep_alive`` seconds, no later than
:meth:`KeepAliveSweeper.sweep_interval` (at most :data:`MAX_SWEEP_INTERVAL`) after that.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

HOLD_LIMIT = 64 * 1024

MAX_SWEEP_INTERVAL = 1.0
"""The longest gap between two sweeps while connections are idle: how late, at most, an idle
keep-alive connection is closed after its ``timeout_keep_alive`` (plus event-loop latency)."""

TIMER_SLACK = 0.002
"""A sweep treats deadlines this close ahead as reached: event-loop timers may fire slightly early
(uvloop rounds delays to whole milliseconds), as uvicorn's own per-request timer would."""


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


class KeepAliveSweeper:
    """Closes the idle keep-alive connections of one server (one event loop) with one coarse timer.

    ``idle`` maps each idle connection (its last response complete, no byte received since, no
    request in progress) to the loop time at which it has been idle for ``timeout`` seconds.
    Marking a connection idle is a dict insert, unmarking a dict pop; the timer is armed when a
    connection is marked idle and none is armed, and re-armed after a sweep only while connections
    remain idle, for the earliest deadline but at least :meth:`sweep_interval` after this sweep. A
    connection is closed (``timeout_keep_alive_handler``: ``close()`` unless already closing) once
    idle for at least ``timeout`` seconds and at most ``sweep_interval()`` later than that (plus
    event-loop latency). A timer armed when the last idle connection was unmarked fires once more,
    finds nothing, and is not re-armed.
    """

    __slots__ = ("_due", "_loop", "_timer", "idle", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self.timeout = timeout
        self.idle: dict[HttpToolsProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def sweep_interval(self) -> float:
        """The least time between two sweeps: at most :data:`MAX_SWEEP_INTERVAL`, and never more
        than the timeout (so a connection marked idle after a sweep is never due before the next)."""
        return max(0.0, min(MAX_SWEEP_INTERVAL, self.timeout))

    @property
    def armed(self) -> bool:
        """Whether a sweep is scheduled."""
        return self._timer is not None

    def mark_idle(self, protocol: HttpToolsProtocol) -> None:
        """``protocol``'s connection is idle from now on (until :meth:`unmark`)."""
        deadline = self._loop.time() + self.timeout
        self.idle[protocol] = deadline
        if self._timer is None or deadline < self._due:
            self._arm(deadline)

    def unmark(self, protocol: HttpToolsProtocol) -> None:
        """``protocol``'s connection is busy or gone: the sweeper holds it no more."""
        self.idle.pop(protocol, None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._due = when
        self._timer = self._loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        reached = now + TIMER_SLACK
        expired: list[HttpToolsProtocol] = []
        earliest: float | None = None
        for protocol, deadline in self.idle.items():
            if deadline <= reached:
                expired.append(protocol)
            elif earliest is None or deadline < earliest:
                earliest = deadline
        for protocol in expired:
            del self.idle[protocol]
        if earliest is not None:
            self._arm(max(earliest, now + self.sweep_interval()))
        for protocol in expired:
            protocol.timeout_keep_alive_handler()


SWEEPER_ATTRIBUTE = "interlink_keep_alive_sweeper"


def keep_alive_sweeper(
    server_state: ServerState, loop: asyncio.AbstractEventLoop, timeout: float
) -> KeepAliveSweeper:
    """The sweeper of the server whose shared state is ``server_state``, kept on that state (made
    on first use, so it lives and is collected with the server's state)."""
    sweeper: KeepAliveSweeper | None = getattr(server_state, SWEEPER_ATTRIBUTE, None)
    if sweeper is None:
        sweeper = KeepAliveSweeper(loop, timeout)
        setattr(server_state, SWEEPER_ATTRIBUTE, sweeper)
    return sweeper


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each response with one system call, its idle
    keep-alive connections closed by the server's :class:`KeepAliveSweeper` (see the module doc).
    ``timeout_keep_alive_task`` stays None."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.keep_alive_sweeper = keep_alive_sweeper(server_state, self.loop, self.timeout_keep_alive)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn unsets the keep-alive timer only on a clean loss; a lost connection must never
        # stay in the sweeper, whatever the reason.
        self.keep_alive_sweeper.unmark(self)
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        # Per request (uvicorn calls it on every data_received): a dict pop, no timer to cancel.
        self.keep_alive_sweeper.idle.pop(self, None)

    def on_response_complete(self) -> None:
        # uvicorn 0.54's on_response_complete, marking the connection idle in the sweeper instead of
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
            self.keep_alive_sweeper.mark_idle(self)


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

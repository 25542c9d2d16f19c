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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each response with one system call (see the module doc)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


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

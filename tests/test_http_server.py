"""The API server's uvicorn protocol (``interlink.http.server``): one socket write per response,
with order, streaming, flow control and closing unchanged; idle keep-alive connections closed by
one shared deadline timer instead of a timer per request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from interlink.http import server as server_module
from interlink.http.server import (
    HEAD_TIMEOUT_SECONDS,
    HOLD_LIMIT,
    MAX_HEADER_BYTES,
    CoalescingTransport,
    InterlinkHttpProtocol,
    server_options,
)
from tests.conftest import free_port


class RecordingTransport:
    """Stands in for a socket transport: records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False
        self.buffered = 0
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555)}.get(name, default)


async def next_step() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_step_reach_the_socket_as_one_in_order() -> None:
    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    wrapped.write(memoryview(b"ok"))
    wrapped.write(b"")
    assert real.writes == []
    assert wrapped.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await next_step()
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    assert wrapped.get_write_buffer_size() == 0

    wrapped.writelines([b"a", b"b"])
    await next_step()
    wrapped.write(b"c")
    await next_step()
    assert real.writes[1:] == [b"ab", b"c"]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"last words")
    wrapped.close()
    assert real.writes == [b"last words"] and real.closed
    await next_step()  # the scheduled flush finds nothing left and writes nothing after close
    assert real.writes == [b"last words"]

    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"half")
    wrapped.write_eof()
    assert real.writes == [b"half"] and real.eof

    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"never sent")
    wrapped.abort()
    await next_step()
    assert real.writes == [] and real.aborted and wrapped.get_write_buffer_size() == 0


async def test_nothing_is_written_to_a_transport_that_is_closing() -> None:
    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"too late")
    real.closed = True  # the peer went away within the step
    await next_step()
    assert real.writes == []


async def test_more_than_the_hold_limit_is_written_at_once() -> None:
    real = RecordingTransport()
    real.buffered = 7
    wrapped = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"h" * 100)
    big = b"x" * HOLD_LIMIT
    wrapped.write(big)
    # Written within the step, so the real transport's flow control sees it as it is produced.
    assert real.writes == [b"h" * 100 + big]
    assert wrapped.get_write_buffer_size() == 7
    wrapped.write(b"tail")
    assert wrapped.get_write_buffer_size() == 7 + 4
    await next_step()
    assert real.writes[1:] == [b"tail"]


def test_other_transport_methods_are_the_real_ones() -> None:
    real = RecordingTransport()
    wrapped = CoalescingTransport(real, asyncio.new_event_loop())  # type: ignore[arg-type]
    assert wrapped.get_extra_info("peername") == ("127.0.0.1", 5555)
    assert wrapped.is_closing() is False
    with pytest.raises(AttributeError):
        wrapped.no_such_method  # noqa: B018


# -- a real uvicorn server with the options `interlink serve` uses -------------------------------

release_stream = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        while not release_stream.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"second", "more_body": False})
        return
    payload = b"z" * (3 * HOLD_LIMIT + 5) if path == "/big" else b"echo:" + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        return None


def start_server(asgi_app: Any = None, **config: Any) -> tuple[_ThreadedServer, threading.Thread, int]:
    """A uvicorn server with the options `interlink serve` uses (and ``config``), started in a
    thread, serving ``asgi_app`` (this module's ``app`` by default)."""
    port = free_port()
    server = _ThreadedServer(
        uvicorn.Config(
            asgi_app or app, host="127.0.0.1", port=port, lifespan="on", **server_options(), **config
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return server, thread, port


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server, thread, port = start_server()
    yield port
    server.should_exit = True
    thread.join(10)


KEEP_ALIVE = 1.0


@pytest.fixture(scope="module")
def short_keep_alive_port() -> Iterator[int]:
    """A server closing keep-alive connections idle for :data:`KEEP_ALIVE` seconds."""
    server, thread, port = start_server(timeout_keep_alive=KEEP_ALIVE)
    yield port
    server.should_exit = True
    thread.join(10)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one Content-Length or chunked answer read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    fields = {
        line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
    }
    if b"content-length" in fields:
        size = int(fields[b"content-length"])
        while len(rest) < size:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        return head, rest
    while not rest.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return head, rest


def test_answers_do_not_name_the_server_software(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _ = read_response(sock)
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:]]
    assert b"server" not in names and b"date" in names


def test_keep_alive_requests_answer_in_order(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        for n in range(3):
            payload = f"call {n}".encode()
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK") and body == b"echo:" + payload


def test_expect_100_continue_still_gets_its_interim_answer(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:  # the app asked for the body: the client may send it
            chunk = sock.recv(65536)
            assert chunk
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        answer = interim
        while b"echo:data" not in answer:
            chunk = sock.recv(65536)
            assert chunk
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_large_bodies_arrive_whole_and_head_has_no_body(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        _, body = read_response(sock)
        assert body == b"z" * (3 * HOLD_LIMIT + 5)
        sock.sendall(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        head, after = b"", b""
        while b"echo:" not in after:
            chunk = sock.recv(65536)
            assert chunk
            after += chunk
        head, _, rest = after.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in head.lower()
        assert rest.startswith(b"HTTP/1.1 200 OK"), "the HEAD answer carried a body"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /echo?name=\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",  # a target that is not ASCII
        b"GET /echo HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",  # a space in a name
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS spoken to plain HTTP
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
    ids=["non-ascii-target", "bad-header-name", "tls", "two-lengths"],
)
def test_bytes_that_are_not_http_get_a_problem_and_the_connection_is_closed(
    server_port: int, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        sock.sendall(request_bytes)
        data = b""
        while chunk := sock.recv(65536):  # the server closes the connection
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 400 Bad Request", data
    assert fields["content-type"] == "application/problem+json" and fields["connection"] == "close"
    assert int(fields["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["type"] == "urn:interlink:problem:malformed-request" and problem["status"] == 400
    assert "not valid HTTP/1.1" in problem["detail"]
    assert problem["correlationId"] == fields["x-correlation-id"] and len(problem["correlationId"]) == 32


def _refusal(port: int, *parts: bytes) -> tuple[str, dict[str, Any]]:
    """Send ``parts`` one by one (stopping once the server closes) and read to the end: the
    status line and the problem."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(ConnectionError):
            for part in parts:
                sock.sendall(part)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    return head.split(b"\r\n", 1)[0].decode(), json.loads(body)


def test_a_request_head_larger_than_the_limit_is_refused(server_port: int) -> None:
    """The request line and headers together are bounded (MAX_HEADER_BYTES), whether they come in
    one write or a header at a time; a head within the bound is served, and a large body is not
    a large head."""
    start = b"GET /echo HTTP/1.1\r\nHost: t\r\n"
    status, problem = _refusal(server_port, start + b"X-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n")
    assert status == "HTTP/1.1 431 Request Header Fields Too Large", status
    assert problem["type"] == "urn:interlink:problem:header-fields-too-large"
    assert str(MAX_HEADER_BYTES) in problem["detail"]
    many = [b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(2 * MAX_HEADER_BYTES // 100)]
    status, _ = _refusal(server_port, start, *many, b"\r\n")
    assert status == "HTTP/1.1 431 Request Header Fields Too Large", status
    status, problem = _refusal(server_port, b"GET /" + b"a" * (2 * MAX_HEADER_BYTES) + b" HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 414 Request-URI Too Long" and problem["status"] == 414, status

    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        near = b"X-Near: " + b"n" * (MAX_HEADER_BYTES - 200) + b"\r\n"
        sock.sendall(start + near + b"\r\n")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"echo:", head
        payload = b"p" * (4 * MAX_HEADER_BYTES)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for offset in range(0, len(payload), 8192):
            sock.sendall(payload[offset : offset + 8192])
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"echo:" + payload


def _slow_large_head() -> list[bytes]:
    """A head never completed, so refused while arriving: past the bound after the read it began
    in (a read is at most 256 KiB)."""
    lines = [b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range((MAX_HEADER_BYTES + 2 * 256 * 1024) // 100)]
    return [b"GET /echo HTTP/1.1\r\nHost: t\r\n", *lines]


@pytest.mark.parametrize(
    "parts",
    [
        _slow_large_head(),
        [b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n"],
        [b"GET /echo HTTP/1.1\r\nBad Header: x\r\n\r\n"],
    ],
    ids=["large-head-arriving", "large-head-complete", "not-http"],
)
def test_a_refusal_behind_an_answer_in_progress_closes_the_connection_without_an_answer(
    server_port: int, parts: list[bytes]
) -> None:
    """A refusal cannot be written into the middle of an earlier answer: the connection is only
    closed, and what reached the client is that answer's start, nothing else."""
    release_stream.clear()
    try:
        with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
            seen = _start_stream(sock)
            with contextlib.suppress(ConnectionError):
                for part in parts:
                    sock.sendall(part)
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    seen += chunk
    finally:
        release_stream.set()
    assert seen.startswith(b"HTTP/1.1 200 OK") and b"first;" in seen
    assert b"second" not in seen and b"HTTP/1.1 4" not in seen


def _start_stream(sock: socket.socket) -> bytes:
    """Ask for ``/stream`` and read until its first part has come (the rest waits for
    ``release_stream``): what was read."""
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    seen = b""
    while b"first;" not in seen:
        chunk = sock.recv(65536)
        assert chunk
        seen += chunk
    return seen


def test_a_streamed_body_is_sent_as_it_is_produced(server_port: int) -> None:
    release_stream.clear()
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        seen = _start_stream(sock)
        assert b"second" not in seen
        release_stream.set()
        while not seen.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            seen += chunk
        assert b"second" in seen and b"transfer-encoding: chunked" in seen.lower()


def test_connection_close_sends_the_answer_before_closing(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"echo:bye")


def test_the_options_name_the_interlink_protocol() -> None:
    from interlink.http.server import InterlinkHttpProtocol

    options = server_options()
    assert options["http"] is InterlinkHttpProtocol
    assert options["access_log"] is False and options["proxy_headers"] is False
    assert options["server_header"] is False


# -- idle keep-alive connections: closed through one shared timer, none per request -------------


def request(sock: socket.socket, path: str = "/echo") -> bytes:
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 OK")
    return body


def seconds_until_eof(sock: socket.socket, wait: float) -> float:
    """Seconds until the server closes ``sock`` (fails if it does not within ``wait``)."""
    start = time.monotonic()
    sock.settimeout(wait)
    try:
        assert sock.recv(65536) == b"", "data on an idle connection"
    except TimeoutError:
        pytest.fail(f"the idle connection was still open after {wait} s")
    return time.monotonic() - start


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(short_keep_alive_port: int) -> None:
    with socket.create_connection(("127.0.0.1", short_keep_alive_port), timeout=10) as sock:
        request(sock)
        idle = seconds_until_eof(sock, KEEP_ALIVE + 2)
    assert KEEP_ALIVE - 0.2 <= idle <= KEEP_ALIVE + 0.5


def test_a_connection_that_sends_nothing_is_closed_as_an_idle_one(short_keep_alive_port: int) -> None:
    with socket.create_connection(("127.0.0.1", short_keep_alive_port), timeout=10) as sock:
        idle = seconds_until_eof(sock, KEEP_ALIVE + 2)
    assert KEEP_ALIVE - 0.2 <= idle <= KEEP_ALIVE + 0.5


def test_a_head_sent_slower_than_its_timeout_is_cut_off(
    short_keep_alive_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte now and then (more often than the idle timeout) does not hold a connection: the head
    must be complete within HEAD_TIMEOUT_SECONDS of its first byte."""
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT_SECONDS", 2.0)
    with socket.create_connection(("127.0.0.1", short_keep_alive_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /echo HTTP/1.1\r\n")
        closed = None
        for n in range(40):  # a header line every 0.25 s, for up to 10 s
            time.sleep(KEEP_ALIVE / 4)
            try:
                sock.sendall(b"X-Slow-%d: x\r\n" % n)
            except ConnectionError:
                closed = time.monotonic() - started
                break
            sock.settimeout(0.001)
            try:
                if sock.recv(65536) == b"":
                    closed = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            finally:
                sock.settimeout(10)
    assert closed is not None and 2.0 - 0.2 <= closed <= 2.0 + KEEP_ALIVE, closed


def test_a_connection_used_more_often_than_the_timeout_stays_open(short_keep_alive_port: int) -> None:
    with socket.create_connection(("127.0.0.1", short_keep_alive_port), timeout=10) as sock:
        for n in range(4):  # 2.4 timeouts in all, never idle for 1
            if n:
                time.sleep(0.6 * KEEP_ALIVE)
            assert request(sock) == b"echo:"
        # Still counted from its last answer, not from its first.
        assert seconds_until_eof(sock, KEEP_ALIVE + 2) >= KEEP_ALIVE - 0.2


def test_a_request_in_progress_longer_than_the_timeout_is_not_cut_off(short_keep_alive_port: int) -> None:
    release_stream.clear()
    with socket.create_connection(("127.0.0.1", short_keep_alive_port), timeout=10) as sock:
        request(sock)  # a first answer makes the connection idle, the next request busy again
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(1.5 * KEEP_ALIVE)
        release_stream.set()
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"second" in body


def test_graceful_shutdown_closes_idle_connections_at_once() -> None:
    server, thread, port = start_server(timeout_keep_alive=60)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            request(sock)
            server.should_exit = True
            assert seconds_until_eof(sock, 5) < 2
        thread.join(10)
        assert not thread.is_alive()
    finally:
        server.should_exit = True
        thread.join(10)


class CountingLoop:
    """The running loop, counting the timers armed through it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.timers = 0

    def call_later(self, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        self.timers += 1
        return self._loop.call_later(*args, **kwargs)

    def call_at(self, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        self.timers += 1
        return self._loop.call_at(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


class Connections:
    """Protocols of one server state on recording transports, driven by hand."""

    def __init__(self, timeout: float) -> None:
        self.loop = CountingLoop(asyncio.get_running_loop())
        self.config = uvicorn.Config(app, timeout_keep_alive=timeout)  # type: ignore[arg-type]
        self.state = ServerState()

    def open(self) -> tuple[InterlinkHttpProtocol, RecordingTransport]:
        protocol = InterlinkHttpProtocol(self.config, self.state, {}, _loop=self.loop)  # type: ignore[arg-type]
        transport = RecordingTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    async def answered(self, protocol: InterlinkHttpProtocol) -> None:
        """Send one request on ``protocol`` and wait until its answer is complete."""
        before = self.state.total_requests
        protocol.data_received(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 5
        while self.state.total_requests == before:
            assert time.monotonic() < deadline, "no answer"
            await asyncio.sleep(0)


async def wait_until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_no_lost_connection_keeps_a_deadline_and_the_timer_sleeps_when_nothing_is_idle() -> None:
    connections = Connections(timeout=0.2)
    (clean, clean_transport), (reset, reset_transport), (busy, busy_transport) = (
        connections.open() for _ in range(3)
    )
    deadlines = clean.idle_deadlines
    assert reset.idle_deadlines is deadlines and busy.idle_deadlines is deadlines
    # Idle from the start: a connection that never sends a request is closed like an idle one.
    assert set(deadlines.pending) == {clean, reset, busy} and deadlines.armed
    for protocol in (clean, reset, busy):
        await connections.answered(protocol)
    assert set(deadlines.pending) == {clean, reset, busy} and deadlines.armed
    assert clean.timeout_keep_alive_task is None

    clean.connection_lost(None)
    reset.connection_lost(ConnectionResetError())  # uvicorn unsets its own timer only on a clean loss
    busy.data_received(b"GET /echo HTTP/1.1\r\n")  # a head begins: its own deadline, not idle's
    assert set(deadlines.pending) == {busy}
    assert deadlines.pending[busy] >= connections.loop.time() + HEAD_TIMEOUT_SECONDS - 1
    busy.connection_lost(None)
    assert deadlines.pending == {}

    # The timer armed for the first idle connection fires once, finds nothing and is not re-armed.
    await wait_until(lambda: not deadlines.armed, within=0.2 + 1)
    await asyncio.sleep(0.5)
    assert not deadlines.armed and connections.loop.timers == 1
    # The timer never called into a lost connection: uvicorn leaves a reset transport open.
    assert not reset_transport.closed
    assert clean_transport.closed and busy_transport.closed  # closed by uvicorn on the clean loss


async def test_requests_on_a_busy_connection_arm_no_timer_and_an_idle_one_is_closed() -> None:
    connections = Connections(timeout=0.3)
    protocol, transport = connections.open()
    for _ in range(50):
        await connections.answered(protocol)
    assert connections.loop.timers == 1, "a timer per request"
    assert protocol.timeout_keep_alive_task is None
    assert set(protocol.idle_deadlines.pending) == {protocol} and not transport.closed

    idle_from = time.monotonic()
    await wait_until(lambda: transport.closed, within=0.3 + 1)
    assert time.monotonic() - idle_from >= 0.3 - 0.05
    assert protocol.idle_deadlines.pending == {} and not protocol.idle_deadlines.armed
    protocol.connection_lost(None)


async def test_a_pipelined_request_keeps_the_connection_busy() -> None:
    connections = Connections(timeout=0.2)
    protocol, transport = connections.open()
    release_stream.clear()
    protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.sleep(0.05)
    assert protocol.pipeline and protocol.idle_deadlines.pending == {}
    release_stream.set()
    # The first answer starts the pipelined request instead of marking the connection idle.
    await wait_until(lambda: connections.state.total_requests == 2, within=5)
    assert set(protocol.idle_deadlines.pending) == {protocol}
    assert b"echo:" in b"".join(transport.writes)
    protocol.connection_lost(None)
    assert protocol.idle_deadlines.pending == {}


async def test_each_idle_connection_is_closed_when_its_own_timeout_has_passed() -> None:
    connections = Connections(timeout=0.5)
    first, first_transport = connections.open()
    second, second_transport = connections.open()
    await connections.answered(first)
    first_idle = time.monotonic()
    await asyncio.sleep(0.1)
    await connections.answered(second)
    second_idle = time.monotonic()
    closed_at: dict[str, float] = {}
    deadline = time.monotonic() + 5
    while len(closed_at) < 2:
        assert time.monotonic() < deadline, "an idle connection was not closed"
        for name, transport in (("first", first_transport), ("second", second_transport)):
            if transport.closed and name not in closed_at:
                closed_at[name] = time.monotonic()
        await asyncio.sleep(0.005)
    for name, idle_from in (("first", first_idle), ("second", second_idle)):
        assert 0.5 - 0.01 <= closed_at[name] - idle_from <= 0.5 + 0.3, name
    assert closed_at["second"] - closed_at["first"] >= 0.05  # each at its own time, not swept together
    for protocol in (first, second):
        protocol.connection_lost(None)

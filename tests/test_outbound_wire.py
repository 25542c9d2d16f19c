"""The HTTP/1.1 wire layer (:mod:`interlink.outbound.wire`) under :class:`HttpTransport`, against real
servers on 127.0.0.1.

Most tests use a scripted TCP server that reads each request's raw bytes and writes exact answer
bytes, so framing (chunked, close-delimited, interim answers, closes mid-answer) is under the test's
control; one uses an aiohttp server for compression as a real server does it. Covered: body framing
and decoding (with the body cap), keep-alive and the pool (reuse, limits, waiting with a timeout,
stale pooled connections and the resend rule), HEAD, 1xx answers, header and request-target
safety, credentials in the URL, no cookies, error classes and the timing trace.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import ipaddress
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from interlink.outbound import wire
from interlink.outbound.transport import (
    AttemptTrace,
    HttpTransport,
    TransportError,
    TransportResponse,
)

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]
TIMEOUT = 3.0  # s: generous per-request bound, so a hang fails a test instead of stalling it


# -- the scripted server ---------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server received it."""

    connection: int
    """1-based number of the TCP connection it came on (in accept order)."""
    number: int
    """1-based number of the request on its connection."""
    raw: bytes
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        """The values of header ``name`` (case-insensitive), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Reply:
    """What the server does with one request: write ``data`` (parts written apart, ``pause`` s
    between them, after ``delay`` s), then close the connection (``close``), wait for the client to
    close it (``hold``), or read the next request."""

    data: bytes | Sequence[bytes] = b""
    close: bool = False
    hold: bool = False
    delay: float = 0.0
    pause: float = 0.0


Script = Callable[[Seen], Reply | Awaitable[Reply]]


def answer(
    status: int = 200,
    body: bytes = b"ok",
    headers: Sequence[tuple[str, str]] = (),
    *,
    reason: str = "OK",
    length: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    """The bytes of an answer; ``length=False`` sends no Content-Length (a close-delimited body,
    unless ``headers`` say chunked)."""
    lines = [f"{version} {status} {reason}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


def chunked(*chunks: bytes) -> bytes:
    """``chunks`` in chunked transfer coding, with the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


class ScriptedServer:
    """A TCP server on 127.0.0.1 answering each request as ``script`` says; it records every
    request and counts connections (accepted, open now, most open at once)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.connections = 0
        self.open_now = 0
        self.max_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # a handler waiting for a request sees the end of its connection
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()  # e.g. a script still waiting on a gate
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        connection = self.connections
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            number = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in header_lines)]
                lengths = [v for k, v in headers if k.lower() == "content-length"]
                body = await reader.readexactly(int(lengths[0])) if lengths else b""
                number += 1
                seen = Seen(connection, number, head + body, method, target, headers, body)
                self.seen.append(seen)
                reply = self.script(seen)
                if inspect.isawaitable(reply):
                    reply = await reply
                assert isinstance(reply, Reply)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                parts = [reply.data] if isinstance(reply.data, bytes) else list(reply.data)
                for index, part in enumerate(parts):
                    if index and reply.pause:
                        await asyncio.sleep(reply.pause)
                    writer.write(part)
                    await writer.drain()
                if reply.close:
                    return
                if reply.hold:
                    await reader.read()  # until the client closes
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or the test is over
        finally:
            self.open_now -= 1
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)


ServerFactory = Callable[[Script], Awaitable[ScriptedServer]]
TransportFactory = Callable[..., HttpTransport]


@pytest.fixture
async def scripted() -> AsyncIterator[ServerFactory]:
    """Start scripted servers (``await scripted(script)``); all are closed at the end."""
    servers: list[ScriptedServer] = []

    async def make(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def transport() -> AsyncIterator[TransportFactory]:
    """Make transports allowed to reach 127.0.0.1 (keyword arguments as for HttpTransport)."""
    made: list[HttpTransport] = []

    def make(**kwargs: Any) -> HttpTransport:
        client = HttpTransport(allowed_networks=LOCAL, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def fixed(
    data: bytes | Sequence[bytes],
    *,
    close: bool = False,
    hold: bool = False,
    delay: float = 0.0,
    pause: float = 0.0,
) -> Script:
    """A script giving every request the same reply."""
    return lambda seen: Reply(data, close=close, hold=hold, delay=delay, pause=pause)


def by_path(replies: dict[str, Reply]) -> Script:
    """A script answering by request target (path and query)."""
    return lambda seen: replies[seen.target]


async def get(client: HttpTransport, url: str, *, trace: AttemptTrace | None = None) -> TransportResponse:
    return await client.send("GET", url, {}, None, TIMEOUT, trace=trace)


# -- 1. body framing and decoding ------------------------------------------------------------------


async def test_chunked_body_is_joined(scripted: ServerFactory, transport: TransportFactory) -> None:
    data = answer(body=b"", headers=[("Transfer-Encoding", "chunked")], length=False)
    parts = [data + b"5\r\nhello\r\n", b"1\r\n \r\n", b"5;ext=1\r\nworld\r\n", b"0\r\n\r\n"]
    server = await scripted(fixed(parts, pause=0.01))
    response = await get(transport(), server.url)
    assert (response.status, response.body, response.truncated) == (200, b"hello world", False)


TEXT = b"interlink outbound wire " * 400  # 9.6 KB, under the default 20 KB cap


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),  # the zlib wrapper, as RFC 9110 says
        ("deflate", (lambda c: c.compress(TEXT) + c.flush())(zlib.compressobj(wbits=-15))),  # raw
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
async def test_encoded_body_is_decoded(
    scripted: ServerFactory, transport: TransportFactory, encoding: str, encoded: bytes
) -> None:
    server = await scripted(fixed(answer(body=encoded, headers=[("Content-Encoding", encoding)])))
    response = await get(transport(), server.url)
    assert len(encoded) < len(TEXT)
    assert (response.body, response.truncated) == (TEXT, False)


async def test_raw_deflate_split_after_its_first_byte_is_decoded(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    """Chunk boundaries are the server's choice: a raw deflate body whose first chunk is one byte
    must decode like one sent whole."""
    compressor = zlib.compressobj(wbits=-15)
    raw = compressor.compress(TEXT) + compressor.flush()
    data = answer(
        body=chunked(raw[:1], raw[1:]),
        headers=[("Content-Encoding", "deflate"), ("Transfer-Encoding", "chunked")],
        length=False,
    )
    server = await scripted(fixed(data))
    response = await get(transport(), server.url)
    assert (response.body, response.truncated) == (TEXT, False)


async def test_encoded_body_from_aiohttp_is_decoded(transport: TransportFactory) -> None:
    """aiohttp compresses on the fly and streams the result chunked."""
    payload = b'{"items": [' + b",".join(b'{"id": %d, "name": "item"}' % i for i in range(2000)) + b"]}"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=payload, content_type="application/json")
        response.enable_compression(web.ContentCoding(request.query["coding"]))
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        client = transport(max_body_bytes=len(payload))
        for coding in ("gzip", "deflate"):
            response = await get(client, f"http://127.0.0.1:{port}/?coding={coding}")
            assert response.headers.get("Content-Encoding") == coding
            assert (response.body, response.truncated) == (payload, False)
    finally:
        await runner.cleanup()


async def test_gzip_bomb_stops_at_the_cap(scripted: ServerFactory, transport: TransportFactory) -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    server = await scripted(fixed(answer(body=bomb, headers=[("Content-Encoding", "gzip")])))
    response = await get(transport(max_body_bytes=20_480), server.url)
    assert len(bomb) < 20_480
    assert response.truncated is True
    assert response.body == b"\0" * 20_480


async def test_body_exactly_at_the_cap_is_complete_and_reusable(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    plain, packed = b"p" * 100, gzip.compress(b"g" * 100)
    server = await scripted(
        by_path(
            {
                "/plain": Reply(answer(body=plain)),
                "/gzip": Reply(answer(body=packed, headers=[("Content-Encoding", "gzip")])),
            }
        )
    )
    client = transport(max_body_bytes=100)
    first = await get(client, server.url + "/plain")
    second = await get(client, server.url + "/gzip")
    assert (first.body, first.truncated) == (plain, False)
    assert (second.body, second.truncated) == (b"g" * 100, False)
    assert server.connections == 1


async def test_undecodable_body_is_an_invalid_answer(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(fixed(answer(body=b"not gzip at all", headers=[("Content-Encoding", "gzip")])))
    with pytest.raises(TransportError) as caught:
        await get(transport(), server.url)
    assert caught.value.error_class == "other"


# -- 2. bodies ended by a close ----------------------------------------------------------------------


async def test_body_delimited_by_close_is_complete(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    data = answer(body=b"", length=False)
    server = await scripted(fixed([data + b"all of ", b"the body"], pause=0.02, close=True))
    response = await get(transport(), server.url)
    assert (response.status, response.body, response.truncated) == (200, b"all of the body", False)


async def test_close_inside_a_content_length_body_is_a_connect_error(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    data = answer(body=b"x" * 100)[:-60]  # headers and 40 of the 100 bytes
    server = await scripted(fixed(data, close=True))
    with pytest.raises(TransportError) as caught:
        await get(transport(), server.url)
    assert caught.value.error_class == "connect"
    assert len(server.seen) == 1


# -- 3. keep-alive ---------------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(lambda seen: Reply(answer(body=f"answer {seen.number}".encode())))
    client = transport()
    first = await get(client, server.url + "/one")
    second = await get(client, server.url + "/two")
    assert (first.body, second.body) == (b"answer 1", b"answer 2")
    assert server.connections == 1
    assert [s.connection for s in server.seen] == [1, 1]


@pytest.mark.parametrize(
    "first",
    [
        answer(headers=[("Connection", "close")]),
        answer(version="HTTP/1.0"),
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_answer_that_ends_keep_alive_gets_a_new_connection(
    scripted: ServerFactory, transport: TransportFactory, first: bytes
) -> None:
    # The server would keep the connection open: only the answer's words tell the client not to reuse it.
    server = await scripted(lambda seen: Reply(first if seen.connection == 1 else answer(body=b"fresh")))
    client = transport()
    assert (await get(client, server.url)).status == 200
    second = await get(client, server.url)
    assert second.body == b"fresh"
    assert server.connections == 2
    assert [(s.connection, s.number) for s in server.seen] == [(1, 1), (2, 1)]


async def test_truncated_body_closes_the_connection_and_the_next_request_works(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(
        by_path({"/big": Reply(answer(body=b"b" * 5000)), "/small": Reply(answer(body=b"small"))})
    )
    client = transport(max_body_bytes=100)
    big = await get(client, server.url + "/big")
    assert (big.body, big.truncated) == (b"b" * 100, True)
    small = await get(client, server.url + "/small")
    assert (small.status, small.body, small.truncated) == (200, b"small", False)
    assert server.connections == 2
    assert server.seen[-1].connection == 2


async def test_pooled_connection_closed_while_idle_is_not_used(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    """The server closes right after a keep-alive answer; once the close has arrived, the pool drops
    the connection (a traced transport, which never resends, still succeeds)."""
    server = await scripted(fixed(answer(), close=True))
    client = transport(traced=True)
    await get(client, server.url, trace=AttemptTrace())
    await asyncio.sleep(0.05)
    trace = AttemptTrace()
    response = await get(client, server.url, trace=trace)
    assert response.status == 200
    assert trace.reused is False
    assert server.connections == 2


# -- 4. a pooled connection the server closed: the resend rule --------------------------------------


def close_on_second_request(seen: Seen) -> Reply:
    """Answer a connection's first request; close the connection, unanswered, on its second (the
    server's idle close crossing the request)."""
    if seen.number >= 2:
        return Reply(close=True)
    return Reply(answer(body=f"{seen.method} on connection {seen.connection}".encode()))


async def test_stale_pooled_connection_get_is_resent_on_a_new_connection(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(close_on_second_request)
    client = transport()
    await get(client, server.url)
    response = await get(client, server.url)
    assert (response.status, response.body) == (200, b"GET on connection 2")
    assert [(s.connection, s.number) for s in server.seen] == [(1, 1), (1, 2), (2, 1)]


async def test_stale_pooled_connections_resend_uses_a_new_connection_not_another_pooled_one(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    """Two pooled connections, both closed by the server as the request crosses: the one resend goes
    on a new connection, as the contract says, not on the other stale pooled one."""
    server = await scripted(close_on_second_request)
    client = transport()
    await asyncio.gather(get(client, server.url), get(client, server.url))
    assert server.connections == 2
    response = await get(client, server.url)
    assert response.status == 200
    assert server.seen[-1].number == 1  # the answered request was the first on a new connection


async def test_stale_pooled_connection_on_a_traced_transport_is_a_connect_error(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(close_on_second_request)
    client = transport(traced=True)
    await get(client, server.url, trace=AttemptTrace())
    trace = AttemptTrace()
    with pytest.raises(TransportError) as caught:
        await get(client, server.url, trace=trace)
    assert caught.value.error_class == "connect"
    assert (trace.connected, trace.reused) == (True, True)
    assert len(server.seen) == 2  # not resent
    assert (await get(client, server.url, trace=AttemptTrace())).status == 200


async def test_stale_pooled_connection_post_is_not_resent(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(close_on_second_request)
    client = transport()
    await get(client, server.url)
    with pytest.raises(TransportError) as caught:
        await client.send("POST", server.url + "/orders", {}, b'{"n": 1}', TIMEOUT)
    assert caught.value.error_class == "connect"
    await asyncio.sleep(0.05)  # a resend, had there been one, would have reached the server by now
    posts = [s for s in server.seen if s.method == "POST"]
    assert len(posts) == 1
    assert server.connections == 1


# -- 5. interim answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["103", "100"],
)
async def test_interim_answer_is_skipped(
    scripted: ServerFactory, transport: TransportFactory, interim: bytes
) -> None:
    final = answer(201, b"the final body", [("X-Final", "yes")], reason="Created")
    server = await scripted(fixed([interim, final], pause=0.02))
    client = transport()
    response = await get(client, server.url)
    assert (response.status, response.body) == (201, b"the final body")
    assert response.headers.get("X-Final") == "yes"
    assert "Link" not in response.headers
    assert (await get(client, server.url)).status == 201  # the connection's state is still sound
    assert server.connections == 1


# -- 6. HEAD --------------------------------------------------------------------------------------------


async def test_head_with_content_length_returns_without_a_body(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: text/plain\r\n\r\n"
    server = await scripted(fixed(head, hold=True))  # the server keeps the connection open
    client = transport()
    for _ in range(2):
        response = await client.send("HEAD", server.url, {}, None, 1.0)
        assert (response.status, response.body) == (200, b"")
        assert response.headers["Content-Length"] == "5000"
    assert [s.method for s in server.seen] == ["HEAD", "HEAD"]


# -- 7. header safety --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nX-Injected: 1"},
        {"X-Note": "a\nX-Injected: 1"},
        {"X-Note": "a\rb"},
        {"X-Note": "a\x00b"},
        {"X-Note\r\nX-Injected": "1"},
        {"X Note": "1"},
    ],
    ids=["crlf", "lf", "cr", "nul", "crlf-in-name", "space-in-name"],
)
async def test_unsafe_header_is_refused_before_anything_is_sent(
    scripted: ServerFactory, transport: TransportFactory, headers: dict[str, str]
) -> None:
    server = await scripted(fixed(answer()))
    client = transport()
    with pytest.raises(TransportError) as caught:
        await client.send("GET", server.url + "/refused", headers, None, TIMEOUT)
    assert caught.value.error_class == "other"
    await get(client, server.url + "/after")
    assert [s.target for s in server.seen] == ["/after"]
    assert server.connections == 1
    assert b"X-Injected" not in server.seen[0].raw


async def test_framing_headers_from_the_caller_are_dropped(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(fixed(answer()))
    client = transport()
    headers = {
        "Content-Length": "5",
        "transfer-encoding": "chunked",
        "Connection": "close",
        "Keep-Alive": "timeout=1",
        "Upgrade": "h2c",
        "Content-Type": "text/plain",
    }
    await client.send("POST", server.url + "/a", headers, b"hello world", TIMEOUT)
    await client.send("POST", server.url + "/b", {"Content-Length": "99"}, None, TIMEOUT)
    first, second = server.seen
    assert first.values("Content-Length") == ["11"]
    assert first.body == b"hello world"
    assert first.raw.endswith(b"\r\n\r\nhello world")
    for name in ("Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade"):
        assert first.values(name) == [], name
    assert first.values("Content-Type") == ["text/plain"]
    assert second.values("Content-Length") == ["0"]
    assert (second.connection, second.number) == (1, 2)  # the framing held: no second request smuggled


async def test_default_headers_unless_the_caller_names_them(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(fixed(answer()))
    client = transport(user_agent="Interlink/test")
    await get(client, server.url + "/defaults")
    given = {"user-agent": "Custom/1", "ACCEPT": "text/plain", "accept-encoding": "identity"}
    await client.send("GET", server.url + "/given", given, None, TIMEOUT)
    defaults, custom = server.seen
    assert defaults.values("User-Agent") == ["Interlink/test"]
    assert defaults.values("Accept") == ["*/*"]
    assert defaults.values("Accept-Encoding") == [wire.ACCEPT_ENCODING]
    assert defaults.values("Host") == [f"127.0.0.1:{server.port}"]
    assert defaults.values("Content-Length") == []  # a GET without a body has no framing header
    assert custom.values("User-Agent") == ["Custom/1"]
    assert custom.values("Accept") == ["text/plain"]
    assert custom.values("Accept-Encoding") == ["identity"]


def test_encode_request_bytes() -> None:
    request = wire.encode_request(
        "PUT",
        "/x?y=1",
        "example.test",
        {"host": "other.test", "X-A": "1", "content-length": "3"},
        b"abcdef",
        {"User-Agent": "UA/1", "Accept": "*/*"},
    )
    assert request == (
        b"PUT /x?y=1 HTTP/1.1\r\n"
        b"host: other.test\r\nX-A: 1\r\nUser-Agent: UA/1\r\nAccept: */*\r\n"
        b"Content-Length: 6\r\n\r\nabcdef"
    )
    with pytest.raises(ValueError):
        wire.encode_request("GET /x HTTP/1.1\r\n", "/", "h", {}, None, {})


# -- 8. the request target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/a b/é", "", "/a%20b/%C3%A9"),
        ("/files/a%2Fb", "", "/files/a%2Fb"),
        ("/100%", "", "/100%25"),
        ("/100% off/a%2Fb", "", "/100%25%20off/a%2Fb"),
        ("/s", "q=a b&x=é&y=%2F&z=100%", "/s?q=a%20b&x=%C3%A9&y=%2F&z=100%25"),
        ("/ok/path:@!$'()*+,;=-._~", "a=1&b=2", "/ok/path:@!$'()*+,;=-._~?a=1&b=2"),
        ("", "", "/"),
        ("/a\r\nb", "c=\r\n", "/a%0D%0Ab?c=%0D%0A"),
    ],
)
def test_request_target_quoting(path: str, query: str, expected: str) -> None:
    assert wire.request_target(path, query) == expected


async def test_request_target_on_the_wire(scripted: ServerFactory, transport: TransportFactory) -> None:
    server = await scripted(fixed(answer()))
    await get(transport(), server.url + "/a b/é/x%2Fy/100%?q=a b&r=1#section")
    assert server.seen[0].target == "/a%20b/%C3%A9/x%2Fy/100%25?q=a%20b&r=1"
    assert b"section" not in server.seen[0].raw
    assert server.seen[0].raw.startswith(b"GET /a%20b/%C3%A9/x%2Fy/100%25?q=a%20b&r=1 HTTP/1.1\r\n")


# -- 9. pool limits --------------------------------------------------------------------------------


async def test_limit_per_host_bounds_open_connections(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    in_flight = most = 0

    async def slow(seen: Seen) -> Reply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.1)  # long enough for both connections to be busy at once
        in_flight -= 1
        return Reply(answer(body=seen.target.encode()))

    server = await scripted(slow)
    client = transport(limit_per_host=2)
    responses = await asyncio.gather(*(get(client, f"{server.url}/{i}") for i in range(10)))
    assert [r.body for r in responses] == [f"/{i}".encode() for i in range(10)]
    assert server.max_open == 2
    assert most == 2
    assert len(server.seen) == 10


async def test_waiting_for_a_slot_respects_the_timeout_and_leaks_no_slot(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    gate = asyncio.Event()

    async def script(seen: Seen) -> Reply:
        if seen.target == "/slow":
            await gate.wait()
        return Reply(answer(body=seen.target.encode()))

    server = await scripted(script)
    client = transport(limit_per_host=1)
    slow = asyncio.create_task(get(client, server.url + "/slow"))
    while not server.seen:
        await asyncio.sleep(0.01)
    with pytest.raises(TransportError) as caught:
        await client.send("GET", server.url + "/waiting", {}, None, 0.2)
    assert caught.value.error_class == "timeout"
    assert [s.target for s in server.seen] == ["/slow"]  # the waiting request was never sent
    gate.set()
    assert (await slow).body == b"/slow"
    batch = await asyncio.gather(*(get(client, f"{server.url}/after{i}") for i in range(3)))
    assert [r.body for r in batch] == [f"/after{i}".encode() for i in range(3)]
    assert server.connections == 1
    assert server.max_open == 1


# -- 10. invalid answers and timeouts ------------------------------------------------------------------


async def test_answer_that_is_not_http_is_other(scripted: ServerFactory, transport: TransportFactory) -> None:
    server = await scripted(
        lambda seen: Reply(b"garbage\r\n\r\n", hold=True) if seen.connection == 1 else Reply(answer())
    )
    client = transport()
    with pytest.raises(TransportError) as caught:
        await get(client, server.url)
    assert caught.value.error_class == "other"
    assert (await get(client, server.url)).status == 200
    assert server.connections == 2


async def test_timeout_mid_answer_and_the_next_request_uses_a_fresh_connection(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    partial = answer(body=b"x" * 100)[:-90]  # headers and 10 of the 100 bytes, then nothing
    server = await scripted(
        lambda seen: Reply(partial, hold=True) if seen.connection == 1 else Reply(answer(body=b"whole"))
    )
    client = transport()
    with pytest.raises(TransportError) as caught:
        await client.send("GET", server.url, {}, None, 0.3)
    assert caught.value.error_class == "timeout"
    response = await get(client, server.url)
    assert (response.status, response.body) == (200, b"whole")
    assert server.connections == 2


# -- 11. credentials in the URL ---------------------------------------------------------------------


async def test_credentials_in_the_url_are_refused_and_nothing_is_sent(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    """As the SSRF guard and the client's configuration: a URL carrying ``user:password@`` is
    refused ("refused") before any connection, whether or not the caller set Authorization."""
    server = await scripted(fixed(answer()))
    client = transport()
    url = f"http://user:pa%20ss@127.0.0.1:{server.port}/private"
    for headers in ({}, {"authorization": "Bearer own-token"}):
        with pytest.raises(TransportError) as caught:
            await client.send("GET", url, headers, None, TIMEOUT)
        assert caught.value.error_class == "refused"
        assert "credentials" in caught.value.message
    assert server.connections == 0 and server.seen == []


async def test_credentials_url_verdict_does_not_depend_on_the_guard_cache(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    """A URL with credentials gets the same verdict (sent, or refused) whether or not its origin was
    approved by an earlier request without credentials."""
    server = await scripted(fixed(answer()))
    client = transport()
    url = f"http://user:secret@127.0.0.1:{server.port}/private"

    async def outcome() -> str:
        try:
            return str((await get(client, url)).status)
        except TransportError as exc:
            return exc.error_class

    before = await outcome()
    assert (await get(client, server.url + "/plain")).status == 200
    after = await outcome()
    assert before == after == "refused"
    assert [seen.target for seen in server.seen] == ["/plain"]


# -- 12. no cookies ---------------------------------------------------------------------------------------


async def test_no_cookies_are_kept(scripted: ServerFactory, transport: TransportFactory) -> None:
    server = await scripted(
        fixed(answer(headers=[("Set-Cookie", "sid=abc123; Path=/"), ("Set-Cookie", "tenant=t1")]))
    )
    client = transport()
    first = await get(client, server.url + "/login")
    assert "sid=abc123" in first.headers["Set-Cookie"]
    await get(client, server.url + "/next")
    await get(client, f"http://127.0.0.1:{server.port}/other")
    assert [s.values("Cookie") for s in server.seen] == [[], [], []]


# -- 13. the timing trace -----------------------------------------------------------------------------


async def test_trace_of_a_new_and_a_reused_connection(
    scripted: ServerFactory, transport: TransportFactory
) -> None:
    server = await scripted(fixed(answer(), delay=0.01))
    client = transport(traced=True)
    new = AttemptTrace()
    await get(client, server.url, trace=new)
    assert (new.connected, new.reused, new.secure) == (True, False, False)
    assert 0 < new.started <= new.create_started <= new.tcp_connected <= new.create_ended
    assert new.create_ended <= new.first_byte <= new.ended
    assert new.dns == 0.0  # an IP literal is not resolved
    dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms = new.durations()
    assert (dns_ms, tls_ms) == (0.0, 0.0)
    assert connect_ms >= 0.0 and 0.0 < first_byte_ms <= total_ms

    reused = AttemptTrace()
    await get(client, server.url, trace=reused)
    assert (reused.connected, reused.reused) == (True, True)
    assert (reused.create_started, reused.tcp_connected, reused.create_ended) == (0.0, 0.0, 0.0)
    assert 0 < reused.started < reused.first_byte <= reused.ended
    assert reused.durations()[1] == 0.0
    assert server.connections == 1


# -- requests go out at the end of the step that made them -----------------------------------------


class RecordingTransport:
    """What a connection writes, without a socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def _recorded_connections(count: int) -> list[tuple[wire.Http1Connection, RecordingTransport]]:
    pairs = []
    for _ in range(count):
        connection, recording = wire.Http1Connection(), RecordingTransport()
        connection.connection_made(recording)  # type: ignore[arg-type]
        pairs.append((connection, recording))
    return pairs


async def test_requests_made_in_one_step_are_written_together_after_it() -> None:
    pairs = _recorded_connections(3)
    requests = [f"GET /{n} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for n in range(3)]
    exchanges = [
        asyncio.ensure_future(connection.exchange(request, max_body=1000))
        for (connection, _), request in zip(pairs, requests, strict=True)
    ]
    await asyncio.sleep(0)  # the three exchanges ran their first step: each made its request
    assert [recording.writes for _, recording in pairs] == [[], [], []]
    await asyncio.sleep(0)  # the end-of-step writes ran
    assert [recording.writes for _, recording in pairs] == [[r] for r in requests]
    for n, (connection, _) in enumerate(pairs):
        connection.data_received(f"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}".encode())
    answers = await asyncio.gather(*exchanges)
    assert [(a.status, a.body, a.reusable) for a in answers] == [
        (200, b"0", True),
        (200, b"1", True),
        (200, b"2", True),
    ]


async def test_a_request_whose_connection_closed_before_the_write_is_not_written() -> None:
    [(connection, recording)] = _recorded_connections(1)
    exchange = asyncio.ensure_future(connection.exchange(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", max_body=10))
    await asyncio.sleep(0)
    recording.closing = True  # the server closed the idle connection in the meantime
    connection.connection_lost(None)
    with pytest.raises(wire.ConnectionLost) as lost:
        await exchange
    assert lost.value.received is False  # so the transport may send it again on a new connection
    await asyncio.sleep(0)
    assert recording.writes == []


async def test_a_write_the_transport_refuses_fails_only_its_own_exchange() -> None:
    [(refusing, refusing_transport), (fine, fine_transport)] = _recorded_connections(2)

    def refuse(data: bytes) -> None:
        raise RuntimeError("the transport refuses")

    aborted: list[bool] = []

    def abort() -> None:
        aborted.append(True)
        refusing_transport.closing = True
        refusing.connection_lost(None)

    refusing_transport.write = refuse  # type: ignore[method-assign]
    refusing_transport.abort = abort  # type: ignore[attr-defined]
    failing = asyncio.ensure_future(refusing.exchange(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", max_body=10))
    working = asyncio.ensure_future(fine.exchange(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n", max_body=10))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert aborted == [True]
    assert fine_transport.writes == [b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"]
    with pytest.raises(wire.ConnectionLost):
        await failing
    fine.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert (await working).status == 204

"""Direct routes served by Interlink's own server protocol (``interlink.http.server``) without ASGI.

A probe app (its direct routes and a framework stand-in behind the request-context middleware)
runs under uvicorn with the protocol ``interlink serve`` uses, on 127.0.0.1; raw sockets check the
HTTP contract: answers, hand-offs to the framework, errors, pipelining, closing, shutdown. The real
app then serves key verification and the connection proxy through the same protocol, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from interlink.core.context import current_correlation_id
from interlink.http.direct import (
    DirectRequest,
    DirectResponse,
    DirectRoute,
    DirectRoutes,
    DirectRoutesMiddleware,
    RouteLabel,
    read_request,
)
from interlink.http.middleware import RequestContextMiddleware
from interlink.http.server import InterlinkHttpProtocol
from tests.conftest import LiveServer, auth
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.test_connection_proxy import _providers
from tests.test_http_server import app as plain_app
from tests.test_http_server import start_server

MAX_BODY = 1024
release_slow = threading.Event()


class ProbeRoute(DirectRoute):
    """``POST /direct/<what>``: ``answer`` echoes, ``decline`` leaves it to the framework, ``fail``
    raises, ``slow`` answers once :data:`release_slow` is set."""

    label = RouteLabel("/direct/{what}")

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.finished: list[str] = []

    def matches(self, path: str) -> bool:
        return path.startswith("/direct/")

    async def __call__(self, request: DirectRequest) -> DirectResponse | None:
        what = request.path.removeprefix("/direct/")
        self.calls.append(what)
        if what == "decline":
            return None
        if what == "fail":
            raise RuntimeError("the probe failed")
        if what == "slow":
            while not release_slow.is_set():
                await asyncio.sleep(0.01)
        self.finished.append(what)
        answer = {
            "what": what,
            "body": request.body.decode(),
            "correlationId": current_correlation_id(),
            "client": request.client[0] if request.client else None,
            "agent": request.headers.get(b"user-agent", b"").decode(),
        }
        return DirectResponse.json(json.dumps(answer).encode(), {"X-Probe": "1"})


class ProbeApp:
    """An ASGI app shaped like Interlink's: direct routes inside the request-context middleware, a
    framework stand-in answering ``framework:<body>`` to everything else."""

    def __init__(self) -> None:
        self.route = ProbeRoute()
        self.framework_calls: list[str] = []
        self.asgi_requests: list[str] = []
        """Requests that went through ASGI (not the protocol's direct path)."""
        declined = RequestContextMiddleware(self.framework, max_body_bytes=MAX_BODY, access_log=False)
        self.direct_routes = DirectRoutes(
            [self.route], max_body_bytes=MAX_BODY, access_log=False, declined=declined
        )
        self.edge = RequestContextMiddleware(
            DirectRoutesMiddleware(self.framework, self.direct_routes),
            max_body_bytes=MAX_BODY,
            access_log=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await plain_app(scope, receive, send)  # the test server's lifespan handling
            return
        self.asgi_requests.append(scope["path"])
        await self.edge(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        read = await read_request(scope, receive)
        assert read is not None
        body = read[0]
        self.framework_calls.append(scope["path"])
        payload = b"framework:" + body
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def start(app: ProbeApp) -> tuple[uvicorn.Server, threading.Thread, int]:
    return start_server(app)


@pytest.fixture
def probe() -> Iterator[tuple[ProbeApp, int]]:
    release_slow.clear()
    app = ProbeApp()
    server, thread, port = start(app)
    yield app, port
    release_slow.set()
    server.should_exit = True
    thread.join(10)


class Answers:
    """Reads whole answers (Content-Length framed) off a socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed, with {self.data!r} unread"
        self.data += chunk

    def next(self) -> tuple[int, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {n.strip().lower(): v.strip() for n, _, v in (line.partition(b":") for line in lines[1:])}
        size = int(headers.get(b"content-length", b"0"))
        while len(self.data) < size:
            self._more()
        body, self.data = self.data[:size], self.data[size:]
        return status, headers, body

    def closed(self, within: float = 2) -> bool:
        """Whether the server closed the connection within ``within`` seconds (well under the
        keep-alive timeout of 5 s, which would close an idle connection anyway)."""
        self.sock.settimeout(within)
        try:
            return self.data == b"" and self.sock.recv(1) == b""
        except TimeoutError:
            return False


def post(path: str, body: bytes = b"{}", *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: t", "User-Agent: probe/1", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


def connect(port: int) -> tuple[socket.socket, Answers]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, Answers(sock)


def test_a_direct_route_answers_with_the_request_context(probe: tuple[ProbeApp, int]) -> None:
    app, port = probe
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/answer", b'{"n": 1}', "X-Correlation-Id: corr-42"))
        status, headers, body = answers.next()
    assert status == 200
    assert headers[b"content-type"] == b"application/json" and headers[b"x-probe"] == b"1"
    assert headers[b"x-correlation-id"] == b"corr-42" and b"date" in headers
    assert json.loads(body) == {
        "what": "answer",
        "body": '{"n": 1}',
        "correlationId": "corr-42",
        "client": "127.0.0.1",
        "agent": "probe/1",
    }
    assert app.framework_calls == [] and app.asgi_requests == []


def test_a_declined_request_reaches_the_framework_with_its_body(probe: tuple[ProbeApp, int]) -> None:
    app, port = probe
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/decline", b"hello"))
        status, headers, body = answers.next()
        assert (status, body) == (200, b"framework:hello")
        assert headers[b"x-correlation-id"]  # the request-context middleware ran for it
        sock.sendall(post("/direct/answer", b"again"))  # the connection is still usable
        assert json.loads(answers.next()[2])["body"] == "again"
    assert app.route.calls == ["decline", "answer"] and app.framework_calls == ["/direct/decline"]
    assert app.asgi_requests == []  # the hand-off went straight to the framework


def test_an_escaped_exception_is_a_problem_and_the_connection_lives_on(probe: tuple[ProbeApp, int]) -> None:
    _app, port = probe
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/fail"))
        status, headers, body = answers.next()
        problem = json.loads(body)
        assert status == 500 and headers[b"content-type"] == b"application/problem+json"
        assert problem["correlationId"] == headers[b"x-correlation-id"].decode()
        assert "the probe failed" not in body.decode() and "Traceback" not in body.decode()
        sock.sendall(post("/direct/answer"))
        assert answers.next()[0] == 200


def test_pipelined_requests_are_answered_in_order(probe: tuple[ProbeApp, int]) -> None:
    app, port = probe
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/slow", b"1") + post("/other", b"2") + post("/direct/answer", b"3"))
        time.sleep(0.3)
        assert app.route.finished == [] and app.framework_calls == []  # queued behind the slow one
        release_slow.set()
        first, second, third = answers.next(), answers.next(), answers.next()
    assert json.loads(first[2])["what"] == "slow"
    assert second[2] == b"framework:2"
    assert json.loads(third[2])["body"] == "3"
    assert app.asgi_requests == ["/other", "/direct/answer"]  # queued ones run through uvicorn


def test_a_body_in_pieces_arrives_whole(probe: tuple[ProbeApp, int]) -> None:
    _app, port = probe
    sock, answers = connect(port)
    with sock:
        whole = post("/direct/answer", b'{"part": "one", "and": "two"}')
        for piece in (whole[:20], whole[20:-10], whole[-10:]):
            sock.sendall(piece)
            time.sleep(0.05)
        assert json.loads(answers.next()[2])["body"] == '{"part": "one", "and": "two"}'


def test_requests_outside_the_direct_path_keep_the_http_contract(probe: tuple[ProbeApp, int]) -> None:
    """Chunked bodies, ``Expect: 100-continue`` and percent-encoded paths go through uvicorn's
    request cycle and are still answered by the route (inside the app); a body over the limit gets
    the middleware's 413."""
    app, port = probe
    sock, answers = connect(port)
    with sock:
        chunked = b"POST /direct/answer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(chunked + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert json.loads(answers.next()[2])["body"] == "abcde"

        sock.sendall(post("/direct/answer", b"", "Expect: 100-continue").replace(b"Length: 0", b"Length: 4"))
        assert answers.next()[0] == 100
        sock.sendall(b"wxyz")
        assert json.loads(answers.next()[2])["body"] == "wxyz"

        sock.sendall(post("/direct/an%73wer", b"q"))
        assert json.loads(answers.next()[2])["what"] == "answer"

        too_big = b"x" * (MAX_BODY + 1)
        sock.sendall(post("/direct/answer", too_big))
        status, headers, _ = answers.next()
        assert status == 413 and headers[b"content-type"] == b"application/problem+json"
    assert app.route.calls == ["answer", "answer", "answer"] and app.framework_calls == []
    assert app.asgi_requests == ["/direct/answer"] * 4


@pytest.mark.parametrize(
    ("extra", "version"), [(("Connection: close",), "1.1"), ((), "1.0")], ids=["connection-close", "http-1.0"]
)
def test_an_answer_that_ends_the_connection_says_so_and_closes(
    probe: tuple[ProbeApp, int], extra: tuple[str, ...], version: str
) -> None:
    _app, port = probe
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/answer", b"bye", *extra, version=version))
        status, headers, body = answers.next()
        assert status == 200 and headers[b"connection"] == b"close"
        assert json.loads(body)["body"] == "bye"
        assert answers.closed()


def test_a_client_gone_before_the_answer_leaves_the_server_serving(probe: tuple[ProbeApp, int]) -> None:
    app, port = probe
    sock, _ = connect(port)
    sock.sendall(post("/direct/slow"))
    deadline = time.monotonic() + 5
    while "slow" not in app.route.calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sock.close()
    time.sleep(0.1)
    release_slow.set()
    while "slow" not in app.route.finished:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/answer"))
        assert answers.next()[0] == 200


def test_a_graceful_shutdown_waits_for_a_direct_answer_then_closes() -> None:
    release_slow.clear()
    app = ProbeApp()
    server, thread, port = start(app)
    try:
        sock, answers = connect(port)
        with sock:
            sock.sendall(post("/direct/slow", b"last"))
            deadline = time.monotonic() + 5
            while "slow" not in app.route.calls:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            server.should_exit = True
            time.sleep(0.3)
            assert thread.is_alive()  # waiting for the answer in flight
            release_slow.set()
            status, headers, body = answers.next()
            assert status == 200 and json.loads(body)["body"] == "last"
            assert headers[b"connection"] == b"close" and answers.closed()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        release_slow.set()
        server.should_exit = True
        thread.join(10)


def test_only_an_app_with_direct_routes_gets_them_served_by_the_protocol() -> None:
    async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    # An app uvicorn wraps (here for proxy headers) is served through ASGI alone, where its
    # DirectRoutesMiddleware still answers the direct routes.
    cases = ((plain, False, False), (ProbeApp(), False, True), (ProbeApp(), True, False))
    for app, proxy_headers, expected in cases:
        config = uvicorn.Config(app, proxy_headers=proxy_headers)
        config.load()
        protocol = InterlinkHttpProtocol(config, ServerState(), {}, asyncio.new_event_loop())
        assert (protocol.direct_routes is not None) is expected
        protocol.loop.close()


# -- the real app: key verification and the connection proxy through the protocol ---------------


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, echo_api: EchoApi) -> dict[str, object]:
    return {
        "providers_file": _providers(tmp_path, echo_api, "http://127.0.0.1:9/token"),
        "allowed_target_networks": ["127.0.0.0/8"],
    }


async def test_the_real_app_serves_verify_and_proxy_directly(live_server: LiveServer) -> None:
    headers = auth(live_server.admin_key)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        made = await client.post("/v1/keys", json={"name": "k", "scopes": ["keys:verify"]}, headers=headers)
        assert made.status_code == 201, made.text
        verified = await client.post(
            "/v1/keys/verify",
            json={"key": made.json()["key"]},
            headers={**headers, "X-Correlation-Id": "verify-1"},
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["valid"] is True and verified.headers["x-correlation-id"] == "verify-1"
        refused = await client.post("/v1/keys/verify", json={"key": 5}, headers=headers)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"].endswith("key")

        connected = await client.post(
            "/v1/connections",
            json={
                "providerKey": "echo-header",
                "name": "direct",
                "authType": "API_KEY",
                "credentials": {"apiKey": "k-123"},
            },
            headers=headers,
        )
        assert connected.status_code == 201, connected.text
        proxied = await client.post(
            f"/v1/connections/{connected.json()['id']}/proxy",
            json={"path": "/echo/things", "query": {"limit": 2}},
            headers={**headers, "X-Correlation-Id": "proxy-1"},
        )
        assert proxied.status_code == 200, proxied.text
        answer = proxied.json()
        assert answer["status"] == 200 and answer["attempts"] == 1
        assert answer["data"]["headers"]["x-api-key"] == "k-123"
        assert proxied.headers["x-correlation-id"] == "proxy-1"
        deadline = time.monotonic() + 10
        while (
            logged := await client.get(f"/v1/api-requests/{answer['requestId']}", headers=headers)
        ).status_code == 404:
            assert time.monotonic() < deadline, "the call never reached the request log"
            await asyncio.sleep(0.05)  # the log is written in batches
        assert logged.status_code == 200 and logged.json()["correlationId"] == "proxy-1"

        metrics = (await client.get("/metrics")).text
    assert 'route="/v1/keys/verify",status="200"' in metrics
    assert 'route="/v1/connections/{connection_id}/proxy",status="200"' in metrics


def test_a_failure_of_the_serving_itself_closes_the_connection(
    probe: tuple[ProbeApp, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should writing an answer fail, the client sees its connection closed instead of waiting
    forever, and the server goes on serving."""
    _app, port = probe

    def broken(self: InterlinkHttpProtocol, exchange: Any, response: DirectResponse) -> None:
        raise RuntimeError("cannot write")

    monkeypatch.setattr(InterlinkHttpProtocol, "_write_direct", broken)
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/answer"))
        assert answers.closed()
    monkeypatch.undo()
    sock, answers = connect(port)
    with sock:
        sock.sendall(post("/direct/answer"))
        assert answers.next()[0] == 200

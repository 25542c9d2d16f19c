"""A provider API stand-in on 127.0.0.1 (a real aiohttp server in its own thread and loop).

Routes, under ``/api``:

* ``/api/echo/...`` (any method): 200 JSON ``{method, path, rawPath, query, headers, body}``
  describing the request, with a ``Set-Cookie`` and ``X-RateLimit-*`` headers.
* ``/api/status/{code}``: that status with ``{"status": code}`` (and ``Retry-After`` when the
  query has ``retryAfter``).
* ``/api/slow``: answers after 2 s.
* ``/api/binary``: 256 bytes of ``application/octet-stream``.
* ``/api/bytes/{n}`` (and ``/api/bytes/{n}/...``): ``n`` bytes of ``application/octet-stream``.
* ``/api/gzip``: ``{"compressed": true}`` gzip-encoded (``Content-Encoding: gzip``).
* ``/api/empty``: 204, no body.
* ``/api/utf8-header``: 200 with a ``Content-Disposition`` whose value is UTF-8 (not Latin-1).
* ``/api/answer``: 200 whose body is the request's, as ``application/json`` (or the query's
  ``type``).
* ``/api/protected/...``: 401 for a missing bearer token, one in :attr:`EchoApi.revoked`, or any
  while :attr:`EchoApi.reject_all` is set; records every token it sees in :attr:`EchoApi.tokens`.

Because it runs in its own thread it serves blocking tests (SDK, CLI) as well as async ones.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web


class EchoApi:
    def __init__(self) -> None:
        self.url = ""
        self.revoked: set[str] = set()
        self.reject_all = False
        self.tokens: list[str] = []
        self.requests = 0
        self.echoed: list[dict[str, str]] = []
        """The headers (lower-case names) of every ``/api/echo`` request, in order."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/api"

    async def _echo(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        described: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "rawPath": request.raw_path,
            "query": {k: request.query.getall(k) for k in request.query},
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.echoed.append(described["headers"])
        headers = {"Set-Cookie": "session=abc", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99"}
        return web.json_response(described, headers=headers)

    async def _status(self, request: web.Request) -> web.Response:
        self.requests += 1
        code = int(request.match_info["code"])
        retry_after = request.query.get("retryAfter")
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return web.json_response({"status": code}, status=code, headers=headers)

    async def _slow(self, _request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(2)
        return web.json_response({"slow": True})

    async def _binary(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=bytes(range(256)), content_type="application/octet-stream")

    async def _bytes(self, request: web.Request) -> web.Response:
        self.requests += 1
        size = int(request.match_info["n"])
        return web.Response(body=b"x" * size, content_type="application/octet-stream")

    async def _gzip(self, _request: web.Request) -> web.Response:
        self.requests += 1
        body = gzip.compress(b'{"compressed": true}')
        return web.Response(body=body, content_type="application/json", headers={"Content-Encoding": "gzip"})

    async def _empty(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=204)

    async def _protected(self, request: web.Request) -> web.Response:
        self.requests += 1
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        self.tokens.append(token)
        if not auth.startswith("Bearer ") or token in self.revoked or self.reject_all:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True, "path": request.path})

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        return web.Response(body=body, content_type=request.query.get("type", "application/json"))

    async def _utf8_header(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(
            {"ok": True}, headers={"Content-Disposition": 'attachment; filename="résumé ☕.pdf"'}
        )

    async def _start(self, ready: threading.Event) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/echo{tail:.*}", self._echo)
        app.router.add_route("*", "/api/status/{code:[0-9]{3}}", self._status)
        app.router.add_route("*", "/api/slow", self._slow)
        app.router.add_route("*", "/api/binary", self._binary)
        app.router.add_route("*", "/api/bytes/{n:[0-9]+}{tail:(/.*)?}", self._bytes)
        app.router.add_route("*", "/api/gzip", self._gzip)
        app.router.add_route("*", "/api/empty", self._empty)
        app.router.add_route("*", "/api/utf8-header", self._utf8_header)
        app.router.add_route("*", "/api/answer", self._answer)
        app.router.add_route("*", "/api/protected{tail:.*}", self._protected)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()

    def start(self) -> EchoApi:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            starting = loop.create_task(self._start(ready))
            starting.add_done_callback(lambda task: task.exception() and ready.set())
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="echo-api")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("echo API did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()


@pytest.fixture(scope="module", name="echo_api")
def echo_api_fixture() -> Iterator[EchoApi]:
    """A started :class:`EchoApi` shared by a test module; import ``echo_api_fixture`` to use it."""
    api = EchoApi().start()
    yield api
    api.stop()

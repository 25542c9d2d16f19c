"""A scriptable webhook receiver on 127.0.0.1 (a real aiohttp server on a random port).

Each path answers from a script: a queue of :class:`Answer` steps (the last one repeats). An answer
can be a status with headers and body, a delay before answering, a hang (never answer until the
client gives up or :meth:`Receiver.release` opens the path's gate), or a connection reset. Every
request is recorded; when a path has signing secrets, the request is verified with the
``standardwebhooks`` package and the result recorded with it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    delay: float = 0.0
    hang: bool = False
    reset: bool = False
    gated: bool = False


OK = Answer()
SHUTDOWN_TIMEOUT = 2.0  # s: how long a stopping receiver waits for a request still being answered


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool | None
    verify_error: str | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.scripts: dict[str, list[Answer]] = {}
        self.secrets: dict[str, list[str]] = {}
        self.requests: list[Received] = []
        self.in_progress: dict[str, int] = {}
        self.max_in_progress: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.arrived = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    def script(self, path: str, *answers: Answer, secrets: list[str] | None = None) -> str:
        """Answer requests to ``path`` with ``answers`` in turn (the last repeats). Returns the URL."""
        self.scripts[path] = list(answers) or [OK]
        if secrets is not None:
            self.secrets[path] = secrets
        return self.url + path

    def gate(self, path: str) -> asyncio.Event:
        return self.gates.setdefault(path, asyncio.Event())

    def release(self, path: str) -> None:
        self.gate(path).set()

    def received(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(predicate)

    def _next(self, path: str) -> Answer:
        script = self.scripts.get(path, [OK])
        return script.pop(0) if len(script) > 1 else script[0]

    def _verify(self, path: str, headers: dict[str, str], body: bytes) -> tuple[bool | None, str | None]:
        secrets = self.secrets.get(path)
        if not secrets:
            return None, None
        errors = []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True, None
            except WebhookVerificationError as exc:
                errors.append(str(exc))
        return False, "; ".join(errors)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified, error = self._verify(path, headers, body)
        answer = self._next(path)
        self.in_progress[path] = self.in_progress.get(path, 0) + 1
        self.max_in_progress[path] = max(self.max_in_progress.get(path, 0), self.in_progress[path])
        async with self.arrived:
            self.requests.append(Received(path, headers, body, time.monotonic(), verified, error))
            self.arrived.notify_all()
        try:
            if answer.reset:
                sock = request.transport.get_extra_info("socket") if request.transport else None
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
            if answer.gated:
                await self.gate(path).wait()
            if answer.hang:
                await asyncio.sleep(3600)
            if answer.delay:
                await asyncio.sleep(answer.delay)
            return web.Response(status=answer.status, headers=answer.headers, text=answer.body)
        finally:
            self.in_progress[path] -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        if self._runner is not None:
            # Stop listening, then close the connections: a keep-alive connection of a client that
            # is still running (a live server's delivery worker) would otherwise hold the graceful
            # shutdown until that client's keep-alive expiry (15 s for aiohttp). Connections
            # accepted meanwhile are closed by ``cleanup``, bounded by ``SHUTDOWN_TIMEOUT``.
            for site in self._runner.sites:
                await site.stop()
            await asyncio.sleep(0)
            if self._runner.server is not None:
                for connection in self._runner.server.connections:
                    connection.force_close()
            await self._runner.cleanup()


@pytest.fixture(name="receiver")
async def receiver_fixture() -> AsyncIterator[Receiver]:
    """A started :class:`Receiver`; import ``receiver_fixture`` into a test module to use it."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()

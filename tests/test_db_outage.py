"""Database outages: readiness fails, requests get 503 (never 500 or 401), and the service recovers
by itself when the database returns.

PostgreSQL is reached through a small TCP proxy on 127.0.0.1 that the test cuts (listener closed,
every connection aborted) and restores on the same port, with no restart of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from interlink.bootstrap import bootstrap_if_empty
from interlink.core.enums import IntegrationEnvironment
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.keys.format import generate_key
from interlink.runtime import Runtime
from tests.conftest import auth, make_settings, truncate_postgres
from tests.services import REDIS_URL, need, postgres_available, redis_available

RECOVERY_SECONDS = 30


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut`` drops everything, ``restore`` listens again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sink.transport.abort()

    async def cut(self) -> None:
        """Stop listening and abort every open connection, like a database host going away."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


async def _poll(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Repeat a GET until it answers 200 (bounded); return the last response."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        response = await client.get(path, headers=headers or {})
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        assert response.status_code == 503, f"{path} while recovering: {response.status_code} {response.text}"
        await asyncio.sleep(0.2)


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), what
    body = response.json()
    assert body["type"] == "urn:interlink:problem:service-unavailable", body
    assert body["correlationId"] == response.headers["x-correlation-id"]
    assert int(response.headers["retry-after"]) >= 1, what


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    before = set(_sqlite_threads())
    runtime = Runtime(settings)
    await runtime.start()
    try:
        app = create_app(settings, runtime, access_log=False)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
            yield client, runtime
    finally:
        await runtime.limiter.reset()
        await runtime.stop()
        await _settle_sqlite_threads(before)


def _sqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive()]


async def _settle_sqlite_threads(before: set[threading.Thread], timeout: float = 5.0) -> None:
    """A connection SQLAlchemy drops after a failed first use (a damaged SQLite file) is closed by
    its aiosqlite thread in the background, unawaited, and that thread then reports to this event
    loop: let such threads finish while the loop still runs, so none reports to a closed loop."""
    gc.collect()
    deadline = time.monotonic() + timeout
    while any(t not in before for t in _sqlite_threads()) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    need(postgres_available(), "PostgreSQL not reachable")
    url = request.getfixturevalue("postgres_database")
    assert url is not None
    truncate_postgres(url)
    return str(url)


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    target = make_url(postgres_url)
    tcp = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await tcp.start()
    yield tcp
    await tcp.close()


# With Redis configured (shared rate limits) key invalidation still rides on PostgreSQL NOTIFY, so
# both variants lose the listener with the database and clear the key cache until it returns.
@pytest.mark.parametrize("invalidation", ["postgres-listen", "redis"])
async def test_postgres_outage_gives_503_and_recovers_by_itself(
    postgres_url: str, proxy: TcpProxy, tmp_path: Path, invalidation: str
) -> None:
    redis_url = ""
    if invalidation == "redis":
        need(redis_available(), f"Redis not reachable at {REDIS_URL}")
        redis_url = REDIS_URL
    through_proxy = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    settings = make_settings(
        through_proxy.render_as_string(hide_password=False), tmp_path / "data", redis_url=redis_url
    )
    async with serving(settings) as (client, runtime):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        warm = auth(admin.key)
        assert (await client.get("/readyz")).status_code == 200
        made = await client.post("/v1/keys", json={"name": "cold", "scopes": ["keys:read"]}, headers=warm)
        assert made.status_code == 201, made.text
        cold = auth(made.json()["key"])
        unknown_key = auth(generate_key(IntegrationEnvironment.PRODUCTION))
        assert (await client.get("/v1/keys", headers=warm)).status_code == 200

        await proxy.cut()

        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "unavailable"
        for attempt in range(3):  # repeated calls stay 503 (no pool exhaustion, no stuck state)
            assert_unavailable(await client.get("/v1/keys", headers=warm), f"cached key, call {attempt}")
            assert_unavailable(await client.get("/v1/keys", headers=cold), f"cold key, call {attempt}")
        assert_unavailable(
            await client.post("/v1/tenants", json={"name": "During Outage"}, headers=warm), "a write"
        )
        assert_unavailable(await client.get("/v1/keys", headers=unknown_key), "an unknown key")
        malformed = await client.get("/v1/keys", headers=auth("il_live_" + "A" * 38))
        assert malformed.status_code == 401  # refused offline, without the database

        await proxy.restore()

        assert (await _poll(client, "/readyz")).status_code == 200
        listed = await _poll(client, "/v1/keys", warm)
        assert listed.status_code == 200, listed.text
        assert (await _poll(client, "/v1/keys", cold)).status_code == 200
        created = await client.post("/v1/tenants", json={"name": "After Outage"}, headers=warm)
        assert created.status_code == 201, created.text
        # An unknown key is refused again as such, not as an outage.
        unknown = await client.get("/v1/keys", headers=unknown_key)
        assert unknown.status_code == 401
        assert unknown.json()["reason"] == "unknown"


async def test_sqlite_database_file_missing_is_not_ready(tmp_path: Path, sqlite_template: Path) -> None:
    database = tmp_path / "gone" / "interlink.db"
    database.parent.mkdir()
    shutil.copyfile(sqlite_template, database)
    settings = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path / "data")
    async with serving(settings) as (client, runtime):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        assert (await client.get("/readyz")).status_code == 200
        made = await client.post(
            "/v1/keys", json={"name": "cold", "scopes": ["keys:read"]}, headers=auth(admin.key)
        )
        assert made.status_code == 201
        await runtime.db.dispose()  # no pooled connection keeps the old file open
        database.unlink()
        for suffix in ("-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)

        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert_unavailable(await client.get("/v1/keys", headers=auth(made.json()["key"])), "cold key")


@pytest.mark.parametrize("damage", ["directory-missing", "not-a-database", "a-directory"])
async def test_sqlite_database_unreadable_is_not_ready(tmp_path: Path, damage: str) -> None:
    database = tmp_path / "db" / "interlink.db"
    if damage == "not-a-database":
        database.parent.mkdir()
        database.write_bytes(b"this is not a SQLite database file" * 200)
    elif damage == "a-directory":
        database.mkdir(parents=True)
    settings = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path / "data")
    async with serving(settings) as (client, _runtime):
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "unavailable"
        assert (await client.get("/healthz")).status_code == 200
        cold = auth(generate_key(IntegrationEnvironment.PRODUCTION))
        assert_unavailable(await client.get("/v1/keys", headers=cold), "a request needing the database")

"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, each test isolated.

* ``db_url`` — a fresh, migrated database per test (SQLite: a copied template file; PostgreSQL:
  one database per xdist worker, truncated before each test).
* ``settings``, ``runtime``, ``app``, ``client`` (httpx over ASGI), ``admin`` (bootstrap tenant
  and platform admin key), ``live_server`` (a real uvicorn on 127.0.0.1 for SDK/CLI tests).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from interlink.bootstrap import BootstrapResult, bootstrap_if_empty
from interlink.core import clock
from interlink.core.db import Base
from interlink.core.migrate import upgrade
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.http.server import server_options
from interlink.runtime import Runtime
from tests.services import POSTGRES_ADMIN_URL, need, postgres_available

import interlink.all_models  # noqa: F401  # isort: skip

TEST_MASTER_KEYS = "test1:" + "A" * 43
TEST_PEPPER = "cGVwcGVyLWZvci10ZXN0cy1vbmx5LW5vdC1hLXJlYWwtc2VjcmV0LTEyMzQ1Njc4"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A migrated database for this xdist worker (dropped at the end), or None without PostgreSQL."""
    if not postgres_available():
        yield None
        return
    name = f"interlink_test_{_worker()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """The worker's PostgreSQL database, truncated, for tests about PostgreSQL itself (LISTEN/NOTIFY
    across processes); a skip, or a failure under INTERLINK_REQUIRE_SERVICES, without it."""
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    url = request.getfixturevalue("postgres_database")
    assert url is not None
    truncate_postgres(url)
    return str(url)


def fresh_module_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A fresh migrated database URL for a module-scoped fixture (``backend``: sqlite or postgres).

    PostgreSQL: the worker's database, truncated (``--dist loadfile`` runs one module at a time
    per worker, and every ``db_url`` truncates it again before its test)."""
    if backend == "sqlite":
        target = tmp_path / "interlink.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite+aiosqlite:///{target}"
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    url = request.getfixturevalue("postgres_database")
    assert url is not None
    truncate_postgres(url)
    return str(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh migrated database URL; the test runs once per database."""
    if request.param == "sqlite":
        target = tmp_path / "interlink.db"
        shutil.copyfile(sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    url = request.getfixturevalue("postgres_database")
    assert url is not None
    truncate_postgres(url)
    return str(url)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


def make_settings(db_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "data_dir": data_dir,
        "master_keys": TEST_MASTER_KEYS,
        "key_pepper": TEST_PEPPER,
        "key_usage_flush_seconds": 0.2,
        "log_format": "json",
        "redis_url": "",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    await rt.start()
    yield rt
    await rt.limiter.reset()
    await rt.stop()


@pytest.fixture
def app(settings: Settings, runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(settings, runtime, access_log=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as c:
        yield c


@pytest.fixture
async def admin(runtime: Runtime) -> BootstrapResult:
    """The default tenant and its platform admin key, as created at first start."""
    result = await bootstrap_if_empty(runtime)
    assert result is not None
    return result


def auth(key: str, tenant_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if tenant_id:
        headers["X-Tenant-Id"] = tenant_id
    return headers


@pytest.fixture
def admin_headers(admin: BootstrapResult) -> dict[str, str]:
    return auth(admin.key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    settings: Settings
    admin_key: str
    tenant_id: str


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # run inside a thread
        return None


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    """Settings overrides for ``live_server``; override this fixture in a module to change them."""
    return {}


@pytest.fixture
def live_server(
    db_url: str, tmp_path: Path, live_server_settings_overrides: dict[str, object]
) -> Iterator[LiveServer]:
    """A real HTTP server on 127.0.0.1 (its own thread and event loop) with a bootstrapped admin key."""
    settings = make_settings(db_url, tmp_path / "live-data", **live_server_settings_overrides)

    async def _bootstrap() -> BootstrapResult | None:
        rt = Runtime(settings)
        try:
            return await bootstrap_if_empty(rt)
        finally:
            await rt.stop()

    created = asyncio.run(_bootstrap())
    assert created is not None
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, access_log=False), host="127.0.0.1", port=port, lifespan="on", **server_options()
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", settings, created.key, created.tenant_id)
    server.should_exit = True
    thread.join(timeout=60)
    # A server still running would outlive its test (and its database); fail instead.
    assert not thread.is_alive(), "live server did not stop within 60 s"

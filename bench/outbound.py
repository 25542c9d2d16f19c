"""Outbound API client benchmark; results and method in docs/benchmarks.md.

Requests per second through the outbound client library (``OutboundService`` as the runtime builds
it: the SSRF-guarded pooled transport with timing, the retry budget and circuit breaker, the
request log on, Prometheus counters) against a plain aiohttp API server in its own process, at
concurrency 64. Each call is a GET of ``/v1/items/{id}`` with a query string and a bearer token,
answered with a small JSON object that the client decodes.

Baseline, measured in the same run and the same event loop: a bare aiohttp loop making the same
requests (same URL, headers, JSON decoding) with one session at concurrency 64. Bare runs are
made before and after each library run; the ratio divides by their mean. Target: ≥ 0.6×.

The request log is written to a fresh database (SQLite, and PostgreSQL at 127.0.0.1:5432 when it
answers: a database ``interlink_bench_<random>`` created and dropped by the run); the final flush
of the log is inside the timed region. Checks: every answer is 200 with the expected JSON, the
server counted exactly one request per call, and the log holds exactly one row per call with no
token in it. The exit status is non-zero only when something fails; a low ratio is reported.

Two halves: the library (here) and the proxy (``POST /v1/connections/{id}/proxy`` through a real
server, against the same bare loop, target ≥ 0.4×), which joins :data:`PHASES` with the
connections API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import ipaddress
import os
import platform
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from interlink.core.db import Database
from interlink.core.logging import configure_logging
from interlink.core.migrate import upgrade
from interlink.outbound.client import OutboundService
from interlink.outbound.config import ApiClientConfig
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.request import ApiEndpointConfig, ApiRequestBuilder

POSTGRES_ADMIN_URL = os.environ.get(
    "INTERLINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TOKEN = "bench-" + secrets.token_hex(16)
PHASE_TIME_LIMIT = 300.0


class BenchError(Exception):
    """Something failed (as opposed to a slow figure)."""


# -- the API server (its own process) ------------------------------------------------------------


def serve_api() -> None:
    """``GET /v1/items/{id}`` answers a small JSON object (200); ``GET /stats`` and ``POST /reset``
    count requests. Prints ``PORT <n>`` once listening."""
    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    state = {"requests": 0, "unauthorized": 0}

    async def item(request: web.Request) -> web.Response:
        state["requests"] += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN_FROM_ENV}":
            state["unauthorized"] += 1
        body = {
            "id": request.match_info["id"],
            "object": "item",
            "expand": request.query.getall("expand", []),
            "name": "Benchmark item",
            "amount": 1299,
            "currency": "eur",
            "metadata": {"source": "bench", "tier": "gold"},
        }
        return web.json_response(
            body, headers={"X-RateLimit-Limit": "100000", "X-RateLimit-Remaining": "99999"}
        )

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(state)

    async def reset(_request: web.Request) -> web.Response:
        state.update(requests=0, unauthorized=0)
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/items/{id}", item)
        app.router.add_get("/stats", stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


TOKEN_FROM_ENV = os.environ.get("BENCH_OUTBOUND_TOKEN", "")


@dataclass
class ApiServer:
    proc: subprocess.Popen[bytes]
    url: str

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"{self.url}/reset") as resp:
            if resp.status != 200:
                raise BenchError(f"server reset answered {resp.status}")

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, int]:
        async with session.get(f"{self.url}/stats") as resp:
            return dict(await resp.json())

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)


@contextlib.contextmanager
def api_server() -> Iterator[ApiServer]:
    env = {**os.environ, "BENCH_OUTBOUND_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-api"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            raise BenchError(f"the API server did not start (said {line!r}, status {proc.poll()})")
        yield ApiServer(proc, f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


@dataclass
class Run:
    name: str
    count: int
    seconds: float
    bench_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def _drive(total: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Run ``call(0..total-1)`` with ``concurrency`` in flight; returns the elapsed seconds."""
    numbers = iter(range(total))

    async def worker() -> None:
        for n in numbers:
            await call(n)

    started = time.perf_counter()
    async with asyncio.timeout(PHASE_TIME_LIMIT):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def _check(data: Any, n: int, what: str) -> None:
    if not isinstance(data, dict) or data.get("id") != f"it_{n}" or data.get("expand") != ["lines"]:
        raise BenchError(f"{what}: unexpected answer {data!r}")


# -- baseline: a bare aiohttp loop ---------------------------------------------------------------


async def bare_loop(server: ApiServer, total: int, concurrency: int) -> Run:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await server.reset(session)

        async def call(n: int) -> None:
            url = f"{server.url}/v1/items/it_{n}?expand=lines&limit=10"
            async with session.get(url, headers=headers) as resp:
                data = await resp.json()
                if resp.status != 200:
                    failures.append(str(resp.status))
                    return
                _check(data, n, "bare loop")

        cpu0, scpu0 = time.process_time(), server.cpu_seconds()
        elapsed = await _drive(total, concurrency, call)
        run = Run(
            "bare aiohttp loop", total, elapsed, time.process_time() - cpu0, server.cpu_seconds() - scpu0
        )
        stats = await server.stats(session)
    if failures:
        raise BenchError(f"bare loop: {len(failures)} non-200 answers, first {failures[0]}")
    if stats["requests"] != total or stats["unauthorized"]:
        raise BenchError(f"bare loop: the server counted {stats}")
    return run


# -- the library half ----------------------------------------------------------------------------


async def library(
    name: str,
    database_url: str | None,
    server: ApiServer,
    total: int,
    concurrency: int,
    profile: str | None,
) -> Run:
    """``total`` calls through ``ApiClient.request`` with the request log written to ``database_url``
    (``None``: the log off, to see what it costs)."""
    db = Database(database_url) if database_url else None
    service = OutboundService(db=db, allowed_networks=[ipaddress.ip_network("127.0.0.1/32")])
    service.start()
    client = service.client(
        ApiClientConfig(
            tenant_id="ten_bench",
            base_url=server.url + "/v1",
            connection_id="conn_bench",
            provider_key="bench",
            headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
            max_connections=concurrency,
        )
    )
    endpoint = ApiEndpointConfig(path="/items/{id}", name="items.get", query={"expand": "lines"})
    failures: list[str] = []
    try:
        async with aiohttp.ClientSession() as control:
            await server.reset(control)

            async def call(n: int) -> None:
                response = await client.request(
                    ApiRequestBuilder(endpoint, parameters={"id": f"it_{n}"}, query={"limit": 10})
                )
                if response.status != 200:
                    failures.append(str(response.status))
                    return
                _check(response.data, n, name)

            profiler = cProfile.Profile() if profile else None
            cpu0, scpu0 = time.process_time(), server.cpu_seconds()
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            await _drive(total, concurrency, call)
            if service.log is not None:
                await service.log.flush()
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(profile).print_stats(30)
                print(f"\n--- cProfile, {name} (top 30 by {profile}) ---\n{out.getvalue()}")
            run = Run(name, total, elapsed, time.process_time() - cpu0, server.cpu_seconds() - scpu0)
            stats = await server.stats(control)
        if failures:
            raise BenchError(f"{name}: {len(failures)} non-200 answers, first {failures[0]}")
        if stats["requests"] != total or stats["unauthorized"]:
            raise BenchError(f"{name}: the server counted {stats}")
        if db is None:
            return run
        async with db.unit_of_work(write=False) as session:
            rows = await session.scalar(sa.select(sa.func.count()).select_from(ExternalApiRequest))
            leaked = await session.scalar(
                sa.select(sa.func.count())
                .select_from(ExternalApiRequest)
                .where(sa.cast(ExternalApiRequest.request_headers, sa.String()).contains(TOKEN))
            )
            await session.execute(sa.delete(ExternalApiRequest))
        if rows != total:
            raise BenchError(f"{name}: the request log holds {rows} rows for {total} calls")
        if leaked:
            raise BenchError(f"{name}: the bearer token reached the request log")
        return run
    finally:
        await service.close()
        if db is not None:
            await db.dispose()


# -- the proxy half ------------------------------------------------------------------------------
# ``POST /v1/connections/{id}/proxy`` through a real server process, compared with the same bare
# loop (target ≥ 0.4×). It is added to PHASES together with the connections API.

PHASES = ("library",)


# -- main ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh migrated database ``interlink_bench_<random>`` (dropped afterwards), or None."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        if os.environ.get("INTERLINK_REQUIRE_SERVICES", "") not in ("", "0", "false", "no"):
            raise BenchError(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}") from exc
        print(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: skipped")
        yield None
        return
    name = f"interlink_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        url = f"{base}/{name}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _report(run: Run, baseline: float | None) -> None:
    ratio = f"  {run.rate / baseline:.2f}x bare" if baseline else ""
    print(
        f"   {run.name:<26}{run.rate:>8,.0f} req/s  ({run.count:,} in {run.seconds:.2f} s; "
        f"CPU/request: bench process {run.bench_cpu / run.count * 1e6:>4.0f} µs, "
        f"server {run.server_cpu / run.count * 1e6:>3.0f} µs){ratio}"
    )


async def bench(args: argparse.Namespace, targets: list[tuple[str, str]]) -> None:
    with api_server() as server:
        await bare_loop(server, min(2000, args.requests), args.concurrency)  # warm-up
        bare = [await bare_loop(server, args.requests, args.concurrency)]
        runs: list[tuple[Run, float]] = []
        if args.without_log:
            run = await library(
                "library, log off", None, server, args.requests, args.concurrency, args.profile
            )
            bare.append(await bare_loop(server, args.requests, args.concurrency))
            runs.append((run, statistics.mean(b.rate for b in bare[-2:])))
        for name, url in targets:
            for _ in range(args.rounds):
                run = await library(
                    f"library, log on {name}", url, server, args.requests, args.concurrency, args.profile
                )
                bare.append(await bare_loop(server, args.requests, args.concurrency))
                runs.append((run, statistics.mean(b.rate for b in bare[-2:])))
    print(
        f"\n{args.requests:,} GETs of a small JSON object per run, aiohttp API server in its own "
        f"process, concurrency {args.concurrency}; bare loop measured before and after each library run"
    )
    for b in bare:
        _report(b, None)
    for run, around in runs:
        _report(run, around)
    bare_cpu = statistics.median(b.bench_cpu / b.count for b in bare)
    for name in ["off", *(n for n, _url in targets)]:
        mine = [(run, around) for run, around in runs if run.name.endswith(name)]
        if not mine:
            continue
        ratios = ", ".join(f"{run.rate / around:.2f}" for run, around in mine)
        cpu = ", ".join(f"{bare_cpu / (run.bench_cpu / run.count):.2f}" for run, _ in mine)
        print(f"   library (log {name}) / bare loop: throughput {ratios}; bench CPU per request {cpu}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="calls per run (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--rounds", type=int, default=2, help="library runs per database (default 2)")
    parser.add_argument(
        "--without-log", action="store_true", help="add a library run with the request log off"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--profile", nargs="?", const="tottime", help="print cProfile's top entries of each library run"
    )
    parser.add_argument("--serve-api", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api()
        return 0

    configure_logging("WARNING", "json")
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )
    if hasattr(os, "getloadavg"):
        print("load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp_dir:
            pg = contextlib.nullcontext(None) if args.skip_postgres else postgres_database()
            with pg as postgres_url:
                targets: list[tuple[str, str]] = []
                if not args.skip_sqlite:
                    sqlite_url = f"sqlite+aiosqlite:///{(Path(tmp_dir) / 'interlink.db').as_posix()}"
                    upgrade(sqlite_url)
                    targets.append(("SQLite", sqlite_url))
                if postgres_url:
                    targets.append(("PostgreSQL", postgres_url))
                asyncio.run(bench(args, targets))
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

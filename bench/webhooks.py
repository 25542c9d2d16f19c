"""Webhook delivery benchmark (``make bench``); results and method in docs/benchmarks.md.

Delivered webhooks per second through the real engine (``DeliveryWorker`` as ``interlink worker``
configures it: concurrency 64, claims of 128, the shared HTTP transport with the SSRF guard),
on PostgreSQL (127.0.0.1:5432, a database ``interlink_bench_<random>`` created and dropped by the
run) and on SQLite, against an aiohttp receiver in a separate process. The events (signed, 1 KB
bodies) are ingested before the clock starts; the clock stops when the worker has recorded the
last delivery as DELIVERED.

Baseline, measured in the same run and the same event loop: a bare async loop posting the same
kind of pre-signed 1 KB JSON to the same receiver with aiohttp at concurrency 64 (the irreducible
HTTP cost). The design's prototype reached 0.63-0.69x of that loop on PostgreSQL. Target on
PostgreSQL: at least 0.5x.

After each engine run comes a **paced run**: for ``--paced-seconds`` (default 10) events are
ingested at half the throughput just measured (a batch every 50 ms, each event's payload stamped
with its ingestion time, the worker woken after each batch as the API wakes its process's worker)
while a fresh worker delivers them; the receiver records each event's
ingest-to-receipt lag, reported as p50 and p99. Target on PostgreSQL: p99 under 1 s (SQLite's
figures are informative).

Checks: the receiver counts requests and distinct ``webhook-id`` values (each must equal the number
of events) and keeps a sample, verified here with the ``standardwebhooks`` package; every delivery
row must be DELIVERED. The exit status is non-zero only when something fails; a low ratio is
reported (``MISS``), not failed. ``--profile`` prints the top cProfile entries of each engine run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from interlink.bootstrap import bootstrap_if_empty
from interlink.core.actor import system_actor
from interlink.core.crypto import generate_master_key
from interlink.core.enums import DeliveryStatus
from interlink.core.logging import configure_logging
from interlink.core.migrate import upgrade
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks import signing
from interlink.webhooks.delivery import EventView, envelope
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest_batch
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery

POSTGRES_ADMIN_URL = os.environ.get(
    "INTERLINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LOCAL = ["127.0.0.1/32"]
BODY_BYTES = 1024
EVENT_TYPE = "bench.delivered"
INGEST_BATCH = 100
SAMPLE = 50
PHASE_TIME_LIMIT = 300.0
START_TIMEOUT = 30.0
PACED_SHARE = 0.5
"""The paced run ingests at this share of the throughput measured just before (not saturated)."""
PACED_TICK = 0.05
THROUGHPUT_TARGET = 0.5
"""On PostgreSQL, of the bare loop's rate."""
LAG_TARGET = 1.0
"""p99 ingest-to-receipt seconds when not saturated."""


class BenchError(Exception):
    """Something failed (as opposed to a slow figure)."""


# -- the receiver (its own process) --------------------------------------------------------------


def serve_receiver() -> None:
    """Answer every POST with 200, count requests and distinct webhook-ids, keep a small sample.

    Prints ``PORT <n>`` once listening. ``GET /stats`` reports; ``POST /reset`` starts a new count.
    """
    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    state: dict[str, Any] = {"requests": 0, "ids": set(), "sample": [], "lags": []}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        received = time.time()
        state["requests"] += 1
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id not in state["ids"]:
            lag = ingest_to_receipt(body, received)
            if lag is not None:
                state["lags"].append(lag)
        state["ids"].add(webhook_id)
        if len(state["sample"]) < SAMPLE:
            state["sample"].append(
                {"path": request.path, "headers": dict(request.headers), "body": body.decode()}
            )
        return web.Response(text="ok")

    async def stats(_request: web.Request) -> web.Response:
        lags: list[float] = state["lags"]
        return web.json_response(
            {
                "requests": state["requests"],
                "distinct": len(state["ids"]),
                "sample": state["sample"],
                "lags": len(lags),
                "lagP50": statistics.median(lags) if lags else None,
                "lagP99": statistics.quantiles(lags, n=100)[98] if len(lags) >= 2 else None,
            }
        )

    async def reset(_request: web.Request) -> web.Response:
        state.update(requests=0, ids=set(), sample=[], lags=[])
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/reset", reset)
        app.router.add_post("/hook/{name}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


INGESTED_AT = b'"ingestedAt":'


def ingest_to_receipt(body: bytes, received: float) -> float | None:
    """Seconds from the event's ingestion (``ingestedAt`` in its payload, paced runs only) to
    ``received``; None for a body without it."""
    at = body.find(INGESTED_AT)
    if at < 0:
        return None
    start = at + len(INGESTED_AT)
    end = start
    while end < len(body) and body[end : end + 1] in b"0123456789.":
        end += 1
    return received - float(body[start:end])


@dataclass
class ReceiverProcess:
    proc: subprocess.Popen[bytes]
    url: str

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"{self.url}/reset") as resp:
            if resp.status != 200:
                raise BenchError(f"receiver reset answered {resp.status}")

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"{self.url}/stats") as resp:
            if resp.status != 200:
                raise BenchError(f"receiver stats answered {resp.status}")
            return dict(await resp.json())

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)


@contextlib.contextmanager
def receiver_process() -> Iterator[ReceiverProcess]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-receiver"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            raise BenchError(f"the receiver did not start (said {line!r}, status {proc.poll()})")
        yield ReceiverProcess(proc, f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``; 0 where unavailable)."""
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


# -- payloads ------------------------------------------------------------------------------------


def padded_payload(n: int, ingested_at: float | None = None) -> dict[str, Any]:
    """A payload whose default envelope is :data:`BODY_BYTES` long (with ``ingestedAt``, a Unix
    time, when given: the receiver measures ingest-to-receipt lag from it)."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {"n": n} if ingested_at is None else {"n": n, "ingestedAt": ingested_at}
    probe = EventView("evt_x", EVENT_TYPE, {**payload, "pad": ""}, {}, now)
    size = len(json.dumps(envelope(probe), separators=(",", ":")).encode())
    return {**payload, "pad": "x" * max(0, BODY_BYTES - size)}


def check_sample(sample: list[dict[str, Any]], secrets_by_path: dict[str, str], what: str) -> None:
    """Verify the receiver's sample with the ``standardwebhooks`` package (each path's secret)."""
    from standardwebhooks.webhooks import Webhook

    if not sample:
        raise BenchError(f"{what}: the receiver kept no sample")
    for item in sample:
        headers = {k.lower(): v for k, v in item["headers"].items()}
        body = item["body"]
        try:
            Webhook(secrets_by_path[item["path"]]).verify(body, headers)
        except Exception as exc:
            raise BenchError(f"{what}: a request failed signature verification: {exc}") from exc
        if len(body.encode()) < BODY_BYTES * 0.9:
            raise BenchError(f"{what}: a body of {len(body)} bytes, expected about {BODY_BYTES}")


# -- baseline: a bare aiohttp loop ---------------------------------------------------------------


@dataclass
class PacedRun:
    """Events ingested at a steady rate below capacity while the worker runs: ingest-to-receipt lag."""

    rate: float
    count: int
    p50: float
    p99: float


@dataclass
class Run:
    name: str
    count: int
    seconds: float
    bench_cpu: float
    receiver_cpu: float
    extra: str = ""
    paced: PacedRun | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def bare_loop(
    receiver: ReceiverProcess, session: aiohttp.ClientSession, total: int, concurrency: int
) -> Run:
    """POST ``total`` pre-signed 1 KB bodies with ``concurrency`` in flight; every answer must be 200."""
    secret = signing.generate_secret()
    now = datetime.now(UTC)
    url = f"{receiver.url}/hook/bare"
    requests: list[tuple[dict[str, str], bytes]] = []
    for n in range(total):
        msg_id = f"msg_bare_{n:08d}"
        view = EventView(msg_id, EVENT_TYPE, padded_payload(n), {}, now)
        body = json.dumps(envelope(view), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            **signing.sign([secret], msg_id, int(time.time()), body).as_dict(),
        }
        requests.append((headers, body))
    await receiver.reset(session)
    pending = iter(requests)
    failures: list[str] = []

    async def worker() -> None:
        for headers, body in pending:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    failures.append(str(resp.status))

    cpu0, rcpu0 = time.process_time(), receiver.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    run = Run("bare aiohttp loop", total, elapsed, time.process_time() - cpu0, receiver.cpu_seconds() - rcpu0)
    if failures:
        raise BenchError(f"bare loop: {len(failures)} non-200 answers, first {failures[0]}")
    stats = await receiver.stats(session)
    if stats["requests"] != total or stats["distinct"] != total:
        raise BenchError(
            f"bare loop: the receiver counted {stats['requests']} requests, {stats['distinct']} ids"
        )
    check_sample(stats["sample"], {"/hook/bare": secret}, "bare loop")
    return run


# -- the engine ----------------------------------------------------------------------------------


def _settings(database_url: str, data_dir: Path, env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        master_keys=env["INTERLINK_MASTER_KEYS"],
        key_pepper=env["INTERLINK_KEY_PEPPER"],
        redis_url="",
        allowed_target_networks=LOCAL,
        log_level="WARNING",
    )


async def engine(
    name: str,
    settings: Settings,
    receiver: ReceiverProcess,
    session: aiohttp.ClientSession,
    total: int,
    profile: str | None,
    endpoint_count: int = 1,
    paced_seconds: float = 10.0,
) -> Run:
    """Ingest ``total`` events spread over ``endpoint_count`` endpoints (event ``n`` goes to endpoint
    ``n % endpoint_count``), then time the delivery worker sending them all; then the paced run
    (:func:`paced`) at :data:`PACED_SHARE` of the throughput just measured."""
    runtime = Runtime(settings)
    await runtime.start()
    try:
        created = await bootstrap_if_empty(runtime)
        if created is None:
            raise BenchError(f"{name}: the fresh database was not empty")
        actor = system_actor(created.tenant_id)
        service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
        secrets_by_path: dict[str, str] = {}
        for k in range(endpoint_count):
            path = f"/hook/{name}-{k}"
            async with runtime.db.unit_of_work() as db_session:
                endpoint = await service.create(
                    db_session,
                    actor,
                    EndpointSpec(
                        url=receiver.url + path, event_types=[f"{EVENT_TYPE}.{k}"], max_in_flight=64
                    ),
                )
            async with runtime.db.unit_of_work(write=False) as db_session:
                [secrets_by_path[path]] = await active_secrets(db_session, runtime.keyring, endpoint.id)

        ingest_started = time.perf_counter()
        for start in range(0, total, INGEST_BATCH):
            specs = [
                EventSpec(type=f"{EVENT_TYPE}.{n % endpoint_count}", payload=padded_payload(n))
                for n in range(start, min(total, start + INGEST_BATCH))
            ]
            async with runtime.db.unit_of_work() as db_session:
                await ingest_batch(db_session, actor, specs)
        ingest_rate = total / (time.perf_counter() - ingest_started)

        await receiver.reset(session)
        worker = runtime.make_delivery_worker()
        profiler = cProfile.Profile() if profile else None
        cpu0, rcpu0 = time.process_time(), receiver.cpu_seconds()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(PHASE_TIME_LIMIT):
                while worker.delivered < total:
                    if task.done():
                        raise BenchError(f"{name}: the delivery worker stopped early")
                    await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
        except TimeoutError as exc:
            raise BenchError(
                f"{name}: {worker.delivered} of {total} delivered in {PHASE_TIME_LIMIT} s"
            ) from exc
        finally:
            if profiler:
                profiler.disable()
            bench_cpu, receiver_cpu = time.process_time() - cpu0, receiver.cpu_seconds() - rcpu0
            worker.stop()
            await task
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(profile).print_stats(30)
            print(f"\n--- cProfile, {name} engine run (top 30 by {profile}) ---\n{out.getvalue()}")

        stats = await receiver.stats(session)
        if stats["requests"] != total or stats["distinct"] != total:
            raise BenchError(
                f"{name}: the receiver counted {stats['requests']} requests, {stats['distinct']} distinct ids"
            )
        check_sample(stats["sample"], secrets_by_path, name)
        async with runtime.db.unit_of_work(write=False) as db_session:
            rows = await db_session.execute(
                sa.select(WebhookDelivery.status, sa.func.count()).group_by(WebhookDelivery.status)
            )
            counts = {status: int(n) for status, n in rows.all()}
            failed = (
                await db_session.execute(
                    sa.select(WebhookAttempt.error_class, WebhookAttempt.error_message, sa.func.count())
                    .where(WebhookAttempt.succeeded.is_(False))
                    .group_by(WebhookAttempt.error_class, WebhookAttempt.error_message)
                )
            ).all()
        if counts != {DeliveryStatus.DELIVERED: total}:
            raise BenchError(f"{name}: delivery states {counts}")
        for error_class, message, n in failed:
            print(f"   {name}: {n} failed attempts ({error_class}: {message})")
        rate = total / elapsed * PACED_SHARE
        paced_run = await paced(
            name, runtime, actor, receiver, session, rate, paced_seconds, endpoint_count, total
        )
        return Run(
            f"engine, {name}",
            total,
            elapsed,
            bench_cpu,
            receiver_cpu,
            f"ingest {ingest_rate:,.0f} events/s",
            paced_run,
        )
    finally:
        await runtime.stop()


async def paced(
    name: str,
    runtime: Runtime,
    actor: Any,
    receiver: ReceiverProcess,
    session: aiohttp.ClientSession,
    rate: float,
    seconds: float,
    endpoint_count: int,
    first: int,
) -> PacedRun:
    """Ingest events at ``rate`` per second for ``seconds`` (a batch every :data:`PACED_TICK`
    seconds, each event stamped with its ingestion time) while a fresh delivery worker runs; the
    receiver's ingest-to-receipt lag of each."""
    count = max(1, round(rate * seconds))
    per_tick = max(1, round(rate * PACED_TICK))
    await receiver.reset(session)
    worker = runtime.make_delivery_worker()
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(PHASE_TIME_LIMIT):
            sent = 0
            tick = time.perf_counter()
            while sent < count:
                batch = min(per_tick, count - sent)
                stamp = time.time()
                specs = [
                    EventSpec(
                        type=f"{EVENT_TYPE}.{n % endpoint_count}",
                        payload=padded_payload(n, ingested_at=stamp),
                    )
                    for n in range(first + sent, first + sent + batch)
                ]
                async with runtime.db.unit_of_work() as db_session:
                    await ingest_batch(db_session, actor, specs)
                worker.wake()  # as the API does after an ingest in a process with a worker
                sent += batch
                tick += PACED_TICK
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            while worker.delivered < count:
                if task.done():
                    raise BenchError(f"{name}: the delivery worker stopped early (paced run)")
                await asyncio.sleep(0.005)
    except TimeoutError as exc:
        raise BenchError(f"{name}: {worker.delivered} of {count} paced events delivered in time") from exc
    finally:
        worker.stop()
        await task
    stats = await receiver.stats(session)
    if stats["distinct"] != count or stats["lags"] != count:
        raise BenchError(f"{name}: paced run: the receiver saw {stats['distinct']} ids, {stats['lags']} lags")
    return PacedRun(count / seconds, count, float(stats["lagP50"]), float(stats["lagP99"]))


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


# -- main ----------------------------------------------------------------------------------------


def _secrets_env() -> dict[str, str]:
    pepper = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return {"INTERLINK_MASTER_KEYS": generate_master_key("bench"), "INTERLINK_KEY_PEPPER": pepper}


def _report(run: Run, baseline: float | None) -> None:
    ratio = f"  {run.rate / baseline:.2f}x bare" if baseline else ""
    print(
        f"   {run.name:<22}{run.rate:>8,.0f} webhooks/s  ({run.count:,} in {run.seconds:.2f} s; "
        f"CPU/webhook: bench process {run.bench_cpu / run.count * 1e6:>4.0f} µs, "
        f"receiver {run.receiver_cpu / run.count * 1e6:>3.0f} µs){ratio}"
        + (f"  [{run.extra}]" if run.extra else "")
    )


async def bench(
    args: argparse.Namespace, postgres_url: str | None, sqlite_url: str | None, tmp: Path
) -> None:
    env = _secrets_env()
    with receiver_process() as receiver:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await bare_loop(receiver, session, min(2000, args.events), args.concurrency)  # warm-up
            bare: list[Run] = []
            engines: list[tuple[Run, float]] = []
            targets = [("postgres", postgres_url)] if postgres_url else []
            if not args.skip_sqlite:
                targets.append(
                    ("sqlite", f"sqlite+aiosqlite:///{(tmp / 'sqlite' / 'interlink.db').as_posix()}")
                )
            bare.append(await bare_loop(receiver, session, args.events, args.concurrency))
            for name, url in targets:
                settings = _settings(url, tmp / name, env)
                run = await engine(
                    name,
                    settings,
                    receiver,
                    session,
                    args.events,
                    args.profile,
                    args.endpoints,
                    args.paced_seconds,
                )
                bare.append(await bare_loop(receiver, session, args.events, args.concurrency))
                around = statistics.mean(b.rate for b in bare[-2:])
                engines.append((run, around))
    print(
        f"\n{args.events:,} signed {BODY_BYTES}-byte webhooks to {args.endpoints} endpoint(s), aiohttp "
        f"receiver in its own process, concurrency {args.concurrency}; bare loop measured before and "
        "after each engine run"
    )
    for b in bare:
        _report(b, None)
    for run, around in engines:
        _report(run, around)
        ratio = run.rate / around
        verdict = ""
        if run.name.endswith("postgres"):
            verdict = f" (target ≥ {THROUGHPUT_TARGET}x: {'PASS' if ratio >= THROUGHPUT_TARGET else 'MISS'})"
        print(f"   ratio {run.name} / bare loop (mean of the runs around it): {ratio:.2f}{verdict}")
        if run.paced is not None:
            p = run.paced
            lag_verdict = "informative"
            if run.name.endswith("postgres"):
                lag_verdict = f"target p99 < {LAG_TARGET:g} s: {'PASS' if p.p99 < LAG_TARGET else 'MISS'}"
            print(
                f"   {run.name}, paced at {p.rate:,.0f} events/s ({PACED_SHARE:.0%} of its throughput, "
                f"{p.count:,} events): ingest-to-receipt lag p50 {p.p50 * 1000:,.0f} ms, "
                f"p99 {p.p99 * 1000:,.0f} ms ({lag_verdict})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20,000)")
    parser.add_argument(
        "--paced-seconds", type=float, default=10.0, help="length of each paced (lag) run (default 10)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="bare loop requests in flight")
    parser.add_argument(
        "--endpoints", type=int, default=4, help="endpoints the events are spread over (default 4)"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="tottime",
        help="print the top cProfile entries of each engine run, sorted by this key (default tottime)",
    )
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver()
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
            sqlite_url = None
            if not args.skip_sqlite:
                sqlite_url = f"sqlite+aiosqlite:///{(Path(tmp_dir) / 'sqlite' / 'interlink.db').as_posix()}"
                upgrade(sqlite_url)
            with pg as postgres_url:
                asyncio.run(bench(args, postgres_url, sqlite_url, Path(tmp_dir)))
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

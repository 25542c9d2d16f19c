"""API key verification benchmark (``make bench``); results and method in docs/benchmarks.md.

1. In process: 1,000 valid keys with a warm cache verified in a loop through
   ``runtime.verifier.verify`` on the embedded SQLite runtime, against a bare ``hmac.digest`` +
   dict lookup loop (the irreducible cost) measured in the same run.
   Target: at least 200,000 verifications/s.
2. HTTP: the real app under uvicorn in a subprocess, configured as ``interlink serve`` (see
   ``bench/http_server.py``), plus a trivial ``POST /bench/noop`` route in the same server.
   ``POST /v1/keys/verify`` (a tenant key with ``keys:verify`` verifying a valid key of its tenant)
   and the trivial route are driven by an aiohttp client on 127.0.0.1 in alternating rounds after
   a warm-up. Target: verify at least 0.8x the trivial route's requests/s.

Figures that miss a target print MISS; the exit status is non-zero only when something fails
(a setup step, a non-200 response, a wrong answer, the time limit).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from interlink.bootstrap import bootstrap_if_empty
from interlink.core.actor import system_actor
from interlink.core.clock import utcnow
from interlink.core.crypto import generate_master_key, keyed_hash
from interlink.core.migrate import upgrade
from interlink.core.settings import Settings
from interlink.core.tenancy import create_tenant
from interlink.keys.format import is_well_formed
from interlink.keys.security import SecurityContext
from interlink.keys.service import KeySpec, VerifyCode
from interlink.runtime import Runtime

IN_PROCESS_TARGET = 200_000.0
HTTP_RATIO_TARGET = 0.8
HTTP_TIME_LIMIT = 150.0
SERVER_START_TIMEOUT = 30.0


class BenchError(Exception):
    """Something failed (as opposed to a missed target)."""


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _secrets_env() -> dict[str, str]:
    """A fresh master key and pepper for this run, passed the way production passes them."""
    pepper = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return {"INTERLINK_MASTER_KEYS": generate_master_key("bench"), "INTERLINK_KEY_PEPPER": pepper}


def _settings(data_dir: Path, env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'interlink.db').as_posix()}",
        master_keys=env["INTERLINK_MASTER_KEYS"],
        key_pepper=env["INTERLINK_KEY_PEPPER"],
        redis_url="",
    )


async def _new_tenant(runtime: Runtime, slug: str) -> str:
    await bootstrap_if_empty(runtime)
    async with runtime.db.unit_of_work() as session:
        tenant = await create_tenant(session, system_actor("ten_bootstrap"), slug.title(), slug)
    return tenant.id


# -- 1. in process --------------------------------------------------------------------------------


@dataclass
class InProcessResult:
    verify_rates: list[float]
    baseline_rates: list[float]
    limited_rates: list[float]
    breakdown: dict[str, float]

    @property
    def verify_per_s(self) -> float:
        return statistics.median(self.verify_rates)

    @property
    def baseline_per_s(self) -> float:
        return statistics.median(self.baseline_rates)


def _ns_per_call(fn: Callable[[str], object], keys: list[str], passes: int = 20) -> float:
    started = time.perf_counter()
    for _ in range(passes):
        for key in keys:
            fn(key)
    return (time.perf_counter() - started) / (passes * len(keys)) * 1e9


async def _timed(fn: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    count = await fn()
    return count / (time.perf_counter() - started)


async def in_process(settings: Settings, n_keys: int, passes: int, rounds: int) -> InProcessResult:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        actor = system_actor(await _new_tenant(runtime, "bench"))
        keys: list[str] = []
        async with runtime.db.unit_of_work() as session:
            for i in range(n_keys):
                _, plaintext = await runtime.keys.create(
                    session, actor, KeySpec(name=f"bench {i}", scopes=["keys:read"])
                )
                keys.append(plaintext)
            _, limited = await runtime.keys.create(
                session,
                actor,
                KeySpec(
                    name="bench rate-limited",
                    scopes=["keys:read"],
                    rate_limit=1_000_000_000,
                    rate_limit_period_seconds=60,
                ),
            )
        verifier = runtime.verifier
        context = SecurityContext("127.0.0.1", "interlink-bench", "bench")
        scopes = ("keys:read",)
        for key in [*keys, limited]:  # warm the cache and check every answer once
            result = await verifier.verify(key, ip="127.0.0.1", context=context, required_scopes=scopes)
            if result.code is not VerifyCode.VALID:
                raise BenchError(f"a freshly created key did not verify: {result.code.value}")
        if len(runtime.cache) < n_keys + 1:
            raise BenchError(f"the cache holds {len(runtime.cache)} entries, expected {n_keys + 1}")

        async def verify_loop() -> int:
            verify = verifier.verify
            for _ in range(passes):
                for key in keys:
                    await verify(key, ip="127.0.0.1", context=context, required_scopes=scopes)
            return passes * len(keys)

        pepper = runtime.local_secrets.key_pepper
        table = {hmac.digest(pepper, key.encode(), "sha256"): key for key in keys}

        async def baseline_loop() -> int:
            digest, get = hmac.digest, table.get
            for _ in range(passes):
                for key in keys:
                    get(digest(pepper, key.encode(), "sha256"))
            return passes * len(keys)

        limited_n = max(1, passes * len(keys) // 4)

        async def limited_loop() -> int:
            verify = verifier.verify
            for _ in range(limited_n):
                await verify(limited, ip="127.0.0.1", context=context, required_scopes=scopes)
            return limited_n

        verify_rates, baseline_rates = [], []
        for _ in range(rounds):  # interleaved, so that drift in machine load hits both alike
            verify_rates.append(await _timed(verify_loop))
            baseline_rates.append(await _timed(baseline_loop))
        limited_rates = [await _timed(limited_loop) for _ in range(max(1, rounds // 2))]
        last = await verifier.verify(limited, ip="127.0.0.1", context=context, required_scopes=scopes)
        if last.code is not VerifyCode.VALID or last.rate_limit is None:
            raise BenchError(f"the rate-limited key answered {last.code.value} without a decision")

        by_key = {key: keyed_hash(pepper, key) for key in keys}
        key_id = last.key.id if last.key else ""
        breakdown = {
            "format + checksum": _ns_per_call(is_well_formed, keys),
            "keyed_hash (HMAC-SHA256, hex)": _ns_per_call(lambda k: keyed_hash(pepper, k), keys),
            "cache.get": _ns_per_call(lambda k: runtime.cache.get(by_key[k]), keys),
            "utcnow()": _ns_per_call(lambda _k: utcnow(), keys),
            "usage.record": _ns_per_call(lambda _k: runtime.usage.record(key_id, "127.0.0.1"), keys),
        }
        return InProcessResult(verify_rates, baseline_rates, limited_rates, breakdown)
    finally:
        await runtime.stop()


# -- 2. HTTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    expect: bytes
    """Every response must be 200 and contain these bytes."""


VERIFY = Route("verify", "/v1/keys/verify", b'"valid":true')
NOOP = Route("noop", "/bench/noop", b'"ok":true')
BREAKDOWN = [
    Route("auth", "/bench/auth", b'"ok":true'),
    Route("body", "/bench/body", b'"ok":true'),
    Route("response", "/bench/response", b'"valid":true'),
]


@dataclass
class RouteStats:
    requests: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    rounds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us(self) -> float:
        return self.server_cpu / self.requests * 1e6

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.requests * 1e6


@dataclass
class HttpResult:
    routes: dict[str, RouteStats]
    access_log_lines: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _prepare_http(settings: Settings) -> tuple[str, str]:
    """A tenant with a ``keys:verify`` key (the caller) and a valid key to verify."""
    runtime = Runtime(settings)
    try:
        actor = system_actor(await _new_tenant(runtime, "bench-http"))
        async with runtime.db.unit_of_work() as session:
            _, caller = await runtime.keys.create(
                session, actor, KeySpec(name="bench verifier", scopes=["keys:verify"])
            )
            _, target = await runtime.keys.create(
                session, actor, KeySpec(name="bench target", scopes=["keys:read"], meta={"plan": "pro"})
            )
        return caller, target
    finally:
        await runtime.stop()


async def _wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the server exited with status {proc.returncode} before it was ready")
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise BenchError("the server did not become ready in time")


async def _drive(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    total: int,
    concurrency: int,
    expect: bytes,
) -> float:
    """Send ``total`` requests with ``concurrency`` in flight; returns the elapsed seconds."""
    remaining = total
    failures: list[str] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.post(url, data=body, headers=headers) as resp:
                payload = await resp.read()
                if resp.status != 200 or expect not in payload:
                    failures.append(f"{resp.status} {payload[:300]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        raise BenchError(f"{len(failures)} bad responses from {url}, first: {failures[0]}")
    return elapsed


async def _http_rounds(
    base: str,
    server_pid: int,
    caller: str,
    target: str,
    routes: list[Route],
    requests: int,
    concurrency: int,
    rounds: int,
) -> dict[str, RouteStats]:
    """Warm up every route, then run ``rounds`` rounds, alternating the order of the routes."""
    headers = {"Authorization": f"Bearer {caller}", "Content-Type": "application/json"}
    body = b'{"key": "' + target.encode() + b'"}'  # sent to every route, so requests are alike
    per_round = max(1, requests // rounds)
    stats = {route.name: RouteStats() for route in routes}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for route in routes:
            await _drive(
                session, base + route.path, headers, body, max(500, per_round // 2), concurrency, b""
            )
        for i in range(rounds):
            for route in routes if i % 2 == 0 else reversed(routes):
                server_before, client_before = _cpu_seconds(server_pid), time.process_time()
                seconds = await _drive(
                    session, base + route.path, headers, body, per_round, concurrency, route.expect
                )
                entry = stats[route.name]
                entry.server_cpu += _cpu_seconds(server_pid) - server_before
                entry.client_cpu += time.process_time() - client_before
                entry.requests += per_round
                entry.seconds += seconds
                entry.rounds.append(per_round / seconds)
    return stats


def http(
    settings: Settings,
    env: dict[str, str],
    routes: list[Route],
    requests: int,
    concurrency: int,
    rounds: int,
    profile: Path | None = None,
) -> HttpResult:
    upgrade(settings.effective_database_url)
    caller, target = asyncio.run(_prepare_http(settings))
    port = _free_port()
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    server_env.update(env)
    server_env["INTERLINK_DATABASE_URL"] = settings.effective_database_url
    server_env["INTERLINK_DATA_DIR"] = str(settings.data_dir)
    if profile is not None:
        server_env["INTERLINK_BENCH_PROFILE"] = str(profile.resolve())
    command = [sys.executable, str(Path(__file__).with_name("http_server.py")), str(port)]
    if any(route in BREAKDOWN for route in routes):
        command.append("--breakdown")
    log_path = settings.data_dir / "server.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, env=server_env, stdout=log_file, stderr=log_file)
        try:

            async def run() -> dict[str, RouteStats]:
                await _wait_until_up(base, proc)
                return await _http_rounds(
                    base, proc.pid, caller, target, routes, requests, concurrency, rounds
                )

            try:
                stats = asyncio.run(asyncio.wait_for(run(), HTTP_TIME_LIMIT))
            except TimeoutError as exc:
                raise BenchError(f"the HTTP benchmark took longer than {HTTP_TIME_LIMIT:.0f} s") from exc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lines = sum(1 for line in log_path.read_text().splitlines() if '"http_request"' in line)
    return HttpResult(stats, lines)


# -- report ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _report_in_process(ip: InProcessResult, n_keys: int) -> None:
    print(f"\n1. in-process verification, warm cache, {n_keys} keys, embedded SQLite runtime")
    rounds = ", ".join(f"{r:,.0f}" for r in ip.verify_rates)
    print(f"   verify():                {ip.verify_per_s:>10,.0f} /s   (median; rounds: {rounds})")
    print(f"   baseline hmac + dict:    {ip.baseline_per_s:>10,.0f} /s")
    print(f"   ratio verify/baseline:   {ip.verify_per_s / ip.baseline_per_s:>10.2f}")
    limited = statistics.median(ip.limited_rates)
    print(f"   rate-limited key:        {limited:>10,.0f} /s   (memory storage; informative)")
    print("   cost per call, one thread:")
    for name, ns in ip.breakdown.items():
        print(f"     {name:<31}{ns / 1000:>6.2f} µs")
    print(f"     {'whole verify()':<31}{1e6 / ip.verify_per_s:>6.2f} µs")
    print(f"   target >= {IN_PROCESS_TARGET:,.0f}/s: {_verdict(ip.verify_per_s >= IN_PROCESS_TARGET)}")


def _report_http(h: HttpResult, args: argparse.Namespace) -> None:
    print(
        f"\n2. HTTP: uvicorn subprocess as `interlink serve` (SQLite, access log on, JSON logs), "
        f"aiohttp client, concurrency {args.concurrency}, {args.requests:,} requests per route "
        f"in {args.http_rounds} alternating rounds"
    )
    noop = h.routes["noop"]
    for name, entry in h.routes.items():
        route = next(r for r in [VERIFY, NOOP, *BREAKDOWN] if r.name == name)
        rounds = ", ".join(f"{r:,.0f}" for r in entry.rounds)
        print(
            f"   POST {route.path:<17}{entry.rate:>7,.0f} req/s  server CPU {entry.server_us:>4.0f} µs/req "
            f"(noop +{entry.server_us - noop.server_us:>4.0f})  client CPU {entry.client_us:>4.0f} µs/req"
            f"  rounds: {rounds}"
        )
    verify = h.routes["verify"]
    ratio = verify.rate / noop.rate
    print(f"   ratio verify/noop (req/s):          {ratio:.2f}")
    print(f"   ratio noop/verify (server CPU/req): {noop.server_us / verify.server_us:.2f}  (informative)")
    print(f"   access log lines written by the server: {h.access_log_lines:,}")
    print(f"   target >= {HTTP_RATIO_TARGET}x: {_verdict(ratio >= HTTP_RATIO_TARGET)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1000, help="keys verified in process (default 1000)")
    parser.add_argument("--passes", type=int, default=100, help="passes over the keys per round")
    parser.add_argument("--rounds", type=int, default=5, help="in-process rounds (median reported)")
    parser.add_argument("--requests", type=int, default=24_000, help="HTTP requests per route")
    parser.add_argument("--concurrency", type=int, default=48, help="HTTP requests in flight")
    parser.add_argument("--http-rounds", type=int, default=6, help="alternating HTTP rounds")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also drive one route per ingredient of the verify route (auth, body, response)",
    )
    parser.add_argument("--profile-server", type=Path, help="write the server's cProfile stats here (slow)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()

    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()} "
        f"({platform.python_implementation()}); {platform.system()} {platform.release()}"
    )
    if hasattr(os, "getloadavg"):
        print("load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    started = time.monotonic()
    env = _secrets_env()
    try:
        with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp:
            if not args.skip_in_process:
                settings = _settings(Path(tmp) / "in-process", env)
                upgrade(settings.effective_database_url)
                ip = asyncio.run(in_process(settings, args.keys, args.passes, args.rounds))
                _report_in_process(ip, args.keys)
            if not args.skip_http:
                routes = [VERIFY, NOOP, *(BREAKDOWN if args.breakdown else [])]
                settings = _settings(Path(tmp) / "http", env)
                h = http(
                    settings,
                    env,
                    routes,
                    args.requests,
                    args.concurrency,
                    args.http_rounds,
                    args.profile_server,
                )
                _report_http(h, args)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

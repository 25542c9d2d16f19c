"""Connection health checks (the guide's IntegrationHealthCheck): DNS, TCP, TLS and HTTP probes,
a 0–100 score, a HEALTHY/DEGRADED/UNHEALTHY verdict, availability and operational events.

Checks (in order; a check that cannot run because an earlier one failed is ``SKIP`` and scored as
failed; a ``SKIP`` of TLS on a plain-http base URL is simply not applicable)
------------------------------------------------------------------------------------------------
* ``dns``: the host of the connection's API base URL is resolved through the SSRF guard that all
  outbound traffic uses (:func:`interlink.webhooks.ssrf.check_target` with the process's
  ``allowed_target_networks``). A name that does not resolve, or that resolves to any address the
  guard refuses (loopback, private, metadata, ...), is a FAIL and nothing is connected to.
* ``tcp``: a TCP connection to the first resolved (and allowed) address that accepts, within
  :data:`CONNECT_TIMEOUT_SECONDS`.
* ``tls`` (https only): a handshake with certificate and host name verification (the system trust
  store, or the transport's own SSL context when it has one). The certificate's expiry is recorded
  (``tlsExpiresAt``; read without verification when verification fails, so an invalid certificate
  still shows its date). PASS when valid for at least :data:`TLS_WARN_DAYS` more days, WARN when
  valid for less, FAIL when expired or not valid (self-signed, wrong host, unknown issuer, ...).
* ``http``: the provider's ``verification`` call from the catalogue, sent with the connection's
  credentials through :class:`~interlink.connections.client.ConnectionClient` (one attempt, logged
  in the request log); PASS when the status is one of its ``expected_status`` and the JSON answer
  holds ``expect_json``. A provider without one: the path in the connection's
  ``metadata.healthCheckPath`` (or ``config.healthCheckPath``), also with credentials, PASS on any
  2xx/3xx; without that either, a ``GET`` of the base URL without credentials, PASS on any answer
  below 500 (the server answers; nothing is proven about the credentials). A 429 or a PASS slower
  than :data:`SLOW_RESPONSE_MS` is a WARN; anything else (another status, no answer, a refused
  connection) is a FAIL. A call through the connection is not sent while the provider's 429 blocks
  the connection (in any process): that is a WARN too ("not sent (rate limited)"), like the 429
  itself. Its response time is the attempt's, without any wait for a rate-limit slot.

Score (0–100, an integer)
-------------------------
``score = 100 − Σ check penalties − response-time penalty − error-rate penalty``, clamped to 0–100:

* check penalties: the weight of a FAILed (or blocked SKIP) check, half of it for a WARN; weights
  ``dns`` 15, ``tcp`` 15, ``tls`` 10, ``http`` 60 (:data:`WEIGHTS`; they add up to 100, so a DNS
  failure scores 0, a refused TCP connection 15, an invalid certificate 30, an HTTP failure 40);
* response time of the HTTP check: 0 up to :data:`SLOW_RESPONSE_MS`, rising linearly to
  :data:`RESPONSE_PENALTY_MAX` (10) at three times that;
* error rate of the connection's API calls in the last 24 h (the request log,
  ``external_api_requests``; the health checks' own calls, operation ``health.check``, left out):
  ``round(20 × failed / calls)``; 0 without calls.

Status: **UNHEALTHY** when any check FAILed (or was blocked) or the score is below 50;
**DEGRADED** when any check WARNed or the score is below 80; **HEALTHY** otherwise.

Availability and performance
----------------------------
Availability over 24 h / 7 d / 30 d is the share of the connection's checks in the window whose
status was not UNHEALTHY (count-based: every check weighs the same; checks run at a fixed interval,
so this approximates the share of time); ``null`` without checks in the window. Performance is
read from the request log over the last 24 h (health check calls left out):
``averageResponseTime`` (mean call duration in ms), ``throughput`` (calls per minute),
``errorRate`` (failed / calls; ``null`` without calls), and ``availability`` (the 24 h figure
above).

Transitions and events
----------------------
Each check stores a history row and updates the connection's ``health_status``, ``health_score``,
``last_health_check_at`` and ``next_health_check_at`` with a compare-and-set on the stored status,
so concurrent checks of one connection see each transition exactly once. Going to UNHEALTHY from
anything else (no status included) publishes ``connection.unhealthy``; going from UNHEALTHY to
HEALTHY or DEGRADED publishes ``connection.recovered``. Both are operational events for the
tenant's endpoints that list the type explicitly (like ``connection.expired``), written in the
same transaction; every status change is audited (``connection.health_changed``), and so is every
check run on demand (``connection.health_checked``).

A connection that cannot be called (DISABLED, REVOKED, or an OAuth2 authorization-code
connection never authorized) is not checked: :meth:`HealthChecker.run` refuses it with 409
``connection-unavailable`` before any network traffic.

Scheduling and retention
------------------------
The ``connections.health`` job (every minute, :func:`run_due`) checks ACTIVE connections whose
``next_health_check_at`` is due (a connection never checked is due one default interval after it
was created; ``POST .../health-checks`` checks it at once), at most :data:`MAX_PER_RUN` per run,
:data:`CONCURRENCY` at a time. Each of the run's :data:`CONCURRENCY` slots claims one connection
when it is free to check it, by moving its ``next_health_check_at`` to the end of a claim
(compare-and-set): :data:`CLAIM_SECONDS`, or the interval when shorter. So several workers never
check a connection twice, and a worker killed mid-run leaves only the connections it was checking
claimed, due again when their claim ends (not one interval later). A scheduled check that is still
running :data:`CLAIM_MARGIN_SECONDS` before its claim ends is cut off: the check in progress is
stored as failed ("no result within ... s") and the rest as not run. The stored check sets the
next time one interval ahead. The interval is ``connection_health_interval_seconds`` (default
300), or the connection's ``metadata.healthCheckIntervalSeconds`` (60–86400). History older than
``connection_health_retention_days`` (default 30, at least 30) is purged by the daily retention job
(:func:`purge_history`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import sqlalchemy as sa
import structlog
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.connections.models import (
    CheckStatus,
    HealthCheckTrigger,
    IntegrationConnection,
    IntegrationHealthCheck,
    IntegrationHealthStatus,
)
from interlink.connections.schemas import IntegrationProviderExtended
from interlink.connections.service import Connections, render
from interlink.core import audit
from interlink.core.actor import Actor, system_actor
from interlink.core.clock import as_utc, utcnow
from interlink.core.db import Database
from interlink.core.enums import IntegrationConnectionStatus
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.ids import is_id, min_id_at, new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.core.purge import purge_in_batches
from interlink.core.secrets import SecretStore
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.transport import TransportError
from interlink.webhooks import operational, ssrf

if TYPE_CHECKING:
    from interlink.core.purge import BatchHook
    from interlink.runtime import Runtime

log = structlog.get_logger(__name__)

H = IntegrationHealthStatus
CHECK_PREFIX: Final = "hc"
CONNECTION_PREFIX: Final = "conn"
WEIGHTS: Final[Mapping[str, int]] = {"dns": 15, "tcp": 15, "tls": 10, "http": 60}
TLS_WARN_DAYS: Final = 14
SLOW_RESPONSE_MS: Final = 2000.0
RESPONSE_PENALTY_MAX: Final = 10
ERROR_RATE_PENALTY_MAX: Final = 20
UNHEALTHY_BELOW: Final = 50
DEGRADED_BELOW: Final = 80
CONNECT_TIMEOUT_SECONDS: Final = 5.0
TLS_TIMEOUT_SECONDS: Final = 10.0
HTTP_TIMEOUT_SECONDS: Final = 15.0
MAX_PER_RUN: Final = 200
CONCURRENCY: Final = 4
CLAIM_SECONDS: Final = 120
"""How long a scheduled check holds its connection (at most one interval)."""
CLAIM_MARGIN_SECONDS: Final = 15
"""A scheduled check is cut off this long before its claim ends, so it never outlives it."""
CHECK_NAMES: Final = ("dns", "tcp", "tls", "http")
MIN_INTERVAL_SECONDS: Final = 60
MAX_INTERVAL_SECONDS: Final = 86_400
MAX_PATH_CHARS: Final = 500
PERFORMANCE_WINDOW: Final = timedelta(hours=24)
AVAILABILITY_WINDOWS: Final[Mapping[str, timedelta]] = {
    "last24Hours": timedelta(hours=24),
    "last7Days": timedelta(days=7),
    "last30Days": timedelta(days=30),
}
ID_CLOCK_SLACK: Final = timedelta(minutes=10)
UNHEALTHY_EVENT: Final = "connection.unhealthy"
RECOVERED_EVENT: Final = "connection.recovered"
SCHEDULED_STATUSES: Final = (IntegrationConnectionStatus.ACTIVE,)
CAS_ATTEMPTS: Final = 5
OPERATION: Final = "health.check"
"""The request log's ``operation`` of the HTTP check's call (left out of the error rate)."""
PURGE_BATCH: Final = 5000


@dataclass(frozen=True)
class CheckResult:
    """One check. ``blocked``: not run because an earlier check failed (scored as a failure)."""

    name: str
    status: CheckStatus
    duration_ms: float
    message: str
    blocked: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "duration": round(self.duration_ms, 1),
            "message": self.message[:500],
        }


@dataclass
class ProbeReport:
    """What the probes found (before scoring and storing)."""

    checks: list[CheckResult] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    target: str | None = None
    secure: bool = False
    tls_valid: bool | None = None
    tls_expires_at: datetime | None = None
    http_status: int | None = None
    response_time_ms: float | None = None

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def error(self) -> str | None:
        """The first failure's message (``name: message``), if any."""
        for check in self.checks:
            if check.status is CheckStatus.FAIL:
                return f"{check.name}: {check.message}"[:1000]
        return None

    def connectivity(self) -> dict[str, Any]:
        def passed(name: str) -> bool:
            found = self.check(name)
            return found is not None and found.status in (CheckStatus.PASS, CheckStatus.WARN)

        return {
            "dnsResolution": passed("dns"),
            "tcpConnection": passed("tcp"),
            "tlsHandshake": bool(self.tls_valid) if self.secure else None,
            "httpResponse": self.http_status is not None,
            "httpStatus": self.http_status,
            "addresses": self.addresses[:10],
            "target": self.target,
        }


@dataclass(frozen=True)
class RequestStats:
    """The connection's calls in the performance window (the request log)."""

    count: int
    failed: int
    average_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.count if self.count else None

    @property
    def throughput_per_minute(self) -> float:
        return self.count / (PERFORMANCE_WINDOW.total_seconds() / 60)


@dataclass(frozen=True)
class HealthSummary:
    """``GET /v1/connections/{id}/health``."""

    connection: IntegrationConnection
    last_check: IntegrationHealthCheck | None
    availability: dict[str, float | None]
    performance: dict[str, Any]


# -- score and verdict (pure) ----------------------------------------------------------------------


def check_penalty(check: CheckResult) -> float:
    weight = WEIGHTS.get(check.name, 0)
    if check.status is CheckStatus.FAIL or (check.status is CheckStatus.SKIP and check.blocked):
        return float(weight)
    if check.status is CheckStatus.WARN:
        return weight / 2
    return 0.0


def response_penalty(response_time_ms: float | None) -> float:
    """0 up to :data:`SLOW_RESPONSE_MS`, linear to :data:`RESPONSE_PENALTY_MAX` at three times it."""
    if response_time_ms is None or response_time_ms <= SLOW_RESPONSE_MS:
        return 0.0
    over = (response_time_ms - SLOW_RESPONSE_MS) / (2 * SLOW_RESPONSE_MS)
    return RESPONSE_PENALTY_MAX * min(1.0, over)


def error_rate_penalty(error_rate: float | None) -> float:
    if error_rate is None:
        return 0.0
    return float(round(ERROR_RATE_PENALTY_MAX * min(1.0, max(0.0, error_rate))))


def health_score(
    checks: Iterable[CheckResult], response_time_ms: float | None, error_rate: float | None
) -> int:
    """The documented 0–100 score (see the module doc)."""
    penalty = sum(check_penalty(c) for c in checks)
    penalty += response_penalty(response_time_ms) + error_rate_penalty(error_rate)
    return int(max(0, min(100, round(100 - penalty))))


def verdict(checks: Sequence[CheckResult], score: int) -> IntegrationHealthStatus:
    """UNHEALTHY on a failed (or blocked) check or a score below 50; DEGRADED on a warning or a
    score below 80; else HEALTHY."""
    failed = any(c.status is CheckStatus.FAIL or (c.status is CheckStatus.SKIP and c.blocked) for c in checks)
    if failed or score < UNHEALTHY_BELOW:
        return H.UNHEALTHY
    if score < DEGRADED_BELOW or any(c.status is CheckStatus.WARN for c in checks):
        return H.DEGRADED
    return H.HEALTHY


def tls_verdict(verified: bool, expires_at: datetime | None, now: datetime, problem: str = "") -> CheckResult:
    """The ``tls`` check from a handshake's outcome (duration filled in by the caller)."""
    when = expires_at.date().isoformat() if expires_at is not None else "unknown"
    if expires_at is not None and expires_at <= now:
        return CheckResult("tls", CheckStatus.FAIL, 0.0, f"certificate expired on {when}")
    if not verified:
        return CheckResult(
            "tls",
            CheckStatus.FAIL,
            0.0,
            f"certificate is not valid: {problem or 'unknown reason'} (expires {when})",
        )
    if expires_at is None:
        return CheckResult("tls", CheckStatus.PASS, 0.0, "certificate valid")
    days = (expires_at - now).total_seconds() / 86_400
    if days < TLS_WARN_DAYS:
        return CheckResult("tls", CheckStatus.WARN, 0.0, f"certificate expires in {days:.1f} days ({when})")
    return CheckResult("tls", CheckStatus.PASS, 0.0, f"certificate valid until {when}")


def availability_ratio(total: int, not_unhealthy: int) -> float | None:
    """Share of checks that were not UNHEALTHY; None without checks."""
    return round(not_unhealthy / total, 6) if total else None


def interval_for(meta: Mapping[str, Any] | None, default_seconds: int) -> timedelta:
    """The connection's check interval: ``metadata.healthCheckIntervalSeconds`` when valid."""
    value = (meta or {}).get("healthCheckIntervalSeconds")
    if not isinstance(value, int) or isinstance(value, bool):
        return timedelta(seconds=default_seconds)
    if MIN_INTERVAL_SECONDS <= value <= MAX_INTERVAL_SECONDS:
        return timedelta(seconds=value)
    return timedelta(seconds=default_seconds)


def _configured_path(conn: IntegrationConnection) -> str | None:
    for source in (conn.meta or {}, conn.config or {}):
        value = source.get("healthCheckPath")
        if value is not None:
            return value if isinstance(value, str) else ""
    return None


def _valid_path(path: str) -> bool:
    return (
        0 < len(path) <= MAX_PATH_CHARS
        and path.startswith("/")
        and not path.startswith("//")
        and "://" not in path
        and not any(ch.isspace() or ord(ch) < 0x20 for ch in path)
    )


def _json_holds(data: Any, expected: Mapping[str, Any]) -> str | None:
    """None when the JSON answer holds every expected field, else what is missing."""
    if not isinstance(data, dict):
        return "the answer is not a JSON object"
    for name, value in expected.items():
        if data.get(name) != value:
            return f"the answer's {name!r} is {data.get(name)!r}, expected {value!r}"
    return None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# -- the checker -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpPlan:
    """The HTTP check to make (see the module doc)."""

    method: str
    path: str
    headers: dict[str, str]
    expected: frozenset[int] | None
    """Statuses that pass; None: 2xx/3xx (configured path); unauthenticated: below 500."""
    expect_json: dict[str, Any] | None
    authenticated: bool
    description: str


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None
    duration_ms: float
    data: Any = None
    error: str | None = None
    held_back: bool = False
    """Not sent: the provider's 429 blocks the connection (or no rate-limit slot freed in time)."""


class HealthChecker:
    """Runs, stores and reports connection health checks (no state of its own but wiring)."""

    def __init__(self, runtime: Runtime, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.runtime = runtime
        self.db: Database = runtime.db
        self.connections = Connections(runtime.providers, SecretStore.from_runtime(runtime))
        self.allowed_networks = list(runtime.allowed_target_networks)
        self._ssl_context = ssl_context

    @property
    def interval_seconds(self) -> int:
        return int(self.runtime.settings.connection_health_interval_seconds)

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        custom = getattr(self.runtime.transport, "ssl_context", None)
        if isinstance(custom, ssl.SSLContext):
            return custom
        self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def base_url(self, provider: IntegrationProviderExtended, conn: IntegrationConnection) -> str:
        from interlink.connections.client import api_base_url

        return api_base_url(provider, conn)

    async def _connection(
        self, session: AsyncSession, actor: Actor, connection_id: str
    ) -> IntegrationConnection:
        """The tenant's connection; 404 for anything else (an id of another form is not looked up:
        PostgreSQL cannot compare a NUL character)."""
        if not is_id(connection_id, CONNECTION_PREFIX):
            raise NotFound(f"connection {connection_id} not found")
        return await self.connections.get(session, actor, connection_id)

    # -- probes ------------------------------------------------------------------------------------

    async def probe(
        self, actor: Actor, conn: IntegrationConnection, report: ProbeReport | None = None
    ) -> ProbeReport:
        """Run the four checks against ``conn`` (never raises for a failing target), adding them to
        ``report`` as each ends (so a caller that cuts the probe off keeps what was found)."""
        report = report if report is not None else ProbeReport()
        try:
            provider = self.connections.provider(conn.provider_key)
            base_url = self.base_url(provider, conn)
        except ValidationFailed as exc:
            report.checks.append(CheckResult("dns", CheckStatus.FAIL, 0.0, f"no base URL: {exc.detail}"))
            self._block(report, ("tcp", "tls", "http"), "dns")
            return report
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        report.secure = parts.scheme.lower() == "https"
        port = parts.port or (443 if report.secure else 80)
        report.target = f"{host}:{port}"

        started = time.perf_counter()
        try:
            addresses = await ssrf.check_target(base_url, self.allowed_networks)
        except ssrf.TargetRefused as exc:
            if exc.reason == "unresolvable":
                message = f"{host!r} does not resolve: {exc.detail}"
            else:
                message = f"refused by the outbound target guard ({exc.reason}): {exc.detail}"
            report.checks.append(CheckResult("dns", CheckStatus.FAIL, _ms(started), message))
            self._block(report, ("tcp", "tls", "http"), "dns")
            return report
        report.addresses = [str(a) for a in addresses]
        report.checks.append(
            CheckResult("dns", CheckStatus.PASS, _ms(started), f"{host} → {', '.join(report.addresses[:5])}")
        )

        tcp, address = await self._tcp(addresses, port)
        report.checks.append(tcp)
        if address is None:
            self._block(report, ("tls", "http"), "tcp")
            return report

        if report.secure:
            tls = await self._tls(address, port, host, report)
            report.checks.append(tls)
            if tls.status is CheckStatus.FAIL:
                self._block(report, ("http",), "tls")
                return report
        else:
            report.checks.append(CheckResult("tls", CheckStatus.SKIP, 0.0, "not https"))

        report.checks.append(await self._http(actor, conn, provider, base_url, report))
        return report

    @staticmethod
    def cut_off(report: ProbeReport, seconds: float) -> None:
        """Complete a probe stopped after ``seconds``: the check in progress FAILs, later ones are
        blocked."""
        done = {c.name for c in report.checks}
        missing = [name for name in CHECK_NAMES if name not in done]
        if not missing:
            return
        message = f"no result within {seconds:g} s (the scheduled check was cut off)"
        report.checks.append(CheckResult(missing[0], CheckStatus.FAIL, seconds * 1000.0, message))
        HealthChecker._block(report, missing[1:], missing[0])

    @staticmethod
    def _block(report: ProbeReport, names: Iterable[str], failed: str) -> None:
        for name in names:
            report.checks.append(
                CheckResult(name, CheckStatus.SKIP, 0.0, f"not run: the {failed} check failed", blocked=True)
            )

    async def _tcp(
        self, addresses: Sequence[ssrf.IPAddress], port: int
    ) -> tuple[CheckResult, ssrf.IPAddress | None]:
        started = time.perf_counter()
        problems: list[str] = []
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    _reader, writer = await asyncio.open_connection(str(address), port)
            except TimeoutError:
                problems.append(f"{address}:{port} did not accept within {CONNECT_TIMEOUT_SECONDS:g} s")
                continue
            except OSError as exc:
                problems.append(f"{address}:{port} refused the connection ({exc.strerror or exc})")
                continue
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer.wait_closed()
            return CheckResult(
                "tcp", CheckStatus.PASS, _ms(started), f"connected to {address}:{port}"
            ), address
        return CheckResult("tcp", CheckStatus.FAIL, _ms(started), "; ".join(problems)[:500]), None

    async def _tls(
        self, address: ssrf.IPAddress, port: int, hostname: str, report: ProbeReport
    ) -> CheckResult:
        started = time.perf_counter()
        verified = False
        problem = ""
        der: bytes | None = None
        try:
            der = await self._handshake(address, port, hostname, self.ssl_context())
            verified = True
        except ssl.SSLCertVerificationError as exc:
            problem = str(exc.verify_message or exc.reason or exc)
            with contextlib.suppress(Exception):
                der = await self._handshake(address, port, hostname, _unverified_context())
        except ssl.SSLError as exc:
            problem = f"handshake failed: {exc.reason or exc}"
        except TimeoutError:
            problem = f"no handshake within {TLS_TIMEOUT_SECONDS:g} s"
        except OSError as exc:
            problem = f"handshake failed: {exc.strerror or exc}"
        expires_at: datetime | None = None
        if der:
            with contextlib.suppress(ValueError):
                expires_at = x509.load_der_x509_certificate(der).not_valid_after_utc
        report.tls_valid = verified and (expires_at is None or expires_at > utcnow())
        report.tls_expires_at = expires_at
        result = tls_verdict(verified, expires_at, utcnow(), problem)
        return CheckResult("tls", result.status, _ms(started), result.message)

    @staticmethod
    async def _handshake(
        address: ssrf.IPAddress, port: int, hostname: str, context: ssl.SSLContext
    ) -> bytes | None:
        family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
        async with asyncio.timeout(TLS_TIMEOUT_SECONDS):
            _reader, writer = await asyncio.open_connection(
                str(address), port, ssl=context, server_hostname=hostname, family=family
            )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    def http_plan(self, conn: IntegrationConnection, provider: IntegrationProviderExtended) -> HttpPlan:
        """Which HTTP check ``conn`` gets (see the module doc); 422 naming the field for a bad path."""
        verification = provider.verification
        if verification is not None:
            from interlink.connections.client import connection_headers

            return HttpPlan(
                method=verification.method,
                path=render(verification.path, conn.config or {}, provider),
                # its own headers; the provider's request_headers are added by the connection client
                headers=connection_headers(provider, conn, verification.headers),
                expected=frozenset(verification.expected_status),
                expect_json=dict(verification.expect_json) if verification.expect_json else None,
                authenticated=True,
                description=f"verification call {verification.method} {verification.path}",
            )
        path = _configured_path(conn)
        if path is not None:
            if not _valid_path(path):
                raise ValidationFailed(
                    "metadata.healthCheckPath must be a path starting with / (at most 500 characters)",
                    field="metadata.healthCheckPath",
                )
            return HttpPlan("GET", path, {}, None, None, True, f"configured path GET {path}")
        return HttpPlan("GET", "", {}, None, None, False, "GET of the base URL without credentials")

    async def _http(
        self,
        actor: Actor,
        conn: IntegrationConnection,
        provider: IntegrationProviderExtended,
        base_url: str,
        report: ProbeReport,
    ) -> CheckResult:
        try:
            plan = self.http_plan(conn, provider)
        except ValidationFailed as exc:
            return CheckResult("http", CheckStatus.FAIL, 0.0, exc.detail)
        if plan.authenticated:
            answer = await self.send_authenticated(actor, conn.id, plan)
        else:
            answer = await self.send_plain(base_url, plan)
        report.http_status = answer.status
        if answer.held_back:
            message = f"{plan.description} was not sent (rate limited): {answer.error}"
            return CheckResult("http", CheckStatus.WARN, answer.duration_ms, message[:500])
        if answer.status is None:
            return CheckResult("http", CheckStatus.FAIL, answer.duration_ms, answer.error or "no answer")
        report.response_time_ms = round(answer.duration_ms, 1)
        said = f"{plan.description} answered {answer.status} in {answer.duration_ms:.0f} ms"
        if answer.status == 429:
            return CheckResult("http", CheckStatus.WARN, answer.duration_ms, f"{said} (rate limited)")
        if plan.expected is not None:
            passed = answer.status in plan.expected
            wanted = "expected " + ", ".join(str(s) for s in sorted(plan.expected))
        elif plan.authenticated:
            passed = 200 <= answer.status < 400
            wanted = "expected 2xx or 3xx"
        else:
            passed = answer.status < 500
            wanted = "expected an answer below 500"
        if not passed:
            return CheckResult("http", CheckStatus.FAIL, answer.duration_ms, f"{said}, {wanted}")
        if plan.expect_json:
            missing = _json_holds(answer.data, plan.expect_json)
            if missing is not None:
                return CheckResult("http", CheckStatus.FAIL, answer.duration_ms, f"{said}, but {missing}")
        if answer.duration_ms > SLOW_RESPONSE_MS:
            return CheckResult(
                "http", CheckStatus.WARN, answer.duration_ms, f"{said} (slow: over {SLOW_RESPONSE_MS:.0f} ms)"
            )
        return CheckResult("http", CheckStatus.PASS, answer.duration_ms, said)

    async def send_authenticated(self, actor: Actor, connection_id: str, plan: HttpPlan) -> HttpAnswer:
        """The call through the connection (credentials injected, one attempt, logged)."""
        from interlink.connections.client import ConnectionClients
        from interlink.outbound.config import RetryPolicy
        from interlink.outbound.request import ApiEndpointConfig, ApiRequestBuilder
        from interlink.outbound.response import OutboundError

        started = time.perf_counter()
        try:
            client = await ConnectionClients.from_runtime(self.runtime).open(
                actor,
                connection_id,
                retry=RetryPolicy(max_attempts=1, max_retry_after_seconds=0.0),
                log_requests=True,
                timeout_seconds=HTTP_TIMEOUT_SECONDS,
            )
            builder = ApiRequestBuilder(ApiEndpointConfig(path=plan.path, method=plan.method, name=OPERATION))
            if plan.headers:
                builder = builder.with_headers(plan.headers)
            response = await client.request(builder)
        except OutboundError as exc:
            if exc.error_class == "rate_limited":
                return HttpAnswer(None, _ms(started), error=exc.message[:400], held_back=True)
            return HttpAnswer(None, _ms(started), error=f"no answer ({exc.error_class}): {exc.message}"[:500])
        except ValidationFailed as exc:
            return HttpAnswer(None, _ms(started), error=f"the request is not valid: {exc.detail}"[:500])
        except InterlinkError as exc:  # not found, unavailable (e.g. a refused token refresh), ...
            return HttpAnswer(None, _ms(started), error=f"cannot call the provider: {exc.detail}"[:500])
        # The attempt's own time: waiting out a 429 block or a rate-limit slot is not the provider's.
        elapsed = response.timing.total_ms or response.duration_ms
        return HttpAnswer(response.status, elapsed, data=response.data)

    async def send_plain(self, base_url: str, plan: HttpPlan) -> HttpAnswer:
        """A request without credentials through the process's SSRF-guarded transport."""
        started = time.perf_counter()
        try:
            answer = await self.runtime.transport.send(
                plan.method, base_url, {"Accept": "*/*"}, None, HTTP_TIMEOUT_SECONDS
            )
        except TransportError as exc:
            return HttpAnswer(None, _ms(started), error=f"no answer ({exc.error_class}): {exc.message}"[:500])
        return HttpAnswer(answer.status, answer.duration_ms)

    # -- running and storing -----------------------------------------------------------------------

    async def run(
        self,
        actor: Actor,
        connection_id: str,
        trigger: HealthCheckTrigger = HealthCheckTrigger.MANUAL,
        *,
        deadline_seconds: float | None = None,
    ) -> IntegrationHealthCheck:
        """Check the connection now and store the result (404 for an unknown or foreign id; 409
        ``connection-unavailable``, before any network traffic, for one that cannot be called:
        DISABLED, REVOKED, or an OAuth2 authorization-code connection never authorized). With
        ``deadline_seconds``, probes still running then are cut off (:meth:`cut_off`)."""
        from interlink.connections.client import check_callable

        async with self.db.unit_of_work(write=False) as session:
            conn = await self._connection(session, actor, connection_id)
        check_callable(conn)
        report = ProbeReport()
        if deadline_seconds is None:
            await self.probe(actor, conn, report)
        else:
            try:
                async with asyncio.timeout(deadline_seconds):
                    await self.probe(actor, conn, report)
            except TimeoutError:
                self.cut_off(report, deadline_seconds)
        return await self.record(actor, connection_id, report, trigger)

    async def record(
        self, actor: Actor, connection_id: str, report: ProbeReport, trigger: HealthCheckTrigger
    ) -> IntegrationHealthCheck:
        """Store ``report``; update the connection (compare-and-set); audit and publish transitions."""
        now = utcnow()
        async with self.db.unit_of_work() as session:
            conn = await self._connection(session, actor, connection_id)
            stats = await request_stats(session, conn.tenant_id, conn.id, now)
            score = health_score(report.checks, report.response_time_ms, stats.error_rate)
            status = verdict(report.checks, score)
            row = IntegrationHealthCheck(
                id=new_id(CHECK_PREFIX),
                tenant_id=conn.tenant_id,
                connection_id=conn.id,
                status=status,
                health_score=score,
                response_time_ms=report.response_time_ms,
                checks=[c.as_json() for c in report.checks],
                connectivity=report.connectivity(),
                performance={},
                tls_expires_at=report.tls_expires_at,
                trigger=trigger,
                error=report.error,
                checked_at=now,
            )
            session.add(row)
            await session.flush()
            availability = await availability_for(session, conn.tenant_id, conn.id, now)
            row.performance = performance_json(stats, availability["last24Hours"])
            previous = await self._swap(session, conn, status, score, now)
            if trigger is HealthCheckTrigger.MANUAL:
                audit.record(
                    session,
                    actor,
                    "connection.health_checked",
                    "connection",
                    conn.id,
                    {
                        "checkId": {"old": None, "new": row.id},
                        "healthStatus": {"old": None, "new": status.value},
                        "healthScore": {"old": None, "new": score},
                    },
                )
            if previous is not status:
                audit.record(
                    session,
                    actor,
                    "connection.health_changed",
                    "connection",
                    conn.id,
                    {
                        "healthStatus": {
                            "old": previous.value if previous is not None else None,
                            "new": status.value,
                        },
                        "healthScore": {"old": conn.health_score, "new": score},
                        "checkId": {"old": None, "new": row.id},
                    },
                )
                event_type: str | None = None
                if status is H.UNHEALTHY:
                    event_type = UNHEALTHY_EVENT
                elif previous is H.UNHEALTHY:
                    event_type = RECOVERED_EVENT
                if event_type is not None:
                    await publish(session, conn, event_type, row, previous)
            await session.flush()
        return row

    async def _swap(
        self,
        session: AsyncSession,
        conn: IntegrationConnection,
        status: IntegrationHealthStatus,
        score: int,
        now: datetime,
    ) -> IntegrationHealthStatus | None:
        """Set the connection's health fields if its stored status is still the one read; re-read
        and try again otherwise. Returns the status replaced."""
        C = IntegrationConnection
        where = (C.tenant_id == conn.tenant_id, C.id == conn.id)
        previous = conn.health_status
        values = {
            "health_status": status,
            "health_score": score,
            "last_health_check_at": now,
            "next_health_check_at": now + interval_for(conn.meta, self.interval_seconds),
        }
        for _ in range(CAS_ATTEMPTS):
            same = C.health_status.is_(None) if previous is None else C.health_status == previous
            result = await session.execute(
                sa.update(C).where(*where, same).values(**values).execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                return previous
            found = (await session.execute(sa.select(C.health_status).where(*where))).one_or_none()
            if found is None:
                raise NotFound(f"connection {conn.id} not found")
            previous = found[0]
        raise Conflict(f"connection {conn.id} health changed concurrently; try again")

    # -- queries -----------------------------------------------------------------------------------

    async def history(
        self, session: AsyncSession, actor: Actor, connection_id: str, page: PageRequest
    ) -> Page[IntegrationHealthCheck]:
        """The connection's checks, newest first (404 for an unknown or foreign connection)."""
        await self._connection(session, actor, connection_id)
        R = IntegrationHealthCheck
        stmt = sa.select(R).where(R.tenant_id == actor.tenant_id, R.connection_id == connection_id)
        rows = (await session.scalars(paginate_query(stmt, R.id, page))).all()
        return make_page(rows, page, lambda r: r.id)

    async def get_check(
        self, session: AsyncSession, actor: Actor, connection_id: str, check_id: str
    ) -> IntegrationHealthCheck:
        await self._connection(session, actor, connection_id)
        if not is_id(check_id, CHECK_PREFIX):
            raise NotFound(f"health check {check_id} not found")
        R = IntegrationHealthCheck
        row = await session.scalar(
            sa.select(R).where(
                R.tenant_id == actor.tenant_id, R.connection_id == connection_id, R.id == check_id
            )
        )
        if row is None:
            raise NotFound(f"health check {check_id} not found")
        return row

    async def summary(self, session: AsyncSession, actor: Actor, connection_id: str) -> HealthSummary:
        conn = await self._connection(session, actor, connection_id)
        R = IntegrationHealthCheck
        last = await session.scalar(
            sa.select(R)
            .where(R.tenant_id == actor.tenant_id, R.connection_id == connection_id)
            .order_by(R.id.desc())
            .limit(1)
        )
        now = utcnow()
        availability = await availability_for(session, conn.tenant_id, conn.id, now)
        stats = await request_stats(session, conn.tenant_id, conn.id, now)
        return HealthSummary(conn, last, availability, performance_json(stats, availability["last24Hours"]))


# -- shared queries --------------------------------------------------------------------------------


async def request_stats(
    session: AsyncSession, tenant_id: str, connection_id: str, now: datetime
) -> RequestStats:
    """Calls through the connection in the last 24 h (the request log), the health checks' own
    calls left out (they are scored by the ``http`` check already)."""
    R = ExternalApiRequest
    since = now - PERFORMANCE_WINDOW
    row = (
        await session.execute(
            sa.select(
                sa.func.count().label("n"),
                sa.func.sum(sa.case((R.error_class.is_not(None), 1), else_=0)).label("failed"),
                sa.func.avg(R.duration_ms).label("avg"),
            ).where(
                R.tenant_id == tenant_id,
                R.connection_id == connection_id,
                R.id >= min_id_at("apr", since - ID_CLOCK_SLACK),
                R.created_at >= since,
                R.created_at < now + ID_CLOCK_SLACK,
                sa.or_(R.operation.is_(None), R.operation != OPERATION),
            )
        )
    ).one()
    count = int(row.n or 0)
    average = float(row.avg) if row.avg is not None and count else None
    return RequestStats(count=count, failed=int(row.failed or 0), average_ms=average)


async def availability_for(
    session: AsyncSession, tenant_id: str, connection_id: str, now: datetime
) -> dict[str, float | None]:
    """Availability per window (see the module doc), one query."""
    R = IntegrationHealthCheck
    longest = max(AVAILABILITY_WINDOWS.values())
    columns: list[Any] = []
    for name, window in AVAILABILITY_WINDOWS.items():
        inside = R.checked_at >= now - window
        columns.append(sa.func.sum(sa.case((inside, 1), else_=0)).label(f"{name}_n"))
        columns.append(
            sa.func.sum(sa.case((sa.and_(inside, R.status != H.UNHEALTHY), 1), else_=0)).label(f"{name}_ok")
        )
    row = (
        await session.execute(
            sa.select(*columns).where(
                R.tenant_id == tenant_id,
                R.connection_id == connection_id,
                R.checked_at >= now - longest,
                R.checked_at <= now,
            )
        )
    ).one()
    values = row._mapping
    return {
        name: availability_ratio(int(values[f"{name}_n"] or 0), int(values[f"{name}_ok"] or 0))
        for name in AVAILABILITY_WINDOWS
    }


def performance_json(stats: RequestStats, availability: float | None) -> dict[str, Any]:
    return {
        "averageResponseTime": round(stats.average_ms, 1) if stats.average_ms is not None else None,
        "throughput": round(stats.throughput_per_minute, 4),
        "errorRate": round(stats.error_rate, 6) if stats.error_rate is not None else None,
        "availability": availability,
        "requestCount": stats.count,
    }


# -- operational events ----------------------------------------------------------------------------


async def publish(
    session: AsyncSession,
    conn: IntegrationConnection,
    event_type: str,
    check: IntegrationHealthCheck,
    previous: IntegrationHealthStatus | None,
) -> str | None:
    """Write ``connection.unhealthy``/``connection.recovered`` for the explicit subscribers."""
    payload = {
        "connectionId": conn.id,
        "providerKey": conn.provider_key,
        "environment": conn.environment.value,
        "name": conn.name,
        "status": conn.status.value,
        "healthStatus": check.status.value,
        "previousHealthStatus": previous.value if previous is not None else None,
        "healthScore": check.health_score,
        "checkId": check.id,
        "checkedAt": as_utc(check.checked_at).isoformat(),
        "reason": check.error or "every check passed",
    }
    return await operational.publish(session, conn.tenant_id, event_type, payload)


# -- the scheduled job and retention ---------------------------------------------------------------


def claim_seconds(meta: Mapping[str, Any] | None, default_interval_seconds: int) -> float:
    """How long a scheduled check holds the connection: :data:`CLAIM_SECONDS`, at most one interval."""
    return min(float(CLAIM_SECONDS), interval_for(meta, default_interval_seconds).total_seconds())


async def claim_due(
    db: Database, now: datetime, default_interval_seconds: int, limit: int = MAX_PER_RUN
) -> list[tuple[str, str, float]]:
    """Up to ``limit`` connections due for a scheduled check, each claimed by moving its
    ``next_health_check_at`` to the end of its claim (compare-and-set); ``(id, tenant id, claim
    seconds)`` each. Fewer when other workers claim the same ones first."""
    C = IntegrationConnection
    first_due = now - timedelta(seconds=default_interval_seconds)
    due = sa.or_(
        sa.and_(C.next_health_check_at.is_(None), C.created_at <= first_due),
        C.next_health_check_at <= now,
    )
    async with db.unit_of_work(write=False) as session:
        rows = (
            await session.execute(
                sa.select(C.id, C.tenant_id, C.meta)
                .where(C.status.in_(list(SCHEDULED_STATUSES)), due)
                .order_by(sa.nulls_first(C.next_health_check_at.asc()), C.id)
                .limit(limit + CONCURRENCY)  # a few spare ones for claims lost to other workers
            )
        ).all()
    claimed: list[tuple[str, str, float]] = []
    if not rows:
        return claimed
    async with db.unit_of_work() as session:
        for connection_id, tenant_id, meta in rows:
            seconds = claim_seconds(meta, default_interval_seconds)
            result = await session.execute(
                sa.update(C)
                .where(C.id == connection_id, due)
                .values(next_health_check_at=now + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.append((connection_id, tenant_id, seconds))
                if len(claimed) >= limit:
                    break
    return claimed


async def run_due(
    runtime: Runtime, *, limit: int = MAX_PER_RUN, concurrency: int = CONCURRENCY
) -> dict[str, int]:
    """The ``connections.health`` job: check the due connections (see the module doc). Each slot
    claims the next due connection only when it is free to check it."""
    checker = HealthChecker(runtime)
    counts = {"due": 0, "checked": 0, "failed": 0}

    async def slot() -> None:
        while counts["due"] < limit:
            counts["due"] += 1  # reserved before the claim: the slots together stay within limit
            claimed = await claim_due(runtime.db, utcnow(), checker.interval_seconds, 1)
            if not claimed:
                counts["due"] -= 1
                return
            connection_id, tenant_id, seconds = claimed[0]
            try:
                await checker.run(
                    system_actor(tenant_id),
                    connection_id,
                    HealthCheckTrigger.SCHEDULED,
                    deadline_seconds=max(1.0, seconds - CLAIM_MARGIN_SECONDS),
                )
                counts["checked"] += 1
            except Exception as exc:  # one connection must not stop the others
                counts["failed"] += 1
                log.warning(
                    "connection_health_check_failed", connection_id=connection_id, error=str(exc)[:500]
                )

    await asyncio.gather(*(slot() for _ in range(max(1, concurrency))))
    return counts


async def purge_history(
    db: Database, retention_days: int, on_batch: BatchHook | None = None
) -> dict[str, int]:
    """Delete health checks older than ``retention_days`` in batches (each its own transaction, in
    which ``on_batch`` gets the batch's rows per tenant); counts per tenant."""
    cutoff = utcnow() - timedelta(days=retention_days)
    condition = IntegrationHealthCheck.checked_at < cutoff
    return await purge_in_batches(
        db, IntegrationHealthCheck, condition, on_batch=on_batch, batch_size=PURGE_BATCH
    )


def _unverified_context() -> ssl.SSLContext:
    """Only to read an invalid certificate's dates after verification failed; nothing is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

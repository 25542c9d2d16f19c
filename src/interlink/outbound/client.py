"""The outbound API client: pooled, rate-limited, retried, circuit-broken and logged calls.

:class:`OutboundService` is the process-wide part (one per :class:`~interlink.runtime.Runtime`):
one pooled :class:`~interlink.outbound.transport.HttpTransport` per provider origin
(``scheme://host:port``; ``limit_per_host`` = the first client's ``max_connections``), the rate
limiter and 429 blocks (:mod:`interlink.outbound.limiting`, shared through Redis when configured),
a circuit breaker and a retry budget per connection (:mod:`interlink.outbound.resilience`), and the
request log writer (:mod:`interlink.outbound.log`). :meth:`OutboundService.client` hands out an
:class:`ApiClient` bound to one :class:`~interlink.outbound.config.ApiClientConfig`; clients are
cheap and share everything above.

One call (:meth:`ApiClient.request`)
------------------------------------
1. The request is built and validated (:mod:`interlink.outbound.request`).
2. Before every attempt: wait out a 429 block of the connection (ending the call ``rate_limited``
   if it lasts longer than ``retry.max_retry_after_seconds``); take a slot of the connection's
   and the host's rate limits (``rate_limited`` if none frees within ``max_wait_seconds``); ask
   the circuit breaker (``circuit_open``: nothing sent). A retry held back by any of these ends
   the call with the answer it has (``error_class`` says why it was not retried).
3. The attempt goes through the SSRF-guarded transport with timing (DNS, connect, TLS, first
   byte, total; ``reused`` for a pooled connection).
4. Retries (at most ``retry.max_attempts`` attempts) on network errors ``timeout``, ``connect``,
   ``dns`` and on ``retry.retry_statuses`` (429, 5xx but 501/505, 408), after exponential backoff
   with full jitter or the answer's ``Retry-After``. A request that is not idempotent (POST or
   PATCH without an ``Idempotency-Key`` and not marked idempotent) is retried only when the
   failure happened before a connection was obtained (nothing can have reached the server).
   Every retry is taken from the connection's retry budget; when it is spent the call ends
   (``budget_exhausted``).
5. A 429 blocks the connection for its ``Retry-After`` (or for the rate-limit reset when the
   provider says nothing remains) in every worker and process.
6. The call's outcome is logged once (one row, ``attempts`` counted) and counted in Prometheus.

Any HTTP answer ends as an :class:`~interlink.outbound.response.ApiResponse` (``error_class`` set
for non-2xx; :meth:`ApiResponse.raise_for_status` turns it into an exception); a call without an
answer raises :class:`~interlink.outbound.response.OutboundError`.

Batches (:meth:`ApiClient.batch`) run requests with bounded concurrency: ``collect_all`` returns
one result per request in order (an ``ApiResponse`` or an ``OutboundError``); ``fail_fast`` stops
at the first failure (an error or a non-2xx answer), cancels what is in flight (logged as
``cancelled``), starts nothing more, and raises :class:`BatchFailed`.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from interlink.core.clock import utcnow
from interlink.core.context import correlation_id_var
from interlink.core.db import Database
from interlink.core.ids import new_id
from interlink.outbound import metrics
from interlink.outbound.config import RETRYABLE_ERRORS, ApiClientConfig, RateLimit
from interlink.outbound.limiting import OutboundLimiter, RateLimitWaitExceeded
from interlink.outbound.log import LogEntry, RequestLogWriter, redact_url
from interlink.outbound.request import (
    NO_BODY,
    ApiEndpointConfig,
    ApiRequestBuilder,
    PathValue,
    PreparedRequest,
    QueryValue,
)
from interlink.outbound.resilience import CircuitBreaker, CircuitSnapshot, RetryBudget
from interlink.outbound.response import (
    ApiResponse,
    ApiTiming,
    OutboundError,
    RateLimitInfo,
    parse_rate_limit,
    parse_retry_after,
)
from interlink.outbound.transport import AttemptTrace, HttpTransport, Network, TransportError

log = structlog.get_logger(__name__)

ID_PREFIX: Final = "apr"
BREAKER_FAILURES: Final = frozenset({"timeout", "connect", "dns", "tls"})
BatchMode = Literal["collect_all", "fail_fast"]
BatchResult = ApiResponse | OutboundError


def _error_class_for(status: int) -> str | None:
    if status < 400:
        return None
    if status == 429:
        return "rate_limited"
    return "http_5xx" if status >= 500 else "http_4xx"


class OutboundService:
    """Process-wide outbound machinery (see the module doc). ``start`` runs the log writer;
    ``close`` flushes the log and closes every pool."""

    def __init__(
        self,
        *,
        db: Database | None = None,
        redis_url: str = "",
        allowed_networks: Sequence[Network] = (),
        ssl_context: ssl.SSLContext | None = None,
        log_flush_seconds: float = 0.5,
        log_batch_rows: int = 500,
        rng: random.Random | None = None,
    ) -> None:
        self.allowed_networks = list(allowed_networks)
        self.ssl_context = ssl_context
        self.limiter = OutboundLimiter(redis_url)
        self.log = (
            RequestLogWriter(db, flush_seconds=log_flush_seconds, batch_rows=log_batch_rows)
            if db is not None
            else None
        )
        self.rng = rng or random.Random()
        self._pools: dict[str, HttpTransport] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._budgets: dict[str, RetryBudget] = {}
        metrics.track(self)

    # -- shared state ---------------------------------------------------------------------------

    def client(self, config: ApiClientConfig) -> ApiClient:
        return ApiClient(self, config)

    def pool(self, origin: str, config: ApiClientConfig) -> HttpTransport:
        """The pooled transport of ``origin`` (created on first use)."""
        pool = self._pools.get(origin)
        if pool is None:
            pool = HttpTransport(
                allowed_networks=self.allowed_networks,
                limit=max(config.max_connections, 1),
                limit_per_host=config.max_connections,
                max_body_bytes=config.max_response_bytes,
                traced=True,
                ssl_context=self.ssl_context,
            )
            self._pools[origin] = pool
        return pool

    @property
    def pools(self) -> Mapping[str, HttpTransport]:
        return self._pools

    def breaker(self, key: str, config: ApiClientConfig) -> CircuitBreaker | None:
        if config.circuit_breaker is None:
            return None
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(key, config.circuit_breaker, provider_key=config.provider_key)
            self._breakers[key] = breaker
        return breaker

    def budget(self, key: str, config: ApiClientConfig) -> RetryBudget | None:
        if config.retry_budget is None:
            return None
        budget = self._budgets.get(key)
        if budget is None:
            budget = RetryBudget(config.retry_budget)
            self._budgets[key] = budget
        return budget

    def circuit(self, key: str) -> CircuitSnapshot | None:
        """The breaker state of a connection (or tenant@host) in this process, if it has one."""
        breaker = self._breakers.get(key)
        return breaker.snapshot() if breaker is not None else None

    def circuits(self) -> list[CircuitSnapshot]:
        return [b.snapshot() for b in self._breakers.values()]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.log is not None:
            self.log.start()

    async def close(self) -> None:
        """Flush the request log, close every pooled connection and the shared-store client."""
        if self.log is not None:
            await self.log.close()
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()
        await self.limiter.close()


@dataclass(slots=True)
class _Answer:
    body: bytes
    truncated: bool
    headers: CIMultiDictProxy[str]
    retry_after: float | None


@dataclass(slots=True)
class _Outcome:
    """What one call came to, for the log and the metrics."""

    attempts: int = 0
    status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    timing: ApiTiming | None = None
    response_headers: dict[str, str] | None = None
    response_body: bytes | None = None
    retry_in: float | None = None
    """For a call held back before sending: seconds until it could go through."""


class BatchFailed(Exception):
    """A ``fail_fast`` batch stopped at request ``index``. ``results`` holds what finished (in
    order; ``None`` for requests cancelled or never started)."""

    def __init__(self, index: int, failure: OutboundError, results: list[BatchResult | None]) -> None:
        super().__init__(f"batch request {index} failed: {failure.error_class}: {failure.message}")
        self.index = index
        self.failure = failure
        self.results = results


class ApiClient:
    """Calls for one :class:`ApiClientConfig` (see the module doc)."""

    def __init__(self, service: OutboundService, config: ApiClientConfig) -> None:
        self.service = service
        self.config = config

    async def request(
        self,
        request: ApiRequestBuilder | ApiEndpointConfig,
        *,
        parameters: Mapping[str, PathValue] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = NO_BODY,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> ApiResponse:
        """Make one call (with retries). Keyword arguments add to the builder's values."""
        builder = request if isinstance(request, ApiRequestBuilder) else ApiRequestBuilder(request)
        builder = builder.with_call(
            parameters=parameters, query=query, headers=headers, body=body, idempotency_key=idempotency_key
        )
        config = self.config
        prepared = builder.build(config.base_url, config.headers, config.timeout_seconds)
        return await self._execute(prepared, correlation_id or correlation_id_var.get())

    async def call(
        self,
        method: str,
        path: str,
        *,
        parameters: Mapping[str, PathValue] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = NO_BODY,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> ApiResponse:
        """Shorthand: ``await client.call("GET", "/customers/{id}", parameters={"id": "cus_1"})``."""
        return await self.request(
            ApiEndpointConfig(path=path, method=method),
            parameters=parameters,
            query=query,
            headers=headers,
            body=json,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
        )

    async def batch(
        self,
        requests: Iterable[ApiRequestBuilder | ApiEndpointConfig],
        *,
        concurrency: int = 8,
        mode: BatchMode = "collect_all",
        correlation_id: str | None = None,
    ) -> list[BatchResult]:
        """Run ``requests`` at most ``concurrency`` at a time (see the module doc for the modes)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if mode not in ("collect_all", "fail_fast"):
            raise ValueError("mode must be collect_all or fail_fast")
        items = list(requests)
        results: list[BatchResult | None] = [None] * len(items)
        cid = correlation_id or correlation_id_var.get()
        next_index = 0
        failed: list[tuple[int, OutboundError]] = []

        async def one(index: int) -> None:
            try:
                response = await self.request(items[index], correlation_id=cid)
            except OutboundError as exc:
                results[index] = exc
                if mode == "fail_fast":
                    failed.append((index, exc))
                return
            except Exception as exc:  # a request that does not build (validation) is a failure too
                error = OutboundError("other", str(exc))
                error.__cause__ = exc
                results[index] = error
                if mode == "fail_fast":
                    failed.append((index, error))
                return
            results[index] = response
            if mode == "fail_fast" and not response.ok:
                try:
                    response.raise_for_status()
                except OutboundError as exc:
                    failed.append((index, exc))

        async def worker() -> None:
            nonlocal next_index
            while not failed and next_index < len(items):
                index = next_index
                next_index += 1
                await one(index)
                if failed:
                    raise _StopBatch

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)))]
        if workers:
            try:
                if mode == "fail_fast":
                    _done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                else:
                    await asyncio.gather(*workers)
            except BaseException:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
        if failed:
            index, failure = min(failed, key=lambda f: f[0])
            raise BatchFailed(index, failure, results)
        return [r if r is not None else OutboundError("cancelled", "not run") for r in results]

    # -- one call -------------------------------------------------------------------------------

    async def _execute(self, prepared: PreparedRequest, correlation_id: str | None) -> ApiResponse:
        service = self.service
        config = self.config
        retry = config.retry
        key = config.scope_key(prepared.origin)
        limiter = service.limiter
        pool = service.pool(prepared.origin, config)
        breaker = service.breaker(key, config)
        budget = service.budget(key, config)
        if budget is not None:
            budget.record_call()
        created_at = utcnow()
        started = time.perf_counter()
        outcome = _Outcome()
        logged_url = redact_url(prepared.url)
        request_id = new_id(ID_PREFIX) if service.log is not None and config.log_requests else None
        target = prepared.origin + "/"
        last: _Answer | None = None
        try:
            while True:
                answered, last = last, None  # the answer this attempt would retry, if any
                probe: bool | None = None
                if (
                    (
                        limiter.may_block
                        and not await self._wait_for_block(key, retry.max_retry_after_seconds, outcome)
                    )
                    or (
                        config.rate_limit is not None
                        and not await self._take_slot(f"conn:{key}", config.rate_limit, outcome)
                    )
                    or (
                        config.host_rate_limit is not None
                        and not await self._take_slot(
                            f"host:{prepared.host}", config.host_rate_limit, outcome
                        )
                    )
                    or (
                        breaker is not None
                        and (probe := breaker.allow()) is False
                        and _open(breaker, outcome)
                    )
                ):
                    if answered is not None:  # a retry held back: the call ends with the answer it has
                        outcome.error_message = f"HTTP {outcome.status}; not retried: {outcome.error_message}"
                        last = answered
                        break
                    outcome.status = None
                    outcome.response_headers = outcome.response_body = None
                    raise self._error(outcome, request_id, started)
                outcome.attempts += 1
                trace = AttemptTrace()
                try:
                    answer = await pool.send(
                        prepared.method,
                        prepared.url,
                        prepared.headers,
                        prepared.body,
                        prepared.timeout_seconds,
                        trace=trace,
                        target=target,
                    )
                except TransportError as exc:
                    outcome.timing = _timing(trace)
                    outcome.status = None
                    outcome.response_headers = outcome.response_body = None
                    outcome.error_class = exc.error_class
                    outcome.error_message = exc.message
                    if breaker is not None:
                        if exc.error_class in BREAKER_FAILURES:
                            breaker.record_failure(probe)
                        else:
                            breaker.release(probe)
                    retryable = exc.error_class in RETRYABLE_ERRORS and (
                        prepared.idempotent or not trace.connected
                    )
                    if not retryable or outcome.attempts >= retry.max_attempts:
                        raise self._error(outcome, request_id, started) from exc
                    if budget is not None and not budget.try_retry():
                        outcome.error_message = f"{exc.message} (retry budget of {key} spent)"
                        outcome.error_class = "budget_exhausted"
                        raise self._error(outcome, request_id, started) from exc
                    metrics.count_retry(config.provider_key)
                    await asyncio.sleep(retry.backoff(outcome.attempts, service.rng))
                    continue
                except BaseException:
                    if breaker is not None:
                        breaker.release(probe)
                    raise

                status = answer.status
                headers = CIMultiDictProxy(CIMultiDict(answer.headers))
                outcome.timing = _timing(trace)
                outcome.status = status
                outcome.response_headers = answer.headers
                outcome.response_body = answer.body
                outcome.error_class = _error_class_for(status)
                outcome.error_message = f"HTTP {status}" if outcome.error_class else None
                if breaker is not None:
                    if status >= 500:
                        breaker.record_failure(probe)
                    else:
                        breaker.record_success(probe)
                retry_after = (
                    parse_retry_after(headers.get("Retry-After")) if "Retry-After" in headers else None
                )
                last = _Answer(answer.body, answer.truncated, headers, retry_after)
                if status < 400 or status not in retry.retry_statuses:
                    break
                wait = retry_after
                if status == 429:
                    rate_limit = parse_rate_limit(headers) if wait is None else None
                    if rate_limit is not None and rate_limit.remaining == 0:
                        wait = rate_limit.reset_seconds
                    if wait:
                        await service.limiter.block(key, wait)
                if not prepared.idempotent or outcome.attempts >= retry.max_attempts:
                    break
                if wait is not None and wait > retry.max_retry_after_seconds:
                    break
                if budget is not None and not budget.try_retry():
                    outcome.error_class = "budget_exhausted"
                    outcome.error_message = f"HTTP {status}; retry budget of {key} spent"
                    break
                metrics.count_retry(config.provider_key)
                if status == 429 and wait:
                    continue  # the block is waited out at the top of the loop
                delay = (
                    wait + _jitter(wait, service.rng)
                    if wait
                    else retry.backoff(outcome.attempts, service.rng)
                )
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            outcome.error_class = "cancelled"
            outcome.error_message = "the call was cancelled"
            raise
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            self._finish(prepared, outcome, logged_url, request_id, created_at, duration_ms, correlation_id)
        assert last is not None and outcome.status is not None and outcome.timing is not None
        return ApiResponse(
            status=outcome.status,
            headers=last.headers,
            content=last.body,
            timing=outcome.timing,
            duration_ms=duration_ms,
            attempts=outcome.attempts,
            method=prepared.method,
            url=logged_url,
            request_id=request_id,
            retry_after_seconds=last.retry_after,
            error_class=outcome.error_class,
            truncated=last.truncated,
        )

    async def _wait_for_block(self, key: str, longest: float, outcome: _Outcome) -> bool:
        """Wait out a 429 block of ``key``; False (outcome set) when it lasts longer than ``longest``."""
        blocked = await self.service.limiter.blocked_for(key)
        if blocked <= 0:
            return True
        if blocked > longest:
            outcome.error_class = "rate_limited"
            outcome.error_message = (
                f"{key} is blocked by the provider for {blocked:.1f} s more (Retry-After); nothing was sent"
            )
            outcome.retry_in = blocked
            return False
        await asyncio.sleep(blocked + _jitter(blocked, self.service.rng))
        return True

    async def _take_slot(self, key: str, limit: RateLimit, outcome: _Outcome) -> bool:
        try:
            await self.service.limiter.acquire(key, limit)
        except RateLimitWaitExceeded as exc:
            outcome.error_class = "rate_limited"
            outcome.error_message = f"{exc}; nothing was sent"
            outcome.retry_in = exc.retry_in
            return False
        return True

    def _error(self, outcome: _Outcome, request_id: str | None, started: float) -> OutboundError:
        return OutboundError(
            outcome.error_class or "other",
            outcome.error_message or "the call failed",
            attempts=outcome.attempts,
            request_id=request_id,
            timing=outcome.timing,
            duration_ms=(time.perf_counter() - started) * 1000,
            retry_after_seconds=outcome.retry_in,
        )

    def _finish(
        self,
        prepared: PreparedRequest,
        outcome: _Outcome,
        logged_url: str,
        request_id: str | None,
        created_at: Any,
        duration_ms: float,
        correlation_id: str | None,
    ) -> None:
        config = self.config
        try:
            metrics.observe_call(config.provider_key, outcome.error_class, duration_ms)
            writer = self.service.log
            if writer is None or request_id is None:
                return
            body = outcome.response_body
            writer.record(
                LogEntry(
                    id=request_id,
                    tenant_id=config.tenant_id,
                    connection_id=config.connection_id,
                    provider_key=config.provider_key,
                    operation=prepared.operation,
                    method=prepared.method,
                    url=logged_url,
                    status=outcome.status,
                    error_class=outcome.error_class,
                    error_message=outcome.error_message,
                    attempts=outcome.attempts,
                    timing=outcome.timing,
                    duration_ms=duration_ms,
                    request_headers=prepared.headers,
                    response_headers=outcome.response_headers,
                    request_body=prepared.body,
                    response_body=body,
                    response_bytes=len(body) if body is not None else None,
                    correlation_id=correlation_id,
                    created_at=created_at,
                    log_bodies=config.log_bodies,
                )
            )
        except Exception as exc:  # logging must never break a call
            log.warning("outbound_log_record_failed", error=str(exc))


class _StopBatch(Exception):
    """Ends a batch worker after a fail-fast failure."""


def _open(breaker: CircuitBreaker, outcome: _Outcome) -> bool:
    """Describe a call refused by an open circuit in ``outcome`` (always True)."""
    outcome.error_class = "circuit_open"
    outcome.error_message = f"the circuit of {breaker.key} is open; nothing was sent"
    outcome.retry_in = breaker.snapshot().retry_in_seconds
    return True


def _timing(trace: AttemptTrace) -> ApiTiming:
    dns, connect, tls, first_byte, total = trace.durations()
    return ApiTiming(dns, connect, tls, first_byte, total, trace.reused)


def _jitter(delay: float, rng: random.Random) -> float:
    """Up to 10 % (at most 1 s) on top of a server-given delay, so waiters do not return at once."""
    return rng.uniform(0.0, min(1.0, delay * 0.1))


__all__ = [
    "ApiClient",
    "BatchFailed",
    "BatchMode",
    "BatchResult",
    "OutboundService",
    "RateLimitInfo",
]

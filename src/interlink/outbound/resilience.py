"""Circuit breaker and retry budget, one of each per connection (per process).

Both are in-process state: each process protects the provider from its own traffic. (A shared
breaker would need a round trip to Redis on every call to save a handful of failed calls per
process; the 429 block, which is shared, covers the case where the provider asks everyone to stop.)

Circuit breaker (:class:`CircuitBreaker`)
    ``CLOSED``: calls pass; failures (network errors and 5xx answers) are counted in a rolling
    window of ``window_seconds``. When ``failure_threshold`` failures fall in the window it turns
    ``OPEN``: calls fail at once with ``circuit_open`` (nothing is sent) for ``cooldown_seconds``.
    Then ``HALF_OPEN``: up to ``half_open_max_calls`` probes go through at a time, others are
    refused; a probe's success closes the circuit, its failure opens it again for another
    cooldown. Answers below 500 (429 included) count as successes: the provider is up.

Retry budget (:class:`RetryBudget`)
    A sliding window (``window_seconds``, in ten buckets) counts calls and retries. A retry is
    allowed while ``retries < min_retries + ratio · calls``; otherwise the call ends with what it
    has (error class ``budget_exhausted``). With the defaults (20 %, 10 per 10 s) a full outage
    adds at most a fifth to the load instead of multiplying it by ``max_attempts``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from interlink.outbound.config import CircuitBreakerConfig, RetryBudgetConfig

CLOSED: Final = "CLOSED"
OPEN: Final = "OPEN"
HALF_OPEN: Final = "HALF_OPEN"
STATES: Final = (CLOSED, OPEN, HALF_OPEN)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    key: str
    provider_key: str | None
    state: str
    failures_in_window: int
    opened_count: int
    retry_in_seconds: float | None
    """Seconds until an OPEN circuit lets a probe through."""


class CircuitBreaker:
    def __init__(
        self,
        key: str,
        config: CircuitBreakerConfig,
        *,
        provider_key: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.key = key
        self.config = config
        self.provider_key = provider_key
        self._clock = clock
        self._state = CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probes = 0
        self.opened_count = 0

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.config.cooldown_seconds:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool | None:
        """``False``: refuse the call. ``True``: it is a half-open probe (report its outcome or
        :meth:`release` it). ``None``: an ordinary call."""
        state = self._state
        if state == CLOSED:
            return None
        if state == OPEN:
            if self._clock() - self._opened_at < self.config.cooldown_seconds:
                return False
            self._state = HALF_OPEN
            self._probes = 0
        if self._probes >= self.config.half_open_max_calls:
            return False
        self._probes += 1
        return True

    def release(self, probe: bool | None) -> None:
        """A probe ended without an outcome (e.g. cancelled or refused before sending)."""
        if probe and self._probes > 0:
            self._probes -= 1

    def record_success(self, probe: bool | None = None) -> None:
        if self._state == HALF_OPEN:
            if probe:
                self._state = CLOSED
                self._failures.clear()
                self._probes = 0
            return
        if self._failures and self._state == CLOSED:
            self._prune(self._clock())

    def record_failure(self, probe: bool | None = None) -> None:
        now = self._clock()
        if self._state == HALF_OPEN:
            if probe:
                self._open(now)
            return
        if self._state == OPEN:
            return
        self._failures.append(now)
        self._prune(now)
        if len(self._failures) >= self.config.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = OPEN
        self._opened_at = now
        self._probes = 0
        self._failures.clear()
        self.opened_count += 1

    def _prune(self, now: float) -> None:
        horizon = now - self.config.window_seconds
        failures = self._failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def snapshot(self) -> CircuitSnapshot:
        now = self._clock()
        self._prune(now)
        state = self.state
        retry_in = None
        if state == OPEN:
            retry_in = max(0.0, self.config.cooldown_seconds - (now - self._opened_at))
        return CircuitSnapshot(
            key=self.key,
            provider_key=self.provider_key,
            state=state,
            failures_in_window=len(self._failures),
            opened_count=self.opened_count,
            retry_in_seconds=retry_in,
        )


class RetryBudget:
    BUCKETS: Final = 10

    def __init__(self, config: RetryBudgetConfig, *, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._width = config.window_seconds / self.BUCKETS
        # [bucket number, calls, retries], oldest first
        self._buckets: deque[list[int]] = deque()
        self._calls = 0
        self._retries = 0
        self.refused = 0

    def _current(self) -> list[int]:
        number = int(self._clock() / self._width)
        buckets = self._buckets
        oldest_kept = number - self.BUCKETS + 1
        while buckets and buckets[0][0] < oldest_kept:
            _n, calls, retries = buckets.popleft()
            self._calls -= calls
            self._retries -= retries
        if not buckets or buckets[-1][0] != number:
            buckets.append([number, 0, 0])
        return buckets[-1]

    def record_call(self) -> None:
        self._current()[1] += 1
        self._calls += 1

    def try_retry(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        bucket = self._current()
        if self._retries + 1 > self.config.min_retries + self.config.ratio * self._calls:
            self.refused += 1
            return False
        bucket[2] += 1
        self._retries += 1
        return True

    @property
    def window(self) -> tuple[int, int]:
        """``(calls, retries)`` in the current window."""
        self._current()
        return self._calls, self._retries

"""Deadlines for hot paths: ``with deadline_at(when):`` where ``asyncio.timeout_at`` costs too much.

``asyncio.timeout_at`` arms an event-loop timer each time it is entered and cancels it on the way
out; under uvloop that is a timer handle allocated, started and stopped, about 6 µs per use, which
an outbound call pays on every attempt. Here all deadlines of an event loop share one
:class:`DeadlineTimer`, armed for the earliest of them: entering and leaving a deadline is a dict
insert and delete, and the timer is re-armed only when a deadline earlier than the armed one
arrives or when it fires (then for the earliest still pending). Calls with the same timeout enter
deadlines in increasing order, so a busy loop re-arms about once per timeout period. The API
server's idle keep-alive connections use a :class:`DeadlineTimer` of their own
(:mod:`interlink.http.server`).

Contract (as ``asyncio.timeout_at``): when the loop's clock passes ``when`` before the block ends,
the task is cancelled and the block raises :class:`TimeoutError` (chained to the cancellation); a
cancellation from elsewhere stays :class:`asyncio.CancelledError`; a deadline already past cancels
at the block's first ``await``. The timer may fire up to :data:`CLOCK_SLACK` early, as asyncio's
own timers do. A plain (synchronous) context manager: use it inside a task, around the ``await``
it bounds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from types import TracebackType
from typing import Final, Generic, TypeVar

from interlink.core.loops import PerLoop

CLOCK_SLACK: Final = 0.002
"""A deadline this close ahead when the timer fires counts as passed: event-loop timers may fire
slightly early (uvloop rounds delays to whole milliseconds)."""

K = TypeVar("K")


class DeadlineTimer(Generic[K]):
    """Keys with deadlines (loop times) on one event loop, and one timer for all of them.

    :meth:`set` and :meth:`discard` are dict operations; the timer is armed for the earliest
    deadline, re-armed only when an earlier one is set or when it fires (then for the earliest
    still pending). When a key's deadline passes it is removed and ``expired(key)`` is called. A
    timer armed for a key since discarded fires once, finds nothing due, and re-arms only for what
    is still pending: keys that come and go (a deadline per call, an idle connection between
    requests) cost no timer each.
    """

    __slots__ = ("_armed_at", "_expired", "_handle", "_loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[K], object]) -> None:
        self._loop = loop
        self._expired = expired
        self.pending: dict[K, float] = {}
        self._armed_at = math.inf
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        """Whether the timer is scheduled."""
        return self._handle is not None

    def set(self, key: K, when: float) -> None:
        """``key`` expires at loop time ``when`` (replacing any deadline it had)."""
        self.pending[key] = when
        if when < self._armed_at:
            if self._handle is not None:
                self._handle.cancel()
            self._armed_at = when
            self._handle = self._loop.call_at(when, self._fire)

    def discard(self, key: K) -> None:
        """``key`` has no deadline any more (nothing if it had none)."""
        self.pending.pop(key, None)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        now = self._loop.time() + CLOCK_SLACK
        earliest = math.inf
        passed: list[K] = []
        for key, when in self.pending.items():
            if when <= now:
                passed.append(key)
            elif when < earliest:
                earliest = when
        for key in passed:
            del self.pending[key]
        if earliest < math.inf:
            self._armed_at = earliest
            self._handle = self._loop.call_at(earliest, self._fire)
        for key in passed:
            self._expired(key)


class deadline_at:
    """Cancel the current task when the loop's clock passes ``when`` (see the module doc)."""

    __slots__ = ("_cancelling", "_expired", "_task", "_timer", "when")

    def __init__(self, when: float) -> None:
        self.when = when

    def __enter__(self) -> deadline_at:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("deadline_at must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._timer = _timers.get(loop)
        if self.when <= loop.time():
            self.expire()
        else:
            self._timer.set(self, self.when)
        return self

    def expire(self) -> None:
        """The deadline passed: cancel the task (its block turns that into TimeoutError)."""
        self._expired = True
        self._task.cancel()

    @property
    def expired(self) -> bool:
        """True once the deadline cancelled the task."""
        return self._expired

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._expired:
            self._timer.discard(self)
            return
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


_timers: PerLoop[DeadlineTimer[deadline_at]] = PerLoop(lambda loop: DeadlineTimer(loop, deadline_at.expire))

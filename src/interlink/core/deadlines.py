"""Deadlines for hot paths: ``with deadline_at(when):`` where ``asyncio.timeout_at`` costs too much.

``asyncio.timeout_at`` arms an event-loop timer each time it is entered and cancels it on the way
out; under uvloop that is a timer handle allocated, started and stopped, about 6 µs per use, which
an outbound call pays on every attempt. Here all deadlines of an event loop share one timer, armed
for the earliest of them: entering and leaving a deadline is a dict insert and delete, and the
timer is re-armed only when a deadline earlier than the armed one arrives or when it fires (then
for the earliest still pending). Calls with the same timeout enter deadlines in increasing order,
so a busy loop re-arms about once per timeout period.

Contract (as ``asyncio.timeout_at``): when the loop's clock passes ``when`` before the block ends,
the task is cancelled and the block raises :class:`TimeoutError` (chained to the cancellation); a
cancellation from elsewhere stays :class:`asyncio.CancelledError`; a deadline already past cancels
at the block's first ``await``. The timer may fire up to a millisecond early (the loop's clock
resolution), as asyncio's own timers do. A plain (synchronous) context manager: use it inside a
task, around the ``await`` it bounds.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType
from typing import Final

from interlink.core.loops import PerLoop

CLOCK_SLACK: Final = 0.001
"""A deadline this close to the loop's clock when the timer fires counts as passed."""


class _Watch:
    """The pending deadlines of one event loop and the one timer they share."""

    __slots__ = ("armed_at", "handle", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[deadline_at, None] = {}
        self.armed_at = math.inf
        self.handle: asyncio.TimerHandle | None = None

    def add(self, deadline: deadline_at) -> None:
        self.pending[deadline] = None
        when = deadline.when
        if when < self.armed_at:
            if self.handle is not None:
                self.handle.cancel()
            self.armed_at = when
            self.handle = self.loop.call_at(when, self.fire)

    def fire(self) -> None:
        """Expire what has passed; arm the timer for the earliest deadline still pending."""
        self.handle = None
        self.armed_at = math.inf
        now = self.loop.time() + CLOCK_SLACK
        earliest = math.inf
        passed: list[deadline_at] = []
        for deadline in self.pending:
            if deadline.when <= now:
                passed.append(deadline)
            elif deadline.when < earliest:
                earliest = deadline.when
        for deadline in passed:
            del self.pending[deadline]
            deadline.expire()
        if earliest < math.inf:
            self.armed_at = earliest
            self.handle = self.loop.call_at(earliest, self.fire)


_watches: PerLoop[_Watch] = PerLoop(_Watch)


class deadline_at:
    """Cancel the current task when the loop's clock passes ``when`` (see the module doc)."""

    __slots__ = ("_cancelling", "_expired", "_task", "_watch", "when")

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
        self._watch = _watches.get(loop)
        if self.when <= loop.time():
            self.expire()
        else:
            self._watch.add(self)
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
            self._watch.pending.pop(self, None)
            return
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

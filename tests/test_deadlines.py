"""``core.deadlines.deadline_at``: asyncio.timeout_at's contract with one timer per event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from interlink.core import deadlines
from interlink.core.deadlines import deadline_at


def _timer() -> deadlines.DeadlineTimer[deadline_at]:
    return deadlines._timers.get(asyncio.get_running_loop())


async def test_a_block_past_its_deadline_raises_timeout_error_at_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught, deadline_at(loop.time() + 0.1) as deadline:
        await asyncio.sleep(5)
    waited = time.monotonic() - started
    assert 0.09 <= waited < 1.0
    assert deadline.expired
    assert isinstance(caught.value.__cause__, asyncio.CancelledError)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert not _timer().pending


async def test_a_block_that_ends_in_time_is_left_alone_and_forgotten() -> None:
    loop = asyncio.get_running_loop()
    with deadline_at(loop.time() + 0.2) as deadline:
        await asyncio.sleep(0.01)
    assert not deadline.expired
    assert deadline not in _timer().pending
    await asyncio.sleep(0.3)  # the timer firing later finds nothing to cancel
    assert not deadline.expired


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()

    async def bounded() -> None:
        with deadline_at(loop.time() + 5):
            await asyncio.sleep(5)

    task = asyncio.create_task(bounded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _timer().pending


async def test_a_deadline_already_past_cancels_at_the_first_await() -> None:
    loop = asyncio.get_running_loop()
    reached: list[str] = []
    with pytest.raises(TimeoutError), deadline_at(loop.time() - 1):
        reached.append("before the await")
        await asyncio.sleep(1)
        reached.append("after the await")
    assert reached == ["before the await"]


async def test_many_deadlines_share_one_timer_and_each_expires_on_its_own() -> None:
    loop = asyncio.get_running_loop()
    outcomes: dict[str, str] = {}

    async def bounded(name: str, timeout: float, work: float) -> None:
        try:
            with deadline_at(loop.time() + timeout):
                await asyncio.sleep(work)
            outcomes[name] = "done"
        except TimeoutError:
            outcomes[name] = "timeout"

    started = time.monotonic()
    await asyncio.gather(
        bounded("short", 0.05, 2),
        bounded("middle", 0.15, 2),
        bounded("long", 2.0, 0.25),
        bounded("quick", 2.0, 0.0),
    )
    assert outcomes == {"short": "timeout", "middle": "timeout", "long": "done", "quick": "done"}
    assert time.monotonic() - started < 1.0
    assert not _timer().pending


async def test_later_deadlines_do_not_rearm_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timer = _timer()
    armed: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, callback: object, *args: object) -> asyncio.TimerHandle:
        armed.append(when)
        return real_call_at(when, callback, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    base = loop.time() + 10
    blocks = [deadline_at(base + n) for n in range(50)]
    for block in blocks:
        block.__enter__()
    assert len(armed) <= 1  # at most once, for the earliest (or already armed earlier still)
    earlier = deadline_at(loop.time() + 5)
    earlier.__enter__()
    assert armed[-1] == earlier.when  # an earlier deadline re-arms
    for block in [*blocks, earlier]:
        block.__exit__(None, None, None)
    assert not timer.pending


async def test_an_outer_asyncio_timeout_still_works_around_a_deadline() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            with deadline_at(loop.time() + 5) as inner:
                await asyncio.sleep(5)
    assert not inner.expired
    assert not _timer().pending


def test_outside_a_task_it_refuses() -> None:
    async def in_callback() -> None:
        loop = asyncio.get_running_loop()
        failure: list[BaseException] = []

        def callback() -> None:
            try:
                deadline_at(loop.time() + 1).__enter__()
            except RuntimeError as exc:
                failure.append(exc)

        loop.call_soon(callback)
        await asyncio.sleep(0.01)
        assert failure and "inside a task" in str(failure[0])

    asyncio.run(in_callback())

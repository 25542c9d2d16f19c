"""``core.loops.PerLoop``: one object per event loop."""

from __future__ import annotations

import asyncio

from interlink.core.loops import PerLoop


def test_one_object_per_loop_and_closed_loops_are_dropped() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory(loop: asyncio.AbstractEventLoop) -> list[asyncio.AbstractEventLoop]:
        made.append(loop)
        return [loop]

    per_loop = PerLoop(factory)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a = per_loop.get(first)
        assert per_loop.get(first) is a and a == [first]
        b = per_loop.get(second)
        assert b is not a and b == [second]
        assert per_loop.get(first) is a  # back to the first loop: its object, not a new one
        assert made == [first, second]
        first.close()
        third = asyncio.new_event_loop()
        try:
            per_loop.get(third)
            assert first not in per_loop._items and second in per_loop._items
        finally:
            third.close()
    finally:
        first.close()
        second.close()

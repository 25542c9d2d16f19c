"""Per-event-loop singletons for hot paths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One ``T`` per event loop, made by ``factory(loop)`` on first use.

    :meth:`get` answers the last loop's object without a dict lookup (the common case: one loop
    per process); the objects of loops that are closed are dropped when another is made.
    """

    __slots__ = ("_factory", "_items", "_last")

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._factory = factory
        self._items: dict[asyncio.AbstractEventLoop, T] = {}
        self._last: tuple[asyncio.AbstractEventLoop, T] | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        last = self._last  # one read: a tuple is replaced whole, so loop and object match
        if last is not None and last[0] is loop:
            return last[1]
        item = self._items.get(loop)
        if item is None:
            for closed in [other for other in self._items if other.is_closed()]:
                self._items.pop(closed, None)  # another thread may have dropped it already
            item = self._items[loop] = self._factory(loop)
        self._last = (loop, item)
        return item

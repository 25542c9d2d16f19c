"""PostgreSQL LISTEN on a dedicated connection, stoppable without cancelling psycopg mid-wait.

Cancelling a task blocked in psycopg's ``notifies()`` can stall for seconds while the driver
cleans up, so listeners here wait in short slices and check ``should_stop`` between them.
"""

from __future__ import annotations

from collections.abc import Callable

SLICE_SECONDS = 0.5


async def listen(
    dsn: str,
    channel: str,
    on_notify: Callable[[str], None],
    *,
    should_stop: Callable[[], bool],
    on_ready: Callable[[], None] | None = None,
) -> None:
    """``LISTEN channel`` and call ``on_notify(payload)`` until ``should_stop()``.

    Returns when asked to stop; raises when the connection fails (callers reconnect).
    """
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"LISTEN {channel}")
        if on_ready is not None:
            on_ready()
        while not should_stop():
            async for notify in conn.notifies(timeout=SLICE_SECONDS):
                on_notify(notify.payload)

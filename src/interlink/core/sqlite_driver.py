"""aiosqlite connections whose statements each take one trip to the driver's thread.

SQLAlchemy's aiosqlite dialect runs every statement as three or four calls on aiosqlite's thread:
open a cursor, execute, fetch the rows, close the cursor. Each call is a hand-over (the thread
wakes, runs, then wakes the event loop through its self-pipe); in the webhook engine on SQLite the
hand-overs took about 15 % of the process's interpreter time, and a transaction holds SQLite's
write lock across all of them.

:func:`connect` makes the same connection (same arguments, same thread, same errors) with
:class:`PrefetchingCursor`: ``execute`` runs the statement, reads every row it returns and closes
the ``sqlite3`` cursor in one call; the fetch methods then serve those rows from memory, and
``close`` has nothing left to do on the thread. Results are the same (SQLAlchemy reads a
non-streaming result whole anyway); a streamed result (``yield_per``) is read whole too, which
suits the embedded database this driver serves. ``Database`` passes :func:`connect` to the dialect
as its ``async_creator_fn``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import aiosqlite
from aiosqlite.context import contextmanager

_Description = tuple[tuple[str, None, None, None, None, None, None], ...] | None
_T = TypeVar("_T")


async def _on_thread(conn: aiosqlite.Connection, function: Callable[[], _T]) -> _T:
    """``function()`` run on ``conn``'s thread (one hand-over)."""
    return cast(_T, await conn._execute(function))  # type: ignore[no-untyped-call]


class PrefetchingCursor(aiosqlite.Cursor):
    """An ``aiosqlite.Cursor`` whose ``execute`` also fetches (see the module doc)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.iter_chunk_size = conn._iter_chunk_size
        self._conn = conn
        self._rows: list[Any] = []
        self._position = 0
        self._description: _Description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> PrefetchingCursor:
        connection = self._conn._conn
        arguments: Any = () if parameters is None else parameters

        def run() -> tuple[_Description, list[Any], int, int | None]:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, arguments)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self._description, self._rows, self._rowcount, self._lastrowid = await _on_thread(self._conn, run)
        self._position = 0
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> PrefetchingCursor:
        connection = self._conn._conn

        def run() -> tuple[int, int | None]:
            cursor = connection.cursor()
            try:
                cursor.executemany(sql, parameters)  # type: ignore[arg-type]  # as aiosqlite's
                return cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self._rowcount, self._lastrowid = await _on_thread(self._conn, run)
        self._description, self._rows, self._position = None, [], 0
        return self

    async def executescript(self, sql_script: str) -> PrefetchingCursor:
        connection = self._conn._conn
        await _on_thread(self._conn, lambda: connection.executescript(sql_script))
        self._description, self._rows, self._position, self._rowcount = None, [], 0, -1
        return self

    async def fetchone(self) -> Any:
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        end = self._position + (self._arraysize if size is None else size)
        rows = self._rows[self._position : end]
        self._position += len(rows)
        return rows

    async def fetchall(self) -> Sequence[Any]:
        rows = self._rows[self._position :] if self._position else self._rows
        self._position = len(self._rows)
        return rows

    async def close(self) -> None:
        self._rows = []
        self._position = 0

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    @property
    def description(self) -> Any:
        return self._description

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn._conn


class PrefetchingConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose cursors are :class:`PrefetchingCursor` (opening one
    takes no trip to the thread)."""

    @contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        return PrefetchingCursor(self)


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> PrefetchingConnection:
    """As ``aiosqlite.connect`` (the dialect's arguments go to ``sqlite3.connect``), with
    :class:`PrefetchingCursor`; awaiting the result starts the thread and connects."""

    def connector() -> sqlite3.Connection:
        return cast(sqlite3.Connection, sqlite3.connect(database, **kwargs))

    connection = PrefetchingConnection(connector, iter_chunk_size)
    connection._thread.daemon = True  # as the dialect does for aiosqlite's own connections
    return connection

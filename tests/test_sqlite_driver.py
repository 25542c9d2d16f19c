"""The SQLite driver (``interlink.core.sqlite_driver``): one trip to the driver's thread per
statement, with the results, counts and errors of a plain aiosqlite cursor."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from interlink.core import sqlite_driver
from interlink.core.db import Database


class Trips:
    """Counts the calls a connection makes on its thread (``trips.count``)."""

    def __init__(self, connection: sqlite_driver.PrefetchingConnection) -> None:
        self.connection = connection
        self.execute = connection._execute
        self.count = 0
        connection._execute = self._counted  # type: ignore[method-assign]

    async def _counted(self, *args: object, **kwargs: object) -> object:
        self.count += 1
        return await self.execute(*args, **kwargs)

    def stop(self) -> None:
        self.connection._execute = self.execute  # type: ignore[method-assign]


async def test_a_cursor_runs_fetches_and_counts_in_one_trip(tmp_path: Path) -> None:
    connection = await sqlite_driver.connect(str(tmp_path / "t.db"), isolation_level=None)
    trips = Trips(connection)
    try:
        async with connection.cursor() as cursor:
            assert trips.count == 0  # opening a cursor takes no trip
            await cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            assert cursor.description is None and trips.count == 1
            await cursor.execute("INSERT INTO t (name) VALUES (?)", ("a",))
            assert cursor.rowcount == 1 and cursor.lastrowid == 1
            await cursor.executemany("INSERT INTO t (name) VALUES (?)", [("b",), ("c",), ("d",)])
            assert cursor.rowcount == 3
            trips.count = 0
            await cursor.execute("SELECT id, name FROM t ORDER BY id")
            assert [d[0] for d in cursor.description] == ["id", "name"]
            assert await cursor.fetchone() == (1, "a")
            assert await cursor.fetchmany(2) == [(2, "b"), (3, "c")]
            assert await cursor.fetchall() == [(4, "d")]
            assert await cursor.fetchone() is None and await cursor.fetchall() == []
            assert trips.count == 1  # the rows came with the statement
            await cursor.execute("UPDATE t SET name = name || '!' WHERE id > 2 RETURNING id")
            assert await cursor.fetchall() == [(3,), (4,)] and cursor.rowcount == 2
            with pytest.raises(sqlite3.IntegrityError):
                await cursor.execute("INSERT INTO t (name) VALUES ('a')")
            await cursor.executescript("CREATE TABLE u (x); INSERT INTO u VALUES (1);")
            await cursor.execute("SELECT x FROM u")
            assert await cursor.fetchall() == [(1,)]
    finally:
        await connection.close()


async def test_the_database_runs_each_statement_in_one_trip(sqlite_template: Path, tmp_path: Path) -> None:
    """Through SQLAlchemy: one trip per statement, streamed results, RETURNING with its row
    count, and the driver's errors as SQLAlchemy's."""
    path = tmp_path / "db.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.unit_of_work() as session:
            conn = await session.connection()
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, sqlite_driver.PrefetchingConnection)
            trips = Trips(driver)
            await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            await conn.exec_driver_sql("INSERT INTO t (name) VALUES (?)", [(f"n{i}",) for i in range(250)])
            assert trips.count == 2
            rows = (await conn.exec_driver_sql("SELECT count(*), max(id) FROM t")).all()
            assert rows == [(250, 250)] and trips.count == 3
            result = await conn.exec_driver_sql("UPDATE t SET name = name || '!' WHERE id <= 3 RETURNING id")
            assert sorted(r[0] for r in result.all()) == [1, 2, 3]
            updated = await conn.exec_driver_sql("UPDATE t SET name = name || '?' WHERE id <= 10")
            assert updated.rowcount == 10
            streamed = await conn.stream(
                sa.text("SELECT id FROM t ORDER BY id").execution_options(yield_per=100)
            )
            ids = [row[0] async for row in streamed]
            assert ids == list(range(1, 251))
            trips.stop()
        with pytest.raises(IntegrityError):
            async with db.unit_of_work() as session:
                await session.execute(sa.text("INSERT INTO t (name) VALUES ('n100')"))
        async with db.unit_of_work(write=False) as session:
            assert await session.scalar(sa.text("SELECT count(*) FROM t")) == 250
    finally:
        await db.engine.dispose()

"""Database access: engine, sessions, the unit of work, and portable column types.

One :class:`Database` per process. Work happens inside :meth:`Database.unit_of_work`, one per
request or job: it commits when the block ends and rolls back on any error. On SQLite a writing
unit of work starts with ``BEGIN IMMEDIATE`` so that writers queue on the database lock instead of
failing when a read transaction is upgraded; readers use a plain deferred ``BEGIN``.

Rows that processes keep in memory (API keys, connection state) are models with
:class:`CachedInProcesses`: a unit of work that changes or deletes one publishes its id on the
invalidation bus (:mod:`interlink.core.invalidation`) as it commits, so every process drops it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa
import structlog
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session

from interlink.core import sqlite_driver
from interlink.core.invalidation import NotifyOnly

log = structlog.get_logger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def json_text(value: Any) -> str:
    """``value`` as JSON text, for statements that bind values themselves: pydantic-core's
    encoder (a quarter of ``json.dumps``' time); text it cannot encode (a lone surrogate) goes
    through ``json.dumps``, which escapes it. ``None`` is ``null``, as SQLAlchemy's JSON type binds
    it."""
    try:
        return to_json(value).decode()
    except PydanticSerializationError:
        return json.dumps(value)


def sqlite_datetime_text(value: datetime) -> str:
    """An aware datetime as :class:`UTCDateTime` stores it on SQLite (naive UTC,
    ``YYYY-MM-DD HH:MM:SS.ffffff``): for statements that bind values themselves."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def enum_column_type(enum_cls: type[enum.Enum]) -> sa.Enum:
    """A VARCHAR column holding the enum's values (no database enum type, no CHECK)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=40,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the unit of work that owns ``session`` has committed."""
    session.info.setdefault("after_commit", []).append(callback)


_CHANGED = "changed_cached_rows"


class CachedInProcesses:
    """Mixin for models that processes cache by ``id``: changing or deleting a row inside
    :meth:`Database.unit_of_work` invalidates it in every process when the change commits.
    The model's primary key is its string ``id``."""


class ChangeBus(Protocol):
    """What :meth:`Database.unit_of_work` needs of the invalidation bus."""

    async def notify_in_transaction(self, session: Any, ids: Collection[str]) -> None: ...

    async def publish_after_commit(self, ids: Collection[str]) -> None: ...


def note_change(session: AsyncSession | Session, item_id: str) -> None:
    """Say that the cached row ``item_id`` changes in this unit of work (done automatically for
    :class:`CachedInProcesses` models the session flushes)."""
    session.info.setdefault(_CHANGED, set()).add(item_id)


@event.listens_for(Session, "before_flush")
def _note_cached_rows(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, CachedInProcesses) and (item_id := getattr(obj, "id", None)) is not None:
            note_change(session, str(item_id))


SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)
"""Run on every new SQLite connection (the engine's, and any a component opens of its own)."""


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


class Database:
    """Engine and session factory for one database URL."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: error messages and logs never carry bound values (secrets, payloads).
        # pool_pre_ping: a server connection can drop (restart, failover, idle timeout) and is
        # tested on checkout; a SQLite connection is an open file that cannot, and the ping would
        # cost a statement (~250 µs of CPU) on every unit of work.
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite, "hide_parameters": True}
        if self.is_sqlite:
            # One trip to the driver's thread per statement (interlink.core.sqlite_driver).
            kwargs["connect_args"] = {"timeout": 30, "async_creator_fn": sqlite_driver.connect}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800, pool_timeout=10)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.invalidation: ChangeBus | None = None if self.is_sqlite else NotifyOnly()
        """Where changes of :class:`CachedInProcesses` rows are published: the runtime's bus; without
        a runtime, PostgreSQL still sends NOTIFY so that the processes that cache hear of them."""

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error.

        Changed cached rows (:func:`note_change`) are announced inside the transaction (PostgreSQL
        NOTIFY, delivered on commit) and published after the commit, before any
        :func:`after_commit` callback runs."""
        async with self.sessionmaker() as session:
            if write and self.is_sqlite:
                await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            changed: set[str] = set()
            try:
                yield session
                if session.new or session.dirty or session.deleted:
                    await session.flush()
                changed = session.info.pop(_CHANGED, set())
                if changed and self.invalidation is not None:
                    await self.invalidation.notify_in_transaction(session, changed)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            if changed and self.invalidation is not None:
                try:
                    await self.invalidation.publish_after_commit(changed)
                except Exception as exc:  # committed; other processes fall back on the cache TTL
                    log.warning("cache_invalidation_publish_failed", error=str(exc))
            for callback in session.info.pop("after_commit", []):
                try:
                    await callback()
                except Exception as exc:  # the change is committed; a failed follow-up is only logged
                    log.warning("after_commit_callback_failed", error=str(exc))

    async def ping(self) -> None:
        """Raise unless the database answers and holds the migrated schema (``alembic_version``).

        An empty database (e.g. a SQLite file that went missing and was recreated) is not ready.
        """
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT version_num FROM alembic_version"))

    async def dispose(self) -> None:
        await self.engine.dispose()

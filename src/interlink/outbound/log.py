"""The request log writer: every call becomes an ``external_api_requests`` row, written in batches.

:meth:`RequestLogWriter.record` only appends to a buffer (no I/O, no redaction on the request
path). A background task writes the buffer every ``flush_seconds``, or as soon as ``batch_rows``
entries wait (then whole batches only, the rest left for the next batch or the timer), each batch
in one transaction with one multi-row INSERT; :meth:`RequestLogWriter.close` writes everything
left. A failed write keeps the entries for the next flush; if the database stays away
and more than ``max_buffered`` entries wait, the oldest are dropped and counted
(``interlink_outbound_log_dropped_total``) rather than growing without bound. A batch the database
refuses for its content (not an outage) is written row by row; a row still refused is dropped,
counted the same way and logged with its id, so it cannot hold back the entries behind it.
On a SQLite file the batch goes through the writer's own connection in its own thread, the whole
transaction (``BEGIN IMMEDIATE``, the INSERTs, ``COMMIT``) in one hand-over, and the rows are
built (redacted) on that thread too, not the event loop's (see :class:`SqliteLogFile`).

Redaction (done when the rows are built, before anything reaches the database):

* **URL**: userinfo removed, fragment removed, credential-like query parameters (:func:`redact_url`)
  replaced by ``[redacted]``.
* **Headers**: :func:`interlink.webhooks.schemas.redacted_headers` (Authorization, cookies, names
  with token/secret/key/password/signature/...).
* **Bodies** (when the client logs bodies): JSON up to :data:`BODY_LIMIT` bytes is parsed and every
  value under a credential-like key (:func:`sensitive_name`) is ``[redacted]``;
  longer or unparsable JSON keeps its first :data:`BODY_LIMIT` bytes with ``"key": value`` pairs
  under credential-like keys ``[redacted]``; form bodies are redacted like query strings; other
  text is cut to :data:`BODY_LIMIT` and passed through the log redaction patterns; binary bodies
  are not stored (their size is).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
import structlog
from prometheus_client import Counter

from interlink.core.db import SQLITE_PRAGMAS, Database, json_text, sqlite_datetime_text
from interlink.core.logging import REDACTED, redact_text, redact_value
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.response import ApiTiming
from interlink.webhooks.schemas import REDACTED as HEADER_REDACTED
from interlink.webhooks.schemas import is_sensitive_header

log = structlog.get_logger(__name__)

BODY_LIMIT: Final = 4096
MAX_URL: Final = 2048
SENSITIVE_QUERY: Final = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "signature",
        "sig",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "code",
    }
)

COLUMNS: Final = (
    "id",
    "tenant_id",
    "connection_id",
    "provider_key",
    "operation",
    "method",
    "url",
    "status",
    "error_class",
    "error_message",
    "attempts",
    "reused",
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "first_byte_ms",
    "total_ms",
    "duration_ms",
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
    "request_bytes",
    "response_bytes",
    "correlation_id",
    "created_at",
)
"""The columns of ``external_api_requests`` in the order :meth:`LogEntry.values` gives them."""
if set(COLUMNS) != {c.name for c in ExternalApiRequest.__table__.columns}:  # pragma: no cover
    raise RuntimeError("outbound.log.COLUMNS does not match the external_api_requests model")

DROPPED = Counter(
    "interlink_outbound_log_dropped",
    "Outbound request log entries dropped because the database stayed unavailable",
)

_NAME_HINTS: Final = (
    "key",
    "token",
    "sig",
    "code",
    "auth",
    "secret",
    "pass",
    "credential",
    "pepper",
    "jwt",
    "assertion",
    "verifier",
    "%",
    "\\",
)
"""Every name :func:`sensitive_name` matches contains one of these (and ``%``/``\\`` could hide
one behind an escape): text without any of them has no credential-like name to redact."""
_TEXT_HINTS: Final = ("il_", "whsec_", "bearer")
"""What :func:`interlink.core.logging.redact_text` looks for starts with one of these."""


def _maybe_sensitive(text: str) -> bool:
    lowered = text.lower()
    # A loop rather than any(genexpr), which costs a generator per call: this runs for every
    # logged URL and body.
    for hint in _NAME_HINTS:  # noqa: SIM110
        if hint in lowered:
            return True
    return False


def _redact_text(text: str) -> str:
    lowered = text.lower()
    for hint in _TEXT_HINTS:
        if hint in lowered:
            return redact_text(text)
    return text


_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.){1,200})"(\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s{\[]+)')


_SECRET_WORDS: Final = frozenset(
    {
        "key",
        "keys",
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "signature",
        "sig",
        "credential",
        "credentials",
        "assertion",
        "jwt",
        "verifier",
    }
)
"""A name with one of these words (``private_key``, ``privateKey``, ``X-Amz-Signature``,
``client_assertion``, ``code_verifier``) is credential-like."""
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


@functools.lru_cache(maxsize=4096)
def sensitive_name(name: str) -> bool:
    """Credential-like parameter or field name: the query list above, the log redaction's, or a
    name with a word of :data:`_SECRET_WORDS` (names repeat: the verdict is cached)."""
    if name.lower() in SENSITIVE_QUERY or redact_value(name, "x") == REDACTED:
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(name))


def _redact_json(value: Any) -> Any:
    """``value`` with every non-empty, non-number value under a credential-like key redacted."""
    if isinstance(value, dict):
        return {
            k: REDACTED
            if sensitive_name(str(k))
            and v not in (None, "", [], {})
            and not isinstance(v, (bool, int, float))
            else _redact_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_pairs(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k, REDACTED if sensitive_name(k) else v) for k, v in pairs], quote_via=quote, safe="[]"
    )


def redact_url(url: str) -> str:
    """The URL without userinfo or fragment, with credential-like query parameters redacted."""
    if "@" not in url and "#" not in url:
        query_at = url.find("?")
        if query_at < 0 or not _maybe_sensitive(url[query_at:]):
            return url[:MAX_URL]
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _redact_pairs(parts.query) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))[:MAX_URL]


def _redactjson_text(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if sensitive_name(match.group(1)):
            return f'"{match.group(1)}"{match.group(2)}"{REDACTED}"'
        return match.group(0)

    return redact_text(_JSON_PAIR.sub(replace, text))


def redact_body(body: bytes | None, content_type: str | None) -> str | None:
    """What the log keeps of a body (see the module doc); None for no body or a binary one.
    NUL characters (which PostgreSQL text cannot hold) become U+FFFD."""
    text = _redact_body(body, content_type)
    return text.replace("\x00", "\ufffd") if text is not None and "\x00" in text else text


def _redact_body(body: bytes | None, content_type: str | None) -> str | None:
    if not body:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    head = body[:BODY_LIMIT]
    is_json = media == "application/json" or media.endswith("+json") or head[:1] in (b"{", b"[")
    if is_json and len(body) <= BODY_LIMIT and head.isascii():
        text = head.decode("ascii")
        if not _maybe_sensitive(text):  # no key could be a credential: only the text patterns
            return _redact_text(text)
    if is_json and len(body) <= BODY_LIMIT:
        try:
            text = json.dumps(_redact_json(json.loads(body)), ensure_ascii=False, separators=(",", ":"))
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to walk: as text below
            pass
        else:
            return text[:BODY_LIMIT]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", errors="ignore")
        if not text or sum(1 for c in text if not c.isprintable() and c not in "\r\n\t") > len(text) // 10:
            return None
    if media == "application/x-www-form-urlencoded":
        return _redact_pairs(text)[:BODY_LIMIT]
    if is_json:
        return _redactjson_text(text)[:BODY_LIMIT]
    return redact_text(_redactjson_text(text) if '"' in text else text)[:BODY_LIMIT]


@dataclass(slots=True)
class LogEntry:
    """One call as the client saw it (raw: redaction happens when the row is built)."""

    id: str
    tenant_id: str
    connection_id: str | None
    provider_key: str | None
    operation: str | None
    method: str
    url: str
    """Already redacted (the response envelope shows the same URL)."""
    status: int | None
    error_class: str | None
    error_message: str | None
    attempts: int
    timing: ApiTiming | None
    duration_ms: float
    request_headers: dict[str, str]
    response_headers: dict[str, str] | None
    request_body: bytes | None
    response_body: bytes | None
    response_bytes: int | None
    correlation_id: str | None
    created_at: datetime
    log_bodies: bool = True

    def values(self) -> tuple[Any, ...]:
        """The row, redacted, in :data:`COLUMNS` order (JSON columns as dicts, time aware)."""
        timing = self.timing
        request_headers = self.request_headers
        response_headers = self.response_headers
        request_body = self.request_body
        if self.log_bodies:
            request_type = _header(request_headers, "content-type") if request_body else None
            response_type = _header(response_headers, "content-type") if self.response_body else None
            logged_request = redact_body(request_body, request_type)
            logged_response = redact_body(self.response_body, response_type)
        else:
            logged_request = logged_response = None
        operation = self.operation
        message = self.error_message
        return (
            self.id,
            self.tenant_id,
            self.connection_id,
            self.provider_key,
            operation[:200] if operation else None,
            self.method,
            self.url[:MAX_URL],
            self.status,
            self.error_class,
            _no_nul(redact_text(message))[:1000] if message else None,
            self.attempts,
            bool(timing and timing.reused),
            timing.dns_ms if timing else None,
            timing.connect_ms if timing else None,
            timing.tls_ms if timing else None,
            timing.first_byte_ms if timing else None,
            timing.total_ms if timing else None,
            self.duration_ms,
            redacted_headers(request_headers),
            redacted_headers(response_headers) if response_headers is not None else None,
            logged_request,
            logged_response,
            len(request_body) if request_body else 0,
            self.response_bytes,
            self.correlation_id,
            self.created_at,
        )

    def row(self) -> dict[str, Any]:
        """The row as column name → value (what SQLAlchemy inserts)."""
        return dict(zip(COLUMNS, self.values(), strict=True))


def row_values(entry: LogEntry) -> tuple[Any, ...]:
    """:meth:`LogEntry.values`; should building the row fail (a body no redaction path could
    read), the row without its bodies, so one call's content can never hold back the log."""
    try:
        return entry.values()
    except Exception as exc:  # RecursionError included
        log.warning("outbound_request_log_bodies_left_out", request_id=entry.id, error=type(exc).__name__)
        return replace(entry, log_bodies=False).values()


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    """:func:`interlink.webhooks.schemas.redacted_headers`, with NUL characters (which PostgreSQL
    JSON cannot hold) as U+FFFD."""
    return {_no_nul(k): HEADER_REDACTED if is_sensitive_header(k) else _no_nul(v) for k, v in headers.items()}


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _header(headers: dict[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


# -- writing rows: the driver's bulk path where there is one -------------------------------------
# SQLAlchemy's executemany costs about as much Python per row as building the row; the log is
# written a lot, so PostgreSQL gets COPY (psycopg) and SQLite multi-row INSERTs, with values in the
# forms SQLAlchemy itself stores (JSON text, ``YYYY-MM-DD HH:MM:SS.ffffff`` naive UTC times, 0/1
# booleans), so the ORM reads them back unchanged. Other databases use SQLAlchemy.

_REQUEST_HEADERS: Final = COLUMNS.index("request_headers")
_RESPONSE_HEADERS: Final = COLUMNS.index("response_headers")
_REUSED: Final = COLUMNS.index("reused")
_CREATED_AT: Final = COLUMNS.index("created_at")
_SQLITE_ROWS_PER_INSERT: Final = 32766 // len(COLUMNS) // 2
"""Rows per multi-row INSERT on SQLite (well under its 32,766 parameters)."""
_SQLITE_ROW: Final = f"({', '.join('?' * len(COLUMNS))})"


@functools.lru_cache(maxsize=64)
def _sqlite_insert(rows: int) -> str:
    """One INSERT of ``rows`` rows. A multi-row VALUES statement runs as one SQLite step: with
    ``executemany`` the driver releases and retakes the GIL for every row, which costs a thread
    switch per row while the event loop is busy (about ten times the CPU under load)."""
    values = ",".join([_SQLITE_ROW] * rows)
    return f"INSERT INTO external_api_requests ({', '.join(COLUMNS)}) VALUES {values}"  # noqa: S608


_COPY: Final = f"COPY external_api_requests ({', '.join(COLUMNS)}) FROM STDIN"


def _sqlite_flat(chunk: list[tuple[Any, ...]]) -> list[Any]:
    """The parameters of :func:`_sqlite_insert` for ``chunk`` (rows of :meth:`LogEntry.values`)."""
    params: list[Any] = []
    extend = params.extend
    for values in chunk:
        row = list(values)
        row[_REQUEST_HEADERS] = json_text(row[_REQUEST_HEADERS])
        if row[_RESPONSE_HEADERS] is not None:
            row[_RESPONSE_HEADERS] = json_text(row[_RESPONSE_HEADERS])
        row[_REUSED] = int(row[_REUSED])
        row[_CREATED_AT] = sqlite_datetime_text(row[_CREATED_AT])
        extend(row)
    return params


class SqliteLogFile:
    """The request log's own connection to a SQLite file, used by one thread of its own.

    Through the engine a batch costs a session, SQLAlchemy's statement execution over the INSERT's
    thousands of parameters and about ten hand-overs between the event loop and the driver's thread
    (pool checkout, BEGIN, each INSERT, COMMIT, the pool's reset), which under load cost more than
    the INSERT (docs/benchmarks.md); here building the rows (redaction included), their
    conversion, the INSERTs and the transaction run in one call on this thread, which leaves the
    event loop free for that time except where the thread holds the GIL (the proxy's server CPU per
    call fell by about a tenth when the rows moved here). The connection uses
    the engine's settings (:data:`~interlink.core.db.SQLITE_PRAGMAS`); errors are the driver's
    (``sqlite3.OperationalError`` for a locked or missing file: the writer keeps the batch)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def for_url(cls, url: str) -> SqliteLogFile | None:
        """One for a SQLite file URL; None for any other database (or an in-memory one, which
        another connection would not see)."""
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.query:
            return None
        path = parsed.database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return cls(path)

    async def insert(self, entries: list[LogEntry]) -> None:
        """Insert the rows of ``entries`` in one transaction; all or none. The rows are built
        (redacted, :meth:`LogEntry.values`) on this file's thread, not the event loop's."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._insert, entries)

    async def close(self) -> None:
        """Close the connection and stop the thread (the next insert starts them again)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
            executor.shutdown(wait=False)

    def _insert(self, entries: list[LogEntry]) -> None:
        rows = [row_values(entry) for entry in entries]
        connection = self._connection
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                connection.execute(pragma)
            # A multi-row INSERT keeps a statement journal (the pages it changes, to undo it alone),
            # which SQLite moves to a new temporary file (in /var/tmp or $SQLITE_TMPDIR) once past
            # 64 KiB: a file created, written and deleted for most batches, and a failed batch
            # where that folder is not writable. In memory it is a few hundred KiB at most.
            connection.execute("PRAGMA temp_store=MEMORY")
            self._connection = connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
                chunk = rows[start : start + _SQLITE_ROWS_PER_INSERT]
                connection.execute(_sqlite_insert(len(chunk)), _sqlite_flat(chunk))
            connection.execute("COMMIT")
        except BaseException:
            self._abandon_transaction()
            raise

    def _abandon_transaction(self) -> None:
        """Roll back what a failed batch left open; a connection that cannot is closed, and the
        next batch opens a new one (never a batch stuck behind a transaction that stays open)."""
        connection = self._connection
        if connection is None or not connection.in_transaction:
            return
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def _copy_rows(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    # The JSON columns go as JSON text: COPY's text format hands every field to the column type's
    # input function, so jsonb parses it server-side, without psycopg's per-value JSON dumper.
    raw = await conn.get_raw_connection()
    async with raw.driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for values in rows:
            row = list(values)
            row[_REQUEST_HEADERS] = json_text(row[_REQUEST_HEADERS])
            if row[_RESPONSE_HEADERS] is not None:
                row[_RESPONSE_HEADERS] = json_text(row[_RESPONSE_HEADERS])
            await copy.write_row(row)


def _refused_content(exc: BaseException) -> bool:
    """The database refused what was written (PEP 249 ``DataError``/``IntegrityError``, raised by
    the driver itself on the COPY path or wrapped by SQLAlchemy), as opposed to not answering."""
    return any(cls.__name__ in ("DataError", "IntegrityError") for cls in type(exc).__mro__)


class RequestLogWriter:
    """Buffers :class:`LogEntry` items and writes them in batches (see the module doc)."""

    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float = 0.5,
        batch_rows: int = 500,
        max_buffered: int = 100_000,
    ) -> None:
        self.db = db
        self._sqlite = SqliteLogFile.for_url(db.url)
        self.flush_seconds = flush_seconds
        self.batch_rows = batch_rows
        self.max_buffered = max_buffered
        self._buffer: list[LogEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def record(self, entry: LogEntry) -> None:
        """Queue one entry (never blocks, never raises)."""
        buffer = self._buffer
        buffer.append(entry)
        if len(buffer) >= self.batch_rows:
            self._wake.set()
        if len(buffer) > self.max_buffered:
            excess = len(buffer) - self.max_buffered
            del buffer[:excess]
            self.dropped += excess
            DROPPED.inc(excess)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closed = False
            self._task = asyncio.create_task(self._loop(), name="outbound-request-log")

    async def flush(self, *, whole_batches: bool = False) -> int:
        """Write everything buffered (in batches of ``batch_rows``), or with ``whole_batches``
        only whole batches (the rest waits for the next); returns the rows written. Raises if
        the database refuses (the entries stay buffered)."""
        written = 0
        least = self.batch_rows if whole_batches else 1
        async with self._lock:
            while len(self._buffer) >= least:
                batch = self._buffer[: self.batch_rows]
                del self._buffer[: len(batch)]
                try:
                    await self._write(batch)
                except Exception as exc:
                    if not _refused_content(exc):
                        self._buffer[:0] = batch
                        raise
                    done = await self._write_each(batch)
                except BaseException:
                    self._buffer[:0] = batch
                    raise
                else:
                    done = len(batch)
                written += done
                self.written += done
        return written

    async def _write_each(self, batch: list[LogEntry]) -> int:
        """The database refused a row of ``batch`` (not an outage): write the rows one at a time
        and drop, count and report the ones it refuses, so one bad row cannot hold back the log."""
        written = 0
        for entry in batch:
            try:
                await self._write([entry])
            except Exception as exc:
                if not _refused_content(exc):
                    raise
                self.dropped += 1
                DROPPED.inc()
                log.warning("outbound_request_log_row_refused", request_id=entry.id, error=str(exc)[:300])
            else:
                written += 1
        return written

    async def _write(self, batch: list[LogEntry]) -> None:
        if self._sqlite is not None:
            await self._sqlite.insert(batch)
            return
        rows = [row_values(entry) for entry in batch]
        async with self.db.unit_of_work() as session:
            conn = await session.connection()
            dialect = conn.dialect
            if dialect.name == "postgresql" and dialect.driver == "psycopg":
                await _copy_rows(conn, rows)
            elif dialect.name == "sqlite":
                for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
                    chunk = rows[start : start + _SQLITE_ROWS_PER_INSERT]
                    await conn.exec_driver_sql(_sqlite_insert(len(chunk)), _sqlite_flat(chunk))
            else:
                await conn.execute(
                    sa.insert(ExternalApiRequest), [dict(zip(COLUMNS, r, strict=True)) for r in rows]
                )

    async def _loop(self) -> None:
        # Woken by a whole batch waiting, the loop writes whole batches only: what arrived while
        # they were written waits for the next batch or the timer (at most ``flush_seconds``), so
        # under load every transaction holds a whole batch rather than one of every two holding
        # the few rows that came in meanwhile (a transaction's fixed cost is most of a small one).
        while not self._closed:
            woken = True
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            except TimeoutError:
                woken = False
            self._wake.clear()
            if not self._buffer:
                continue
            # Shielded: stopping the loop must not abandon a batch halfway; close() waits for it.
            flushing = asyncio.ensure_future(self.flush(whole_batches=woken))
            try:
                await asyncio.shield(flushing)
            except asyncio.CancelledError:
                await asyncio.gather(flushing, return_exceptions=True)
                raise
            except Exception as exc:
                log.warning("outbound_request_log_flush_failed", error=str(exc), pending=len(self._buffer))

    async def close(self) -> None:
        """Stop the background task and write every entry still buffered."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:
            log.warning("outbound_request_log_final_flush_failed", error=str(exc), lost=len(self._buffer))
        finally:
            if self._sqlite is not None:
                await self._sqlite.close()

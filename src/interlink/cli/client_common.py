"""What the client commands share: the connection options, the SDK client with the CLI's error
handling, parsing of JSON and time options, and table or JSON output.

Every client command takes ``--url`` / ``INTERLINK_API_URL``, ``--api-key`` / ``INTERLINK_API_KEY``,
``--tenant`` / ``INTERLINK_TENANT_ID`` and (most) ``--json``, added by :func:`client_command`. API
errors print the problem to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import pydantic
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlink.client import (
    InterlinkAPIError,
    InterlinkClient,
    InterlinkClientError,
    Page,
)
from interlink.client._base import DEFAULT_BASE_URL

T = TypeVar("T")

Url = Annotated[
    str,
    typer.Option("--url", envvar="INTERLINK_API_URL", help="Base URL of the Interlink API."),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="INTERLINK_API_KEY", help="API key to authenticate with.", show_default=False
    ),
]
Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant", envvar="INTERLINK_TENANT_ID", help="Platform keys: the tenant to act for (X-Tenant-Id)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=200, help="Items per page.")]
After = Annotated[str | None, typer.Option("--after", help="Cursor: the nextCursor of the previous page.")]
All = Annotated[bool, typer.Option("--all", help="Fetch every page.")]
Metadata = Annotated[str | None, typer.Option("--metadata", help='JSON object, e.g. \'{"team": "core"}\'.')]


@dataclass(frozen=True)
class Connection:
    url: str
    api_key: str
    tenant: str | None
    as_json: bool


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"interlink: {message}", err=True)
    raise typer.Exit(code=code)


def _print_problem(exc: InterlinkAPIError) -> None:
    line = f"interlink: {exc.status} {exc.title}"
    if exc.detail:
        line += f": {exc.detail}"
    typer.echo(line, err=True)
    for problem in exc.errors:
        named = f"{problem.field}: {problem.message}"
        if named not in (exc.detail or ""):
            typer.echo(f"  {named}", err=True)
    if exc.reason:
        typer.echo(f"  reason: {exc.reason}", err=True)
    if exc.correlation_id:
        typer.echo(f"  correlation id: {exc.correlation_id}", err=True)


@contextmanager
def _api(conn: Connection) -> Iterator[InterlinkClient]:
    """An SDK client; any API or connection error ends the command with a message, never a traceback."""
    if not conn.api_key:
        _fail("no API key: pass --api-key or set INTERLINK_API_KEY", code=2)
    try:
        with InterlinkClient(conn.url, conn.api_key, tenant_id=conn.tenant or None) as client:
            yield client
    except InterlinkAPIError as exc:
        _print_problem(exc)
        raise typer.Exit(code=1) from None
    except InterlinkClientError as exc:
        _fail(f"{exc} (is `interlink serve` running?)")
    except httpx.InvalidURL as exc:
        _fail(f"invalid --url {conn.url!r}: {exc}", code=2)
    except pydantic.ValidationError as exc:
        _fail(f"unexpected answer from {conn.url}: {exc.error_count()} field(s) did not match")
    except ValueError as exc:  # an argument the SDK refuses before sending (an empty id)
        _fail(str(exc), code=2)


# ---- parsing -------------------------------------------------------------------------------------


def _metadata(value: str | None, option: str = "--metadata") -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return parsed


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time such as 2030-01-31T12:00:00Z", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- output --------------------------------------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 220)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=str) if value else "-"
    if isinstance(value, pydantic.BaseModel):
        return json.dumps(value.model_dump(mode="json", by_alias=True))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Page):
        return {
            "data": [_jsonable(v) for v in value.data],
            "hasMore": value.has_more,
            "nextCursor": value.next_cursor,
        }
    return value


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(_jsonable(value), indent=2))


def _show(model: pydantic.BaseModel, title: str | None = None, exclude: set[str] | None = None) -> None:
    """One object as a two-column table of its camelCase fields."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in model.model_dump(by_alias=True, exclude=exclude).items():
        table.add_row(name, Text(_text(value)))
    _console().print(table)


def _one(conn: Connection, model: pydantic.BaseModel, title: str | None = None) -> None:
    if conn.as_json:
        _print_json(model)
    else:
        _show(model, title)


Column = tuple[str, Callable[[Any], Any]]


def _table(rows: Sequence[Any], columns: Sequence[Column], empty: str) -> None:
    if not rows:
        _console().print(empty)
        return
    table = Table()
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_text(get(row))) for _, get in columns))
    _console().print(table)


def _list_output(
    conn: Connection, fetched: Page[Any] | list[Any], columns: Sequence[Column], empty: str
) -> None:
    if isinstance(fetched, list):
        fetched = Page(data=fetched, has_more=False)
    if conn.as_json:
        _print_json(fetched)
        return
    _table(fetched.data, columns, empty)
    if fetched.has_more and fetched.next_cursor:
        typer.echo(f"more: pass --after {fetched.next_cursor} (or --all)", err=True)


# ---- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    """A list command's ``--limit``, ``--after`` and ``--all`` (``every``)."""

    limit: int
    after: str | None
    every: bool


_PAGING_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("limit", Limit, 50),
    ("after", After, None),
    ("every", All, False),
)
_CONNECTION_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("url", Url, DEFAULT_BASE_URL),
    ("api_key", ApiKey, ""),
    ("tenant", Tenant, None),
)
_JSON_OPTION: tuple[str, Any, Any] = ("as_json", AsJson, False)


def client_command(
    app: typer.Typer, name: str, *, paged: bool = False, json_option: bool = True
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``func(conn, ...)`` (``func(conn, paging, ...)`` when ``paged``) as the command
    ``name`` of ``app`` and return the command.

    The command's parameters are ``func``'s own, then with ``paged`` ``--limit`` (default 50),
    ``--after`` and ``--all`` given to ``func`` as one :class:`Paging`, then ``--url``,
    ``--api-key``, ``--tenant`` and, unless ``json_option`` is false, ``--json`` given as one
    :class:`Connection` (``as_json`` false when the command has no ``--json``)."""
    leading = ["conn", "paging"] if paged else ["conn"]
    added = [
        *(_PAGING_OPTIONS if paged else ()),
        *_CONNECTION_OPTIONS,
        *((_JSON_OPTION,) if json_option else ()),
    ]

    def register(func: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(func, eval_str=True)
        params = list(signature.parameters.values())
        if [p.name for p in params[: len(leading)]] != leading:
            raise TypeError(f"{func.__qualname__}: the first parameters must be {', '.join(leading)}")
        params = [
            *params[len(leading) :],
            *(
                inspect.Parameter(
                    option, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=hint
                )
                for option, hint, default in added
            ),
        ]

        def command(**values: Any) -> None:
            conn = Connection(
                values.pop("url"), values.pop("api_key"), values.pop("tenant"), values.pop("as_json", False)
            )
            if paged:
                func(conn, Paging(values.pop("limit"), values.pop("after"), values.pop("every")), **values)
            else:
                func(conn, **values)

        command.__name__ = func.__name__
        command.__qualname__ = func.__qualname__
        command.__module__ = func.__module__
        command.__doc__ = func.__doc__
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        app.command(name)(command)
        return command

    return register


def api_call(conn: Connection, request: Callable[[InterlinkClient], T]) -> T:
    """What ``request`` returns given an SDK client for ``conn``; API and connection errors end the
    command as :func:`_api` says. The client closes afterwards: iterate paged results inside."""
    with _api(conn) as client:
        return request(client)


def print_list(
    conn: Connection,
    paging: Paging,
    page: Callable[[InterlinkClient], Page[Any]],
    all_items: Callable[[InterlinkClient], Iterable[Any]],
    columns: Sequence[Column],
    empty: str,
) -> None:
    """A list command's output: the page ``page`` fetches or, with ``--all``, every item of
    ``all_items``; as :func:`_list_output` prints it."""
    fetched: Page[Any] | list[Any] = api_call(
        conn, lambda client: list(all_items(client)) if paging.every else page(client)
    )
    _list_output(conn, fetched, columns, empty)


def print_pages(
    conn: Connection,
    paging: Paging,
    resource: Callable[[InterlinkClient], Any],
    columns: Sequence[Column],
    empty: str,
    **filters: Any,
) -> None:
    """:func:`print_list` for an SDK resource whose ``list(limit=, after=, **filters)`` and
    ``iter_all(page_size=, **filters)`` take the same ``filters``."""
    print_list(
        conn,
        paging,
        lambda client: resource(client).list(limit=paging.limit, after=paging.after, **filters),
        lambda client: resource(client).iter_all(page_size=paging.limit, **filters),
        columns,
        empty,
    )


def json_or(conn: Connection, value: T, human: Callable[[T], object]) -> None:
    """``value`` as JSON with ``--json``; otherwise what ``human(value)`` prints."""
    if conn.as_json:
        _print_json(value)
    else:
        human(value)


def json_or_say(conn: Connection, value: Any, message: str) -> None:
    """``value`` as JSON with ``--json``; otherwise the one line ``message``."""
    if conn.as_json:
        _print_json(value)
    else:
        typer.echo(message)

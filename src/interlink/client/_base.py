"""What the sync and async clients share: configuration, headers, retry policy, request bodies."""

from __future__ import annotations

import copy
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any, Final, Generic, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from interlink import __version__
from interlink.client.errors import InterlinkConnectionError, InterlinkTimeoutError, error_from_response
from interlink.client.models import Page

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MAX_RETRIES: Final = 2
CORRELATION_HEADER: Final = "X-Correlation-Id"
TENANT_HEADER: Final = "X-Tenant-Id"
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
PROBLEM_TYPE: Final = "application/problem+json"
_MAX_DELAY = 8.0

Params = dict[str, str | int] | tuple[tuple[str, str], ...]
"""Query parameters of a request: a mapping, or pairs when a name repeats."""


class NotGiven:
    """Marks an argument the caller left out (distinct from ``None``, which clears a field)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Final = NotGiven()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def segment(value: str) -> str:
    """A path segment, escaped so an id can never change the route; ValueError for an empty one
    (it would name the collection, not an item of it)."""
    if not value:
        raise ValueError("an id must not be empty")
    return quote(value, safe="")


def camel(name: str) -> str:
    """The API's camelCase name of an SDK keyword argument: ``max_in_flight`` -> ``maxInFlight``."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def item_path(collection: str, item_id: str, suffix: str = "") -> str:
    """``{collection}/{item_id}{suffix}``, the id escaped (see :func:`segment`)."""
    return f"{collection}/{segment(item_id)}{suffix}"


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601, enums as their values, containers recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return value


def body(fields: Mapping[str, Any], *, drop_none: bool) -> dict[str, Any]:
    """A JSON body from camelCase ``fields``: NOT_GIVEN is always left out, ``None`` when asked."""
    return {
        k: jsonable(v)
        for k, v in fields.items()
        if not isinstance(v, NotGiven) and not (drop_none and v is None)
    }


def query(params: Mapping[str, Any]) -> dict[str, str | int]:
    """Query parameters from camelCase ``params``, leaving out ``None``."""
    out: dict[str, str | int] = {}
    for k, v in params.items():
        if v is None:
            continue
        converted = jsonable(v)
        out[k] = converted if isinstance(converted, int) else str(converted)
    return out


def rate_limit_body(limit: int | NotGiven | None, period_seconds: int | None) -> Any:
    """``rateLimit`` for a request: NOT_GIVEN, ``None`` (remove) or ``{limit, periodSeconds}``."""
    if limit is None or isinstance(limit, NotGiven):
        return limit
    out: dict[str, int] = {"limit": limit}
    if period_seconds is not None:
        out["periodSeconds"] = period_seconds
    return out


def model_or_mapping(value: Any) -> Any:
    """A nested object for a body: a model as its camelCase dump, a mapping as a dict, else as is."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def scope_list(scopes: Iterable[str]) -> list[str]:
    return [str(getattr(s, "value", s)) for s in scopes]


def interlink_problem(response: httpx.Response) -> bool:
    """Whether ``response`` is a problem of Interlink's own (``application/problem+json``), not a
    provider's answer passed through: those carry ``Interlink-Attempts``, Interlink's problems never."""
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type == PROBLEM_TYPE and "interlink-attempts" not in response.headers


def parse(model: type[M], response: httpx.Response) -> M:
    return model.model_validate(response.json())


def parse_page(model: type[M], response: httpx.Response) -> Page[M]:
    payload = response.json()
    return Page(
        data=[model.model_validate(item) for item in payload.get("data", [])],
        has_more=bool(payload.get("hasMore")),
        next_cursor=payload.get("nextCursor"),
        correlation_id=response.headers.get("x-correlation-id"),
    )


class ClientConfig:
    """Connection settings shared by a client and the copies made by ``with_options``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        tenant_id: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        correlation_id: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required (an Interlink API key: il_live_...)")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.tenant_id = tenant_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.correlation_id = correlation_id
        self.last_correlation_id: str | None = None

    @staticmethod
    def env(base_url: str | None, api_key: str | None, tenant_id: str | None) -> tuple[str, str, str | None]:
        """Arguments filled from ``INTERLINK_API_URL``, ``INTERLINK_API_KEY``, ``INTERLINK_TENANT_ID``."""
        url = base_url or os.environ.get("INTERLINK_API_URL") or DEFAULT_BASE_URL
        key = api_key or os.environ.get("INTERLINK_API_KEY") or ""
        tenant = tenant_id or os.environ.get("INTERLINK_TENANT_ID") or None
        return url, key, tenant

    def default_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": f"interlink-python/{__version__}",
            "Accept": "application/json",
        }

    def request_headers(self, tenant_id: str | None, correlation_id: str) -> dict[str, str]:
        headers = {CORRELATION_HEADER: correlation_id}
        tenant = tenant_id or self.tenant_id
        if tenant:
            headers[TENANT_HEADER] = tenant
        return headers

    def next_correlation_id(self) -> str:
        return self.correlation_id or new_correlation_id()

    def retry_delay(
        self,
        method: str,
        attempt: int,
        *,
        response: httpx.Response | None = None,
        error: Exception | None = None,
        retry_safe: bool = False,
    ) -> float | None:
        """Seconds to wait before retrying, or None to stop.

        Idempotent requests (by method, or ``retry_safe``: a POST carrying idempotency keys) are
        retried on 503 (not when its ``Retry-After`` is longer than the SDK would wait) and on
        transport errors; any request is retried when the connection could not be opened (nothing
        was sent).
        """
        if attempt >= self.max_retries:
            return None
        idempotent = retry_safe or method.upper() in IDEMPOTENT_METHODS
        if response is not None:
            if response.status_code != 503 or not idempotent:
                return None
            delay = backoff(attempt)
            hinted = response.headers.get("retry-after")
            if hinted and hinted.isascii() and hinted.isdigit():
                if float(hinted) > _MAX_DELAY:
                    return None  # asked to wait longer than a retry here would: the error now
                delay = max(delay, float(hinted))
            return min(delay, _MAX_DELAY)
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)) or (
            idempotent and isinstance(error, httpx.TransportError)
        ):
            return backoff(attempt)
        return None

    def settle(
        self,
        method: str,
        attempt: int,
        correlation_id: str,
        outcome: httpx.Response | httpx.TransportError,
        *,
        retry_safe: bool,
        passthrough: bool = False,
    ) -> float | httpx.Response:
        """After one attempt: the seconds to wait before the next one, or the final answer.

        A final non-2xx answer raises its typed error (:meth:`check`); a final transport error
        raises :class:`InterlinkConnectionError` (or :class:`InterlinkTimeoutError`). With
        ``passthrough`` any answer but a problem of Interlink's own is final and returned.
        """
        if isinstance(outcome, httpx.Response):
            if passthrough and not interlink_problem(outcome):  # a provider's answer, whatever its status
                self.remember(outcome, correlation_id)
                return outcome
            delay = self.retry_delay(method, attempt, response=outcome, retry_safe=retry_safe)
            return self.check(outcome, correlation_id) if delay is None else delay
        delay = self.retry_delay(method, attempt, error=outcome, retry_safe=retry_safe)
        if delay is None:
            raise connection_error(outcome, self.base_url, correlation_id) from outcome
        return delay

    def remember(self, response: httpx.Response, correlation_id: str) -> None:
        """Keep the answer's correlation id (the one sent when it has none) as the last one."""
        self.last_correlation_id = response.headers.get("x-correlation-id", correlation_id)

    def check(self, response: httpx.Response, correlation_id: str) -> httpx.Response:
        """Remember the correlation id; raise the typed error for a non-2xx answer."""
        self.remember(response, correlation_id)
        if response.is_success:
            return response
        raise error_from_response(response)


class ClientCore:
    """What :class:`InterlinkClient` and :class:`AsyncInterlinkClient` share besides their I/O."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        """``options`` are the keyword arguments of :class:`ClientConfig`."""
        self._config = ClientConfig(base_url, api_key, **options)
        self._owns_http = True

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A client from ``INTERLINK_API_URL``, ``INTERLINK_API_KEY`` and ``INTERLINK_TENANT_ID``."""
        url, key, tenant = ClientConfig.env(
            kwargs.pop("base_url", None), kwargs.pop("api_key", None), kwargs.pop("tenant_id", None)
        )
        return cls(url, key, tenant_id=tenant, **kwargs)

    def _bind(self) -> None:
        """Attach the resources (``self.keys``, ``self.endpoints``, ...) to this client."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def tenant_id(self) -> str | None:
        return self._config.tenant_id

    @property
    def last_correlation_id(self) -> str | None:
        """The ``X-Correlation-Id`` of the most recent answer."""
        return self._config.last_correlation_id

    def with_options(
        self,
        *,
        tenant_id: str | NotGiven | None = NOT_GIVEN,
        correlation_id: str | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Self:
        """A copy sharing this client's connections, with other defaults (closing it is a no-op)."""
        clone = copy.copy(self)
        clone._config = copy.copy(self._config)
        clone._config.last_correlation_id = None
        if not isinstance(tenant_id, NotGiven):
            clone._config.tenant_id = tenant_id
        if not isinstance(correlation_id, NotGiven):
            clone._config.correlation_id = correlation_id
        if not isinstance(max_retries, NotGiven):
            clone._config.max_retries = max_retries
        clone._owns_http = False
        clone._bind()
        return clone

    def _start(self, tenant_id: str | None) -> tuple[str, dict[str, str]]:
        """The correlation id and headers of a new request (the same for all its attempts)."""
        correlation_id = self._config.next_correlation_id()
        return correlation_id, self._config.request_headers(tenant_id, correlation_id)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.25 s, 0.5 s, 1 s, ... capped at 8 s."""
    return float(min(_MAX_DELAY, 0.25 * (2**attempt)) * random.uniform(0.75, 1.25))


def connection_error(
    exc: httpx.TransportError, base_url: str, correlation_id: str
) -> InterlinkConnectionError:
    """The SDK error for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return InterlinkTimeoutError(
            f"Interlink at {base_url} did not answer in time ({type(exc).__name__})",
            url=base_url,
            correlation_id=correlation_id,
        )
    return InterlinkConnectionError(
        f"cannot reach Interlink at {base_url}: {exc or type(exc).__name__}",
        url=base_url,
        correlation_id=correlation_id,
    )


class SyncRequester(Protocol):
    """What a blocking resource needs of its client (:class:`InterlinkClient` provides it)."""

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        tenant_id: str | None = None,
        retry_safe: bool = False,
        passthrough: bool = False,
    ) -> httpx.Response: ...


class AsyncRequester(Protocol):
    """What an async resource needs of its client (:class:`AsyncInterlinkClient` provides it)."""

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        tenant_id: str | None = None,
        retry_safe: bool = False,
        passthrough: bool = False,
    ) -> httpx.Response: ...


@dataclass(frozen=True)
class Call(Generic[R]):
    """One API request and how to read its answer.

    Built by a pure function shared by a blocking resource and its asyncio twin; :func:`send` and
    :func:`asend` make the request (retries and error mapping are the client's ``_request``).
    ``content`` is a raw body (instead of ``json``) and ``headers`` are sent besides the client's;
    ``passthrough`` marks a call whose answer is a provider's, read whatever its status (only a
    problem of Interlink's own raises).
    """

    method: str
    path: str
    read: Callable[[httpx.Response], R]
    params: Params | None = None
    json: Any = None
    tenant_id: str | None = None
    retry_safe: bool = False
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    passthrough: bool = False

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``_request`` besides method and path."""
        return {
            "params": self.params,
            "json": self.json,
            "content": self.content,
            "headers": self.headers,
            "tenant_id": self.tenant_id,
            "retry_safe": self.retry_safe,
            "passthrough": self.passthrough,
        }


def call(
    model: type[M],
    method: str,
    path: str,
    *,
    params: dict[str, str | int] | None = None,
    json: Any = None,
    tenant_id: str | None = None,
    retry_safe: bool = False,
) -> Call[M]:
    """A request whose answer is one ``model``."""
    return Call(method, path, partial(parse, model), params, json, tenant_id, retry_safe)


def page_call(
    model: type[M], path: str, params: dict[str, str | int], tenant_id: str | None = None
) -> Call[Page[M]]:
    """A ``GET`` of one page of ``model`` items."""
    return Call("GET", path, partial(parse_page, model), params, tenant_id=tenant_id)


def _nothing(response: httpx.Response) -> None:
    return None


def empty_call(method: str, path: str, tenant_id: str | None = None) -> Call[None]:
    """A request whose answer carries nothing to read (``DELETE``)."""
    return Call(method, path, _nothing, tenant_id=tenant_id)


def send(client: SyncRequester, request: Call[R]) -> R:
    """Make ``request`` with a blocking client and read the answer (a non-2xx raises the typed error)."""
    return request.read(client._request(request.method, request.path, **request.options()))


async def asend(client: AsyncRequester, request: Call[R]) -> R:
    """:func:`send` for an asyncio client."""
    return request.read(await client._request(request.method, request.path, **request.options()))


class Paged(Protocol[T_co]):
    """A page of a list: its items, whether more follow and the cursor to the next page."""

    @property
    def data(self) -> Sequence[T_co]: ...

    @property
    def has_more(self) -> bool: ...

    @property
    def next_cursor(self) -> str | None: ...


def next_after(page: Paged[Any]) -> str | None:
    """The cursor of the page after ``page``, or None when it is the last one."""
    return page.next_cursor if page.has_more and page.next_cursor else None


def paginate(
    fetch: Callable[[str | None], Paged[T]],
    follow: Callable[[Paged[T]], str | None] = next_after,
) -> Iterator[T]:
    """Every item of every page: ``fetch(cursor)`` from ``None`` while ``follow(page)`` gives a cursor."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.data
        cursor = follow(page)
        if cursor is None:
            return


async def apaginate(
    fetch: Callable[[str | None], Awaitable[Paged[T]]],
    follow: Callable[[Paged[T]], str | None] = next_after,
) -> AsyncIterator[T]:
    """:func:`paginate` for an asyncio ``fetch`` (use with ``async for``)."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.data:
            yield item
        cursor = follow(page)
        if cursor is None:
            return


class SyncResource:
    """Base of a blocking resource: holds the client and sends :class:`Call` s through it."""

    def __init__(self, client: SyncRequester) -> None:
        self._c = client

    def _send(self, request: Call[R]) -> R:
        return send(self._c, request)


class AsyncResource:
    """Base of an asyncio resource: :class:`SyncResource` with ``await``."""

    def __init__(self, client: AsyncRequester) -> None:
        self._c = client

    async def _send(self, request: Call[R]) -> R:
        return await asend(self._c, request)

"""Typed requests: the guide's ApiEndpointConfig and ApiRequestBuilder.

An :class:`ApiEndpointConfig` describes one operation of a provider's API: method, a path template
with ``{param}`` placeholders, default query parameters and headers, an optional default body, a
timeout, and whether the operation is idempotent. An :class:`ApiRequestBuilder` fills it in for
one call; :meth:`ApiRequestBuilder.build` validates everything and produces the
:class:`PreparedRequest` the client sends.

Contracts (every refusal is :class:`~interlink.core.errors.ValidationFailed` naming the field):

* **Path parameters** (``parameters.<name>``): every placeholder needs a value and every value
  needs a placeholder; values are non-empty strings, integers or UUIDs, percent-encoded as one
  path segment (``/`` and ``?`` cannot change the route); ``.`` and ``..`` are refused.
* **Query parameters** (``query.<name>``): strings, integers, finite floats, booleans
  (``true``/``false``) or lists of them (the name repeats); ``None`` leaves a default out. The
  endpoint may restrict names (``query_params``) and require some (``required_query``). The
  request's values override the endpoint's defaults. A request may also carry a query string
  sent as it came (``raw_query``, the proxy's passthrough form): ASCII without ``#``, CR, LF or
  NUL (characters a request target cannot hold are percent-encoded when sent, escapes kept). It
  goes first, less any parameter that ``query`` names (so an injected credential parameter
  replaces the caller's).
* **Headers** (``headers.<name>``): RFC 9110 token names, values without control characters (but
  HTAB) or lone surrogates. Client defaults, then the endpoint's, then the request's
  (case-insensitively replaced). Query, form and text body values must be valid Unicode too.
* **Body** (``body``): JSON (anything ``json.dumps`` takes, finite numbers only) sent as
  ``application/json``; ``bytes`` or ``str`` sent as they are; ``form`` as
  ``application/x-www-form-urlencoded``.
* **Idempotency.** GET, HEAD, OPTIONS, PUT and DELETE are idempotent; POST and PATCH are not,
  unless the endpoint says ``idempotent=True`` or the request carries an ``Idempotency-Key``
  header (``idempotency_key`` sets it). Only idempotent requests are retried once sent.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Final
from urllib.parse import quote, unquote_plus, urlsplit

from interlink.core.errors import ValidationFailed

METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"})
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
MAX_TIMEOUT_SECONDS: Final = 300.0

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
"""Control characters but HTAB (CR and LF would inject headers), and lone surrogates (no bytes)."""
_BAD_PATH_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _q(text: str) -> str:
    """Percent-encode ``text`` as one component (``quote(text, safe="")``, skipped when not needed)."""
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


class _NoBody:
    """The request has no body of its own (the endpoint's default applies)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Final = _NoBody()

PathValue = str | int | uuid.UUID
QueryScalar = str | int | float | bool
QueryValue = QueryScalar | Sequence[QueryScalar] | None


def _invalid(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, field=field)


def _check_timeout(value: float | None, name: str) -> None:
    if value is not None and not (0 < value <= MAX_TIMEOUT_SECONDS and math.isfinite(value)):
        raise _invalid(f"{name} must be between 0 and {MAX_TIMEOUT_SECONDS:g} seconds", name)


def check_headers(headers: Mapping[str, str], prefix: str = "headers") -> None:
    """Refuse header names that are not tokens and values with CR, LF or NUL (header injection)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise _invalid(f"header name {name!r} is not a valid token", f"{prefix}.{name}")
        if not isinstance(value, str):
            raise _invalid("header values must be strings", f"{prefix}.{name}")
        if _BAD_HEADER_VALUE.search(value):
            raise _invalid(
                "header values must not contain control characters (CR, LF, NUL, ...) or lone surrogates",
                f"{prefix}.{name}",
            )


def _merge_headers(target: dict[str, str], lowered: dict[str, str], extra: Mapping[str, str]) -> None:
    """Set ``extra`` on ``target``, replacing names case-insensitively (``lowered``: lower → name)."""
    for name, value in extra.items():
        previous = lowered.get(name.lower())
        if previous is not None and previous != name:
            del target[previous]
        target[name] = value
        lowered[name.lower()] = name


@dataclass(frozen=True, slots=True)
class ApiEndpointConfig:
    """One operation of an API (the guide's ApiEndpointConfig)."""

    path: str
    """``/customers/{id}``, joined to the client's base URL, or an absolute http(s) URL."""
    method: str = "GET"
    name: str | None = None
    """A short operation name for logs and metrics (``customers.get``)."""
    query: Mapping[str, QueryValue] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    """Default JSON body (``None``: none)."""
    timeout_seconds: float | None = None
    idempotent: bool | None = None
    """``None``: decided by the method; ``True`` allows retrying POST/PATCH after sending."""
    query_params: frozenset[str] | None = None
    """Allowed query parameter names (``None``: any)."""
    required_query: frozenset[str] = frozenset()
    _segments: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    _default_query: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built per call by the proxy and ``ApiClient.call``: the common case (an upper-case
        # method, a path without placeholders, no headers or query) skips the work it does not need.
        method = self.method
        if not (isinstance(method, str) and method in METHODS):
            method = str(method).upper()
            if method not in METHODS:
                raise _invalid(f"method must be one of {', '.join(sorted(METHODS))}", "method")
            object.__setattr__(self, "method", method)
        path = self.path
        if not isinstance(path, str) or not path:
            raise _invalid("path is required", "path")
        if not (path[0] == "/" or path.lower().startswith(("http://", "https://"))):
            raise _invalid("path must start with / or be an absolute http(s) URL", "path")
        if "?" in path or "#" in path:
            raise _invalid("path must not contain a query or fragment (use query)", "path")
        if " " in path or _BAD_PATH_TEXT.search(path):
            raise _invalid("path must not contain whitespace or control characters", "path")
        if "{" in path or "}" in path:
            parts = _PLACEHOLDER.split(path)
            names = tuple(parts[1::2])
            if len(set(names)) != len(names):
                raise _invalid("path names a parameter twice", "path")
            if any("{" in p or "}" in p for p in parts[0::2]):
                raise _invalid("path placeholders are {name} (letters, digits, underscores)", "path")
            object.__setattr__(self, "_segments", tuple(parts))
            object.__setattr__(self, "_names", names)
        else:
            object.__setattr__(self, "_segments", (path,))
        if self.timeout_seconds is not None:
            _check_timeout(self.timeout_seconds, "timeout_seconds")
        if self.headers:
            check_headers(self.headers)
        if self.query_params is not None:
            unknown = sorted((set(self.required_query) | set(self.query)) - set(self.query_params))
            if unknown:
                raise _invalid(f"query parameters not in query_params: {', '.join(unknown)}", "query")
        if self.query:
            object.__setattr__(self, "_default_query", encode_pairs(self.query, "query"))

    @property
    def path_params(self) -> tuple[str, ...]:
        """The placeholders of the path template, in order."""
        return self._names

    @property
    def is_idempotent(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in IDEMPOTENT_METHODS


@dataclass(slots=True)
class PreparedRequest:
    """A validated request, ready to send."""

    method: str
    url: str
    origin: str
    """``scheme://host:port``: the pool, the SSRF guard and the host rate limit key on it."""
    host: str
    headers: dict[str, str]
    body: bytes | None
    timeout_seconds: float
    idempotent: bool
    operation: str | None


def _path_value(name: str, value: Any) -> str:
    where = f"parameters.{name}"
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise _invalid("path parameters must be strings, integers or UUIDs", where)
    text = str(value)
    if text in ("", ".", ".."):
        raise _invalid("path parameters must not be empty, '.' or '..'", where)
    if _BAD_PATH_TEXT.search(text):
        raise _invalid("path parameters must not contain control characters or lone surrogates", where)
    return _q(text)


def _query_scalar(name: str, value: Any, prefix: str = "query") -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid("numbers must be finite", f"{prefix}.{name}")
        return repr(value)
    if isinstance(value, (str, int, uuid.UUID)):
        text = str(value)
        if "\x00" in text:
            raise _invalid("values must not contain NUL", f"{prefix}.{name}")
        return text
    raise _invalid("values must be strings, numbers, booleans or lists of them", f"{prefix}.{name}")


def _json_body(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise _invalid(f"body is not JSON-serialisable: {exc}", "body") from None


def encode_pairs(values: Mapping[str, QueryValue], prefix: str) -> str:
    """``name=value&...`` (percent-encoded; lists repeat the name; ``None`` is left out)."""
    out: list[str] = []
    for name, value in values.items():
        if not isinstance(name, str) or not name or "\x00" in name:
            raise _invalid("names must be non-empty strings", f"{prefix}.{name}")
        if value is None:
            continue
        key = _q(name)
        if isinstance(value, (list, tuple)):
            out.extend(f"{key}={_q(_query_scalar(name, v, prefix))}" for v in value)
        else:
            out.append(f"{key}={_q(_query_scalar(name, value, prefix))}")
    return "&".join(out)


_BAD_RAW_QUERY = re.compile(r"[^\x21-\x7e ]|#")


def _raw_query(raw: str, replaced: Mapping[str, QueryValue]) -> str:
    """``raw`` checked (see the module doc), less its parameters named in ``replaced``."""
    if _BAD_RAW_QUERY.search(raw):
        raise _invalid("the query string must be ASCII, without #, CR, LF or NUL", "query")
    if not replaced:
        return raw
    return "&".join(pair for pair in raw.split("&") if unquote_plus(pair.partition("=")[0]) not in replaced)


_ORIGINS: dict[str, tuple[str, str]] = {}
_ORIGIN_CACHE_SIZE: Final = 4096


def _origin_of(url: str, *, cache: bool) -> tuple[str, str]:
    """``(scheme://host:port, host)`` of an absolute http(s) URL; base URLs are cached."""
    found = _ORIGINS.get(url) if cache else None
    if found is not None:
        return found
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("the request URL must be an absolute http(s) URL", "path")
    if parts.username is not None or parts.password is not None:
        raise _invalid("the request URL must not contain credentials (user:password@)", "path")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise _invalid("the request URL has an invalid port", "path") from None
    host = parts.hostname
    found = (f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}", host)
    if cache and len(_ORIGINS) < _ORIGIN_CACHE_SIZE:
        _ORIGINS[url] = found
    return found


@dataclass(frozen=True, slots=True)
class ApiRequestBuilder:
    """One call of an endpoint (the guide's ApiRequestBuilder): parameters, query, headers, body.

    Immutable; the ``with_*`` methods return a changed copy.
    """

    config: ApiEndpointConfig
    parameters: Mapping[str, PathValue] = field(default_factory=dict)
    query: Mapping[str, QueryValue] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = NO_BODY
    """JSON value, ``bytes`` or ``str``; ``NO_BODY`` uses the endpoint's default body."""
    form: Mapping[str, QueryValue] | None = None
    idempotency_key: str | None = None
    timeout_seconds: float | None = None
    raw_query: str = ""
    """A query string sent as it is (see the module doc)."""

    def with_parameters(self, **values: PathValue) -> ApiRequestBuilder:
        return replace(self, parameters={**self.parameters, **values})

    def with_query(self, **values: QueryValue) -> ApiRequestBuilder:
        return replace(self, query={**self.query, **values})

    def with_headers(self, headers: Mapping[str, str]) -> ApiRequestBuilder:
        return replace(self, headers={**self.headers, **headers})

    def with_json(self, body: Any) -> ApiRequestBuilder:
        return replace(self, body=body, form=None)

    def with_form(self, form: Mapping[str, QueryValue]) -> ApiRequestBuilder:
        return replace(self, form=dict(form), body=NO_BODY)

    def with_idempotency_key(self, key: str | None = None) -> ApiRequestBuilder:
        """Mark the request safe to retry; without ``key`` a random UUID is used."""
        return replace(self, idempotency_key=key or str(uuid.uuid4()))

    def replaced(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, QueryValue] | None = None,
    ) -> ApiRequestBuilder:
        """A copy with ``headers`` and/or ``query`` replaced (not merged): ``dataclasses.replace``
        at half the cost, for the per-call credential injection."""
        return ApiRequestBuilder(
            self.config,
            self.parameters,
            self.query if query is None else query,
            self.headers if headers is None else headers,
            self.body,
            self.form,
            self.idempotency_key,
            self.timeout_seconds,
            self.raw_query,
        )

    def with_call(
        self,
        *,
        parameters: Mapping[str, PathValue] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = NO_BODY,
        form: Mapping[str, QueryValue] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiRequestBuilder:
        """The keyword arguments of the clients' ``request``/``call`` added (empty ones change
        nothing; ``form`` wins over ``body``)."""
        builder = self
        if parameters:
            builder = builder.with_parameters(**parameters)
        if query:
            builder = builder.with_query(**query)
        if headers:
            builder = builder.with_headers(headers)
        if form is not None:
            builder = builder.with_form(form)
        elif body is not NO_BODY:
            builder = builder.with_json(body)
        if idempotency_key is not None:
            builder = builder.with_idempotency_key(idempotency_key)
        return builder

    def build(
        self,
        base_url: str = "",
        default_headers: Mapping[str, str] | None = None,
        default_timeout: float = 30.0,
    ) -> PreparedRequest:
        """Validate and assemble the request (see the module doc for the rules).

        ``default_headers`` (the client's) are taken as already checked (:class:`ApiClientConfig`
        checks them when it is built)."""
        config = self.config
        path = self._path()
        if path[0] == "/":
            if not base_url:
                raise _invalid("a relative path needs the client's base_url", "path")
            origin, host = _origin_of(base_url, cache=True)
            url = base_url.rstrip("/") + path
        else:
            url = path
            origin, host = _origin_of(url, cache=False)
        try:
            query = self._query()
        except UnicodeEncodeError:
            raise _invalid("query values must be valid Unicode text (no lone surrogates)", "query") from None
        if self.raw_query:
            raw = _raw_query(self.raw_query, self.query)
            query = f"{raw}&{query}" if raw and query else raw or query
        if query:
            url = f"{url}?{query}"

        headers: dict[str, str] = dict(default_headers) if default_headers else {}
        lowered = {name.lower(): name for name in headers}
        if config.headers:
            _merge_headers(headers, lowered, config.headers)
        if self.headers:
            check_headers(self.headers)
            _merge_headers(headers, lowered, self.headers)
        if self.idempotency_key is not None:
            key = self.idempotency_key
            if not key or len(key) > 255 or _BAD_HEADER_VALUE.search(key):
                raise _invalid(
                    "idempotency_key must be 1-255 characters without control characters", "idempotency_key"
                )
            _merge_headers(headers, lowered, {IDEMPOTENCY_HEADER: key})

        try:
            body = self._body(headers, lowered)
        except UnicodeEncodeError:
            field = "form" if self.form is not None else "body"
            raise _invalid(f"{field} must be valid Unicode text (no lone surrogates)", field) from None
        _check_timeout(self.timeout_seconds, "timeout_seconds")
        timeout = self.timeout_seconds or config.timeout_seconds or default_timeout
        idempotent = config.is_idempotent or "idempotency-key" in lowered
        return PreparedRequest(
            method=config.method,
            url=url,
            origin=origin,
            host=host,
            headers=headers,
            body=body,
            timeout_seconds=timeout,
            idempotent=idempotent,
            operation=config.name,
        )

    def _path(self) -> str:
        config = self.config
        names = config._names
        supplied = self.parameters
        if not names:
            if supplied:
                raise _invalid("the path has no such parameter", f"parameters.{sorted(supplied)[0]}")
            return config.path
        segments = config._segments
        out = [segments[0]]
        for i, name in enumerate(names):
            if name not in supplied:
                raise _invalid("path parameter is required", f"parameters.{name}")
            out.append(_path_value(name, supplied[name]))
            out.append(segments[2 * i + 2])
        if len(supplied) != len(names):
            extra = sorted(set(supplied) - set(names))
            raise _invalid("the path has no such parameter", f"parameters.{extra[0]}")
        return "".join(out)

    def _query(self) -> str:
        config = self.config
        if not self.query:
            if config.required_query:
                merged_defaults = config.query
                for name in config.required_query:
                    if merged_defaults.get(name) is None:
                        raise _invalid("query parameter is required", f"query.{name}")
            return config._default_query
        if config.query_params is not None:
            unknown = sorted(set(self.query) - config.query_params)
            if unknown:
                raise _invalid("unknown query parameter", f"query.{unknown[0]}")
        if config.query and not config.required_query and config.query.keys().isdisjoint(self.query):
            return f"{config._default_query}&{encode_pairs(self.query, 'query')}".strip("&")
        merged: dict[str, QueryValue] = {**config.query, **self.query} if config.query else dict(self.query)
        for name in config.required_query:
            if merged.get(name) is None:
                raise _invalid("query parameter is required", f"query.{name}")
        return encode_pairs(merged, "query")

    def _body(self, headers: dict[str, str], lowered: dict[str, str]) -> bytes | None:
        if self.form is not None:
            if "content-type" not in lowered:
                _merge_headers(headers, lowered, {"Content-Type": "application/x-www-form-urlencoded"})
            return encode_pairs(self.form, "form").encode()
        value = self.config.body if self.body is NO_BODY else self.body
        if value is None or value is NO_BODY:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            if "content-type" not in lowered:
                _merge_headers(headers, lowered, {"Content-Type": "text/plain; charset=utf-8"})
            return value.encode()
        if "content-type" not in lowered:
            _merge_headers(headers, lowered, {"Content-Type": "application/json"})
        return _json_body(value)

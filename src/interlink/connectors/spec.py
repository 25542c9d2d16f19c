"""Declarative REST connector specs (YAML) and their validation.

A spec describes a provider's REST resources so :class:`~interlink.connectors.rest.DeclarativeRestConnector`
can list, get, create, update and delete records without code::

    version: 1
    connectors:
      - key: acme-crm
        name: Acme CRM
        providers: [acme]
        resources:
          - name: customers
            list_path: /customers
            get_path: /customers/{id}
            create_path: /customers
            update_path: /customers/{id}
            update_method: PATCH
            delete_path: /customers/{id}
            id_field: id
            updated_at_field: updatedAt
            records_path: data            # where the list is in a list answer ("" = the body)
            pagination: {style: cursor, cursor_param: after, cursor_path: meta.next, page_size: 50}
            incremental: {param: updated_since, format: iso8601}

Contracts:

* Paths start with ``/`` and are relative to the connection's base URL. ``get_path``,
  ``update_path`` and ``delete_path`` contain ``{id}``; ``list_path`` and ``create_path`` no
  placeholder. A resource's operations are the paths it has (``operations`` may narrow them).
* Field paths (``id_field``, ``records_path``, ``cursor_path``, ...) are dotted (``meta.next``).
* Pagination styles: ``none`` (one request), ``page`` (``page_param`` counts from
  ``first_page``; stops at a short page or ``has_more_path`` false), ``offset`` (``offset_param``;
  stops at a short page), ``cursor`` (``cursor_param`` takes the value at ``cursor_path`` or the
  ``cursor_header``, or with ``cursor_from: last_id`` the last record's id; stops when there is none
  or ``has_more_path`` is false) and ``link_header`` (RFC 8288 ``Link: <...>; rel="next"``).
  ``link_header`` sends ``page_param`` = ``first_page`` on the first request when it is set.
  ``size_param`` carries the page size (``page_size``, at most ``max_page_size``);
  ``max_pages`` caps how many pages one listing may walk (a safety net for looping servers).
* ``incremental.param`` is sent with the ``since`` time as ISO 8601 (``format: iso8601``) or Unix
  seconds (``format: unix``).
* ``rate_limits`` document the provider's limits for this connector (informational; the connection's
  outbound client enforces the provider's limits).

:func:`load_specs` reads files and reports every problem as ``file:line: connector 'key': field: message``
(the same form as the provider catalogue), raising :class:`ConnectorSpecError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from interlink.connections.schemas import PROVIDER_KEY_PATTERN, RateLimit, SpecModel
from interlink.core.yaml_nodes import (
    merge_nodes,
    read_keyed_entries,
    validate_entry,
)

MAX_ERRORS = 20
CONNECTOR_KEY_PATTERN = PROVIDER_KEY_PATTERN
RESOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
OPERATIONS = ("list", "get", "create", "update", "delete")
Operation = Literal["list", "get", "create", "update", "delete"]
_FIELD_PATH = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")
_PARAM = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,100}$")
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9_.~!$&'()*+,;=:@%/{}-]*$")


class ConnectorSpecError(Exception):
    """Connector specs that cannot be used. ``problems`` are ``file:line: ...`` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_ERRORS]
        more = len(self.problems) - len(shown)
        text = "invalid connector specs:\n  " + "\n  ".join(shown)
        if more > 0:
            text += f"\n  ... and {more} more"
        super().__init__(text)


def _field_path(value: str | None, *, allow_empty: bool = False) -> str | None:
    if value is None or (allow_empty and value == ""):
        return value
    if not _FIELD_PATH.match(value):
        raise ValueError(f"{value!r} is not a dotted field path like 'meta.next_cursor'")
    return value


def _param(value: str | None) -> str | None:
    if value is not None and not _PARAM.match(value):
        raise ValueError(f"{value!r} is not a query parameter name (letters, digits, _ . - [ ])")
    return value


class PaginationSpec(SpecModel):
    """How a list is paged (see the module doc for each style)."""

    style: Literal["none", "cursor", "offset", "page", "link_header"] = "none"
    size_param: str | None = Field(default=None, description="Query parameter carrying the page size.")
    page_size: int = Field(default=50, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    max_pages: int = Field(default=1000, ge=1, le=100_000, description="Most pages one listing walks.")
    page_param: str | None = None
    first_page: int = Field(default=1, ge=0, le=1)
    offset_param: str | None = None
    cursor_param: str | None = None
    cursor_path: str | None = None
    cursor_header: str | None = None
    cursor_from: Literal["body", "header", "last_id"] | None = None
    has_more_path: str | None = None

    @field_validator("size_param", "page_param", "offset_param", "cursor_param")
    @classmethod
    def _params(cls, value: str | None) -> str | None:
        return _param(value)

    @field_validator("cursor_path", "has_more_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return _field_path(value)

    @model_validator(mode="after")
    def _style_fields(self) -> PaginationSpec:
        if self.page_size > self.max_page_size:
            raise ValueError("page_size must not exceed max_page_size")
        needed: dict[str, list[str]] = {
            "page": ["page_param"],
            "offset": ["offset_param", "size_param"],
            "cursor": ["cursor_param"],
            "link_header": [],
            "none": [],
        }
        missing = [name for name in needed[self.style] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"pagination style {self.style!r} needs {', '.join(missing)}")
        if self.style == "cursor":
            source = self.cursor_from or (
                "body" if self.cursor_path else "header" if self.cursor_header else None
            )
            if source is None:
                raise ValueError("cursor pagination needs cursor_path, cursor_header or cursor_from: last_id")
            if source == "body" and not self.cursor_path:
                raise ValueError("cursor_from: body needs cursor_path")
            if source == "header" and not self.cursor_header:
                raise ValueError("cursor_from: header needs cursor_header")
            if source == "last_id" and not self.has_more_path:
                raise ValueError("cursor_from: last_id needs has_more_path (when to stop)")
            object.__setattr__(self, "cursor_from", source)
        return self


class IncrementalSpec(SpecModel):
    """The list filter that returns only records changed at or after a time."""

    param: str = Field(description="Query parameter, e.g. updated_since or updatedAt_gte.")
    format: Literal["iso8601", "unix"] = "iso8601"

    @field_validator("param")
    @classmethod
    def _param_name(cls, value: str) -> str:
        _param(value)
        return value


class ResourceSpec(SpecModel):
    """One resource of a provider's API (see the module doc)."""

    name: str = Field(pattern=RESOURCE_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=500)
    list_path: str | None = None
    get_path: str | None = None
    create_path: str | None = None
    update_path: str | None = None
    update_method: Literal["PATCH", "PUT", "POST"] = "PATCH"
    delete_path: str | None = None
    operations: list[Operation] | None = Field(
        default=None, description="Allowed operations (default: every operation with a path)."
    )
    id_field: str = "id"
    updated_at_field: str | None = None
    records_path: str = Field(default="", description="Where the list is in a list answer ('': the body).")
    record_path: str = Field(default="", description="Where the record is in a single answer ('': the body).")
    body_root: str | None = Field(
        default=None, description="Wrap create/update bodies in this field ({root: {...}})."
    )
    body_encoding: Literal["json", "form"] = "json"
    list_query: dict[str, str | int | bool] = Field(
        default_factory=dict, description="Fixed list parameters."
    )
    pagination: PaginationSpec = Field(default_factory=PaginationSpec)
    incremental: IncrementalSpec | None = None

    @field_validator("id_field", "updated_at_field")
    @classmethod
    def _field_paths(cls, value: str | None) -> str | None:
        return _field_path(value)

    @field_validator("records_path", "record_path")
    @classmethod
    def _optional_paths(cls, value: str) -> str:
        _field_path(value, allow_empty=True)
        return value

    @field_validator("list_path", "get_path", "create_path", "update_path", "delete_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PATH_CHARS.match(value) or "//" in value or "/../" in value or value.endswith("/.."):
            raise ValueError(f"{value!r} must be a path starting with / (no query, no '..')")
        names = re.findall(r"\{([^{}]*)\}", value)
        if any(name != "id" for name in names) or value.count("{") != len(names):
            raise ValueError(f"{value!r}: the only placeholder a path may hold is {{id}}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ResourceSpec:
        for name in ("get_path", "update_path", "delete_path"):
            path = getattr(self, name)
            if path is not None and "{id}" not in path:
                raise ValueError(f"{name} must contain {{id}}")
        for name in ("list_path", "create_path"):
            path = getattr(self, name)
            if path is not None and "{" in path:
                raise ValueError(f"{name} must not contain a placeholder")
        available = self.path_operations()
        if self.operations is not None:
            missing = [op for op in self.operations if op not in available]
            if missing:
                raise ValueError(f"operations {', '.join(missing)} have no path (add {missing[0]}_path)")
        if not self.allowed_operations():
            raise ValueError("a resource needs at least one operation path (list_path, get_path, ...)")
        if self.incremental is not None and self.list_path is None:
            raise ValueError("incremental needs list_path")
        return self

    def path_operations(self) -> list[str]:
        return [op for op in OPERATIONS if getattr(self, f"{op}_path") is not None]

    def allowed_operations(self) -> list[str]:
        """The operations callers may use, in the order list, get, create, update, delete."""
        available = self.path_operations()
        if self.operations is None:
            return available
        return [op for op in OPERATIONS if op in self.operations and op in available]


class ConnectorSpec(SpecModel):
    """A declarative REST connector."""

    key: str = Field(pattern=CONNECTOR_KEY_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    version: str = Field(default="1", min_length=1, max_length=40)
    providers: list[str] = Field(default_factory=list, description="Provider keys this connector serves.")
    resources: list[ResourceSpec] = Field(min_length=1)
    rate_limits: list[RateLimit] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("providers")
    @classmethod
    def _provider_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not re.match(PROVIDER_KEY_PATTERN, key):
                raise ValueError(f"{key!r} is not a provider key")
        if len(set(value)) != len(value):
            raise ValueError("a provider is listed twice")
        return value

    @model_validator(mode="after")
    def _unique_resources(self) -> ConnectorSpec:
        seen: set[str] = set()
        for resource in self.resources:
            if resource.name in seen:
                raise ValueError(f"resource {resource.name!r} is defined twice")
            seen.add(resource.name)
        return self

    def resource(self, name: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.name == name), None)


# -- loading -------------------------------------------------------------------------------------------


def load_specs(paths: Sequence[Path | str]) -> tuple[dict[str, ConnectorSpec], dict[str, str]]:
    """Specs by key from ``paths`` (later files merge into earlier ones by key), and each key's file.

    Raises :class:`ConnectorSpecError` listing every problem.
    """
    problems: list[str] = []
    merged: dict[str, yaml.Node] = {}
    origin: dict[str, str] = {}
    for path in paths:
        for key, node in read_keyed_entries(Path(path), "connector", problems):
            merged[key] = merge_nodes(merged[key], node) if key in merged else node
            origin[key] = str(path)
    specs: dict[str, ConnectorSpec] = {}
    for key in sorted(merged):
        spec = validate_entry(ConnectorSpec, key, merged[key], "connector", problems)
        if spec is not None:
            specs[key] = spec
    if problems:
        raise ConnectorSpecError(problems)
    return specs, origin

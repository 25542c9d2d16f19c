"""Checks for free-form JSON taken from callers (record fields, payloads, metadata).

PostgreSQL stores no NUL character in ``text`` and no ``\\u0000`` anywhere in ``jsonb`` (keys or
values), and JSON has no NaN or Infinity. :func:`check_json` refuses both with a 422 naming the
place (``prefix.key.0.key``), so a request is refused before anything happens, the same way on
every database. :func:`check_field_names` adds the rules for names that are recorded (the audit
trail, the logs): non-empty, bounded, no control characters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from interlink.core.errors import ValidationFailed
from interlink.core.text import CONTROL_CHARACTERS, has_control_characters

MAX_FIELD_NAME_LENGTH = 200
"""The longest field name :func:`check_field_names` accepts."""


def shown(name: str) -> str:
    """``name`` with control characters escaped as ``\\uXXXX`` (printable in a problem or a log)."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def find_unstorable(value: Any, field: str = "") -> tuple[str, str] | None:
    """The first place in ``value`` (keys and items at any depth, below ``field``) holding a string
    with a NUL character or a non-finite number, as ``(place, what is wrong)``; None if none."""
    if _storable(value):
        return None  # the usual case, found without building a single place name
    stack: list[tuple[str, Any]] = [(field, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, "must not contain NUL characters"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "must be a finite number (no NaN or Infinity)"
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                name = shown(str(key))
                if isinstance(key, str) and "\x00" in key:
                    return _join(path, name), "field name must not contain NUL characters"
                stack.append((_join(path, name), child))
        elif isinstance(item, (list, tuple)):
            stack.extend((_join(path, str(i)), child) for i, child in reversed(list(enumerate(item))))
    return None


def _storable(value: Any) -> bool:
    """No string (key or value) with a NUL character and no non-finite number, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or type(item) is int or type(item) is bool:
            continue  # the common scalars, before the chain below (and its Mapping ABC check)
        if isinstance(item, str):
            if "\x00" in item:
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, (dict, Mapping)):  # dict first: a C check, before the ABC's
            for key in item:
                if isinstance(key, str) and "\x00" in key:
                    return False
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def check_json(value: Any, field: str = "") -> None:
    """Raise :class:`ValidationFailed` naming the first place :func:`find_unstorable` finds."""
    found = find_unstorable(value, field)
    if found is not None:
        where = found[0] or "body"
        raise ValidationFailed(f"{where} {found[1]}", field=where)


def check_field_names(data: Mapping[str, Any], field: str = "") -> None:
    """Raise :class:`ValidationFailed` naming the first top-level name of ``data`` that is not a
    non-empty string of at most :data:`MAX_FIELD_NAME_LENGTH` characters without control
    characters (names are recorded in the audit trail)."""
    for key in data:
        where = _join(field, shown(str(key))[:MAX_FIELD_NAME_LENGTH])
        if not isinstance(key, str) or not key:
            raise ValidationFailed("field names must be non-empty strings", field=where or "body")
        if len(key) > MAX_FIELD_NAME_LENGTH:
            raise ValidationFailed(
                f"field names must be at most {MAX_FIELD_NAME_LENGTH} characters", field=where
            )
        if has_control_characters(key):
            raise ValidationFailed(
                f"field name {where} must not contain control characters (such as NUL)", field=where
            )


def check_record_fields(data: Mapping[str, Any], field: str = "") -> None:
    """:func:`check_field_names` then :func:`check_json`: fields sent to a provider and audited."""
    check_field_names(data, field)
    check_json(data, field)

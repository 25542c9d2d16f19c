"""Checks for free-form JSON taken from callers (record fields, payloads, metadata).

PostgreSQL stores no NUL character in ``text`` and no ``\\u0000`` anywhere in ``jsonb`` (keys or
values), and JSON has no NaN or Infinity. Arrays and objects nested more than
:data:`MAX_JSON_DEPTH` levels are refused too: JSON serialisers (pydantic's among them) stop at a
few hundred levels, so such a value could be stored and then never be read back through the API.
:func:`check_json` refuses all three with a 422 naming the place (``prefix.key.0.key``), so a
request is refused before anything happens, the same way on every database.
:func:`check_field_names` adds the rules for names that are recorded (the audit trail, the logs):
non-empty, bounded, no control characters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from interlink.core.errors import ValidationFailed
from interlink.core.text import CONTROL_CHARACTERS, has_control_characters

MAX_FIELD_NAME_LENGTH = 200
"""The longest field name :func:`check_field_names` accepts."""
MAX_JSON_DEPTH = 100
"""The deepest nesting of arrays and objects accepted (``[]`` is one level, ``[[]]`` two)."""
TOO_DEEP = f"must not nest arrays and objects more than {MAX_JSON_DEPTH} levels deep"


def shown(name: str) -> str:
    """``name`` with control characters escaped as ``\\uXXXX`` (printable in a problem or a log)."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def find_unstorable(value: Any, field: str = "") -> tuple[str, str] | None:
    """The first place in ``value`` (keys and items at any depth, below ``field``) holding a string
    with a NUL character or a non-finite number, or an array or object nested more than
    :data:`MAX_JSON_DEPTH` levels, as ``(place, what is wrong)``; None if none."""
    if _storable(value):
        return None  # the usual case, found without building a single place name
    stack: list[tuple[str, Any, int]] = [(field, value, 0)]  # the containers around each item
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, "must not contain NUL characters"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "must be a finite number (no NaN or Infinity)"
        elif isinstance(item, (Mapping, list, tuple)) and depth >= MAX_JSON_DEPTH:
            return (path if len(path) <= 60 else path[:60] + "…"), TOO_DEEP
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                name = shown(str(key))
                if isinstance(key, str) and "\x00" in key:
                    return _join(path, name), "field name must not contain NUL characters"
                stack.append((_join(path, name), child, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend(
                (_join(path, str(i)), child, depth + 1) for i, child in reversed(list(enumerate(item)))
            )
    return None


def deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays and objects in ``value`` nest more than ``limit`` levels."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, (dict, list)) for item in level)


def _storable(value: Any) -> bool:
    """No string (key or value) with a NUL character, no non-finite number, and no array or
    object nested more than :data:`MAX_JSON_DEPTH` levels."""
    level = [value]
    depth = 0  # the containers around each item of ``level``
    while level:
        below: list[Any] = []
        for item in level:
            if item is None or type(item) is int or type(item) is bool:
                continue  # the common scalars, before the chain below (and its Mapping ABC check)
            if isinstance(item, str):
                if "\x00" in item:
                    return False
            elif isinstance(item, float):
                if not math.isfinite(item):
                    return False
            elif isinstance(item, (dict, Mapping)):  # dict first: a C check, before the ABC's
                if depth >= MAX_JSON_DEPTH:
                    return False
                for key in item:
                    if isinstance(key, str) and "\x00" in key:
                        return False
                below.extend(item.values())
            elif isinstance(item, (list, tuple)):
                if depth >= MAX_JSON_DEPTH:
                    return False
                below.extend(item)
        level = below
        depth += 1
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

"""Endpoint filters: a small, validated query language over an event document.

An endpoint only receives an event when its filter matches the *document*::

    {"type": "<event type name>", "payload": {...}, "metadata": {...}}

Grammar
-------
A filter is a JSON object. An empty object (or no filter) matches every event. Each key is either
a **field path** or a **logical operator**; all keys of one object must hold (implicit AND)::

    filter     := { clause, ... }
    clause     := path: condition
                | "$and": [filter, ...]          # every filter matches (non-empty list)
                | "$or":  [filter, ...]          # at least one filter matches (non-empty list)
                | "$not": filter                 # the filter does not match
    condition  := plain JSON value               # implicit {"$eq": value}
                | { operator: operand, ... }     # every operator holds
    operator   := "$eq" | "$neq" | "$gt" | "$gte" | "$lt" | "$lte"
                | "$in" | "$nin" | "$exists" | "$regex" | "$not"

Paths are dotted and start at ``type``, ``payload`` or ``metadata``: ``payload.customer.tier``.
A segment that is a decimal integer indexes into a list: ``payload.items.0.sku``. Keys that
themselves contain a dot cannot be addressed.

Operators
---------
- ``$eq`` / ``$neq``: JSON equality. Numbers compare by value (``1 == 1.0``), booleans are not
  numbers (``true != 1``), objects and lists compare structurally. ``$neq`` also matches a
  missing field.
- ``$gt $gte $lt $lte``: the operand is a number or a string; the field must be of the same kind
  (numbers numerically, strings by code point, so ISO-8601 timestamps in one format order
  correctly). Any other field value, or a missing field, does not match.
- ``$in`` / ``$nin``: the operand is a list (at most 1,000 items); the field equals one / none of
  them. ``$nin`` also matches a missing field. There is no implicit array traversal: to test a list
  field use ``$eq`` with the whole list or index into it.
- ``$exists``: ``true`` if the path resolves (a JSON ``null`` exists), ``false`` if not.
- ``$regex``: a Python ``re`` pattern (at most 256 characters), searched anywhere in the string
  (anchor with ``^``/``$``; flags inline, e.g. ``(?i)``). Non-string fields do not match.
- ``$not`` inside a condition negates the condition: ``{"$not": {"$gt": 5}}`` (or a plain value).

Examples::

    {"type": "invoice.paid"}
    {"payload.status": "paid", "payload.amount": {"$gte": 100}}
    {"$or": [{"metadata.region": {"$in": ["eu", "uk"]}}, {"payload.vip": true}]}
    {"payload.email": {"$regex": "(?i)@example\\.com$"}, "$not": {"payload.test": true}}

Limits and safety
-----------------
Filters are validated when saved (:func:`validate_filter`), naming the bad path or operator.
Nesting is limited to 16 levels and 500 clauses. Regular expressions are compiled at validation
with RE2, which matches in time linear in the subject whatever the pattern (no catastrophic
backtracking); RE2 syntax has no backreferences or lookaround. A ``$regex`` only examines strings
of at most 8 KiB; longer values do not match. Matching never raises: a comparison between mismatched types is
simply false.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from re import _constants as _sre_constants  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any

import re2

from interlink.core.errors import ValidationFailed

__all__ = [
    "MAX_DEPTH",
    "MAX_IN_ITEMS",
    "MAX_NODES",
    "MAX_REGEX_LENGTH",
    "MAX_REGEX_SUBJECT",
    "ROOTS",
    "compile_filter",
    "compile_regex",
    "matches",
    "resolve_path",
    "validate_filter",
]

ROOTS = frozenset({"type", "payload", "metadata"})
MAX_DEPTH = 16
MAX_NODES = 500
MAX_IN_ITEMS = 1000
MAX_REGEX_LENGTH = 256
MAX_REGEX_SUBJECT = 8 * 1024

LOGICAL = frozenset({"$and", "$or", "$not"})
FIELD_OPERATORS = frozenset(
    {"$eq", "$neq", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$not"}
)

Predicate = Callable[[dict[str, Any]], bool]
ValueTest = Callable[[Any], bool]


class _Missing:
    """The value of a path that does not resolve."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _fail(message: str) -> ValidationFailed:
    return ValidationFailed(message, field="filter")


# --------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: numbers by value, booleans distinct from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and bool(a == b)


def resolve_path(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``document``, or ``MISSING``."""
    current = document
    for segment in path.split("."):
        if isinstance(current, dict):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


# --------------------------------------------------------------------------- regex safety


_REPEATS = tuple(
    getattr(_sre_constants, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(_sre_constants, name)
)


def _check_regex_tree(items: Any, inside_repeat: bool, repeats_seen: list[int]) -> str | None:
    for op, arg in items:
        if op in _REPEATS:
            _min, max_count, body = arg
            repeats = max_count > 1
            if repeats:
                repeats_seen.append(1)
                if len(repeats_seen) > 1:
                    return "at most one repeated element (*, +, {m,n}) is allowed in a transformation regex"
            if inside_repeat and repeats:
                return "nested quantifiers (for example (a+)+) can backtrack catastrophically"
            problem = _check_regex_tree(body, inside_repeat or repeats, repeats_seen)
            if problem:
                return problem
        elif op is _sre_constants.SUBPATTERN:
            problem = _check_regex_tree(arg[-1], inside_repeat, repeats_seen)
            if problem:
                return problem
        elif op is _sre_constants.BRANCH:
            for branch in arg[1]:
                problem = _check_regex_tree(branch, inside_repeat, repeats_seen)
                if problem:
                    return problem
        elif op in (_sre_constants.GROUPREF, _sre_constants.GROUPREF_EXISTS):
            return "backreferences are not supported"
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            return "lookaround assertions are not supported"
    return None


def check_backtracking_regex(pattern: str) -> None:
    """Refuse patterns that Python's backtracking ``re`` could take exponential or polynomial time
    on (ValueError): for regexes that must run on ``re`` (JSONata transformations). The rule is
    deliberately simple and strict: at most one repeated element, no nesting, no backreferences,
    no lookaround, and the pattern must also be valid RE2."""
    compile_regex(pattern)
    tree = _sre_parse.parse(pattern)
    problem = _check_regex_tree(tree, False, [])
    if problem:
        raise ValueError(problem)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """Compile a filter regex with RE2, which matches in linear time whatever the pattern
    (ValueError for over-long patterns and syntax RE2 does not support, such as backreferences)."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"pattern is longer than {MAX_REGEX_LENGTH} characters")
    try:
        re.compile(pattern)  # Python's message is the clearer one for plain syntax errors
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"unsupported regular expression: {detail}") from None


# --------------------------------------------------------------------------- compilation


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def take(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(f"filter has more than {MAX_NODES} clauses")


def _check_path(path: str) -> None:
    segments = path.split(".")
    if not path or any(not s for s in segments):
        raise _fail(f"invalid field path {path!r}")
    if segments[0] not in ROOTS:
        raise _fail(f"field path {path!r} must start with one of: metadata, payload, type")


def _compile_filter(spec: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    if depth > MAX_DEPTH:
        raise _fail(f"filter is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, dict):
        raise _fail(f"{where}: a filter must be an object")
    parts: list[Predicate] = []
    for key, value in spec.items():
        budget.take()
        if not isinstance(key, str):
            raise _fail(f"{where}: keys must be strings")
        here = f"{where}.{key}" if where != "filter" else key
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _fail(f"{here}: {key} takes a non-empty list of filters")
            subs = [_compile_filter(v, f"{here}[{i}]", depth + 1, budget) for i, v in enumerate(value)]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            inner = _compile_filter(value, here, depth + 1, budget)
            parts.append(_negate(inner))
        elif key.startswith("$"):
            raise _fail(
                f"{here}: unknown operator {key!r} (at the top level use a field path, $and, $or or $not)"
            )
        else:
            _check_path(key)
            test = _compile_condition(value, here, depth + 1, budget)
            parts.append(_at_path(key, test))
    return _all(parts)


def _negate(inner: Predicate) -> Predicate:
    return lambda doc: not inner(doc)


def _at_path(path: str, test: ValueTest) -> Predicate:
    return lambda doc: test(resolve_path(doc, path))


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda doc: all(p(doc) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda doc: any(p(doc) for p in parts)


def _is_operator_object(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and any(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _compile_condition(value: Any, where: str, depth: int, budget: _Budget) -> ValueTest:
    if depth > MAX_DEPTH:
        raise _fail(f"filter is nested deeper than {MAX_DEPTH} levels")
    if not _is_operator_object(value):
        expected = value
        return lambda actual: actual is not MISSING and json_equal(actual, expected)
    tests: list[ValueTest] = []
    for op, operand in value.items():
        budget.take()
        here = f"{where}.{op}"
        if not isinstance(op, str) or not op.startswith("$"):
            raise _fail(f"{where}: cannot mix operators with plain keys ({op!r})")
        if op not in FIELD_OPERATORS:
            raise _fail(f"{here}: unknown operator {op!r}")
        tests.append(_compile_operator(op, operand, here, depth, budget))
    if len(tests) == 1:
        return tests[0]
    return lambda actual: all(t(actual) for t in tests)


def _compile_operator(op: str, operand: Any, where: str, depth: int, budget: _Budget) -> ValueTest:
    if op == "$eq":
        return lambda actual: actual is not MISSING and json_equal(actual, operand)
    if op == "$neq":
        return lambda actual: actual is MISSING or not json_equal(actual, operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compile_ordering(op, operand, where)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _fail(f"{where}: {op} takes a list")
        if len(operand) > MAX_IN_ITEMS:
            raise _fail(f"{where}: {op} takes at most {MAX_IN_ITEMS} values")
        options = list(operand)
        if op == "$in":
            return lambda actual: actual is not MISSING and any(json_equal(actual, o) for o in options)
        return lambda actual: actual is MISSING or not any(json_equal(actual, o) for o in options)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _fail(f"{where}: $exists takes true or false")
        return lambda actual: (actual is not MISSING) is operand
    if op == "$regex":
        if not isinstance(operand, str):
            raise _fail(f"{where}: $regex takes a string pattern")
        try:
            pattern = compile_regex(operand)
        except ValueError as exc:
            raise _fail(f"{where}: {exc}") from None
        return lambda actual: (
            isinstance(actual, str)
            and len(actual) <= MAX_REGEX_SUBJECT
            and pattern.search(actual) is not None
        )
    # $not inside a condition
    inner = _compile_condition(operand, where, depth + 1, budget)
    return lambda actual: not inner(actual)


def _compile_ordering(op: str, operand: Any, where: str) -> ValueTest:
    if _is_number(operand):
        kind: Callable[[Any], bool] = _is_number
    elif isinstance(operand, str):

        def kind(value: Any) -> bool:
            return isinstance(value, str)

    else:
        raise _fail(f"{where}: {op} takes a number or a string")
    compare: Callable[[Any, Any], bool] = {
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
    }[op]
    return lambda actual: kind(actual) and compare(actual, operand)


# --------------------------------------------------------------------------- public API


def compile_filter(spec: dict[str, Any] | None) -> Predicate:
    """Validate ``spec`` and return a predicate over documents (raises ``ValidationFailed``)."""
    if not spec:
        if spec is None or isinstance(spec, dict):
            return lambda doc: True
        raise _fail("a filter must be an object")
    return _compile_filter(spec, "filter", 1, _Budget())


def validate_filter(spec: dict[str, Any]) -> None:
    """Raise ``ValidationFailed(field="filter")`` naming the bad path or operator, if any."""
    compile_filter(spec)


@lru_cache(maxsize=2048)
def _cached(canonical: str) -> Predicate:
    try:
        return compile_filter(json.loads(canonical))
    except ValidationFailed:
        return lambda doc: False


def matches(spec: dict[str, Any] | None, document: dict[str, Any]) -> bool:
    """Whether ``document`` passes ``spec``. None or ``{}`` matches everything; never raises.

    A spec that does not validate matches nothing (it cannot have been saved).
    """
    if not spec:
        return True
    try:
        key = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return False
    predicate = _cached(key)
    try:
        return predicate(document)
    except (TypeError, ValueError, RecursionError):
        return False

"""Endpoint filters: every operator, combinations, validation messages, and algebraic properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.core.errors import ValidationFailed
from interlink.webhooks.filters import (
    MAX_IN_ITEMS,
    MAX_REGEX_SUBJECT,
    compile_regex,
    matches,
    validate_filter,
)

DOC: dict[str, Any] = {
    "type": "invoice.paid",
    "payload": {
        "id": "in_1",
        "status": "paid",
        "amount": 1250,
        "ratio": 0.5,
        "currency": "EUR",
        "vip": True,
        "note": None,
        "email": "Ada@Example.com",
        "createdAt": "2024-05-01T10:00:00Z",
        "tags": ["a", "b"],
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "customer": {"tier": "gold", "address": {"country": "DE"}},
    },
    "metadata": {"region": "eu", "attempt": 1},
}

CASES: list[tuple[dict[str, Any] | None, bool]] = [
    # empty / None
    (None, True),
    ({}, True),
    # implicit equality
    ({"type": "invoice.paid"}, True),
    ({"type": "invoice.created"}, False),
    ({"payload.status": "paid"}, True),
    ({"payload.status": "paid", "payload.currency": "USD"}, False),
    ({"payload.customer.address.country": "DE"}, True),
    ({"payload.items.0.sku": "A-1"}, True),
    ({"payload.items.1.sku": "A-1"}, False),
    ({"payload.items.9.sku": "A-1"}, False),
    ({"payload.tags": ["a", "b"]}, True),
    ({"payload.tags": ["b", "a"]}, False),
    ({"payload.customer": {"tier": "gold", "address": {"country": "DE"}}}, True),
    ({"payload.note": None}, True),
    ({"payload.missing": None}, False),
    # $eq / $neq, JSON equality
    ({"payload.amount": {"$eq": 1250}}, True),
    ({"payload.amount": {"$eq": 1250.0}}, True),
    ({"payload.amount": {"$eq": "1250"}}, False),
    ({"payload.vip": {"$eq": 1}}, False),
    ({"payload.vip": {"$eq": True}}, True),
    ({"metadata.attempt": {"$eq": True}}, False),
    ({"payload.amount": {"$neq": 1}}, True),
    ({"payload.amount": {"$neq": 1250}}, False),
    ({"payload.missing": {"$neq": 1}}, True),
    # ordering
    ({"payload.amount": {"$gt": 1000}}, True),
    ({"payload.amount": {"$gt": 1250}}, False),
    ({"payload.amount": {"$gte": 1250}}, True),
    ({"payload.amount": {"$lt": 1250}}, False),
    ({"payload.amount": {"$lte": 1250}}, True),
    ({"payload.ratio": {"$lt": 1}}, True),
    ({"payload.amount": {"$gte": 100, "$lt": 2000}}, True),
    ({"payload.amount": {"$gte": 100, "$lt": 1000}}, False),
    ({"payload.createdAt": {"$gte": "2024-01-01T00:00:00Z"}}, True),
    ({"payload.createdAt": {"$lt": "2024-01-01T00:00:00Z"}}, False),
    # ordering across types never matches
    ({"payload.status": {"$gt": 5}}, False),
    ({"payload.amount": {"$gt": "1"}}, False),
    ({"payload.vip": {"$gte": 0}}, False),
    ({"payload.note": {"$lt": 5}}, False),
    ({"payload.missing": {"$gt": 0}}, False),
    ({"payload.tags": {"$gt": 0}}, False),
    # $in / $nin
    ({"metadata.region": {"$in": ["eu", "uk"]}}, True),
    ({"metadata.region": {"$in": ["us"]}}, False),
    ({"metadata.region": {"$in": []}}, False),
    ({"payload.amount": {"$in": [1250.0]}}, True),
    ({"payload.vip": {"$in": [1]}}, False),
    ({"payload.missing": {"$in": [None]}}, False),
    ({"metadata.region": {"$nin": ["us", "ca"]}}, True),
    ({"metadata.region": {"$nin": ["eu"]}}, False),
    ({"payload.missing": {"$nin": ["eu"]}}, True),
    # $exists
    ({"payload.note": {"$exists": True}}, True),
    ({"payload.missing": {"$exists": True}}, False),
    ({"payload.missing": {"$exists": False}}, True),
    ({"payload.customer.tier.deeper": {"$exists": True}}, False),
    ({"metadata.region": {"$exists": False}}, False),
    # $regex
    ({"payload.email": {"$regex": "@example\\.com$"}}, False),
    ({"payload.email": {"$regex": "(?i)@example\\.com$"}}, True),
    ({"type": {"$regex": "^invoice\\."}}, True),
    ({"type": {"$regex": "paid"}}, True),
    ({"payload.amount": {"$regex": "1250"}}, False),
    ({"payload.missing": {"$regex": ".*"}}, False),
    # $not inside a condition
    ({"payload.amount": {"$not": {"$gt": 5000}}}, True),
    ({"payload.amount": {"$not": {"$gt": 5}}}, False),
    ({"payload.status": {"$not": "paid"}}, False),
    ({"payload.status": {"$not": {"$regex": "^pa"}}}, False),
    # logical
    ({"$and": [{"type": "invoice.paid"}, {"payload.amount": {"$gt": 1}}]}, True),
    ({"$and": [{"type": "invoice.paid"}, {"payload.amount": {"$gt": 9999}}]}, False),
    ({"$or": [{"type": "x"}, {"metadata.region": "eu"}]}, True),
    ({"$or": [{"type": "x"}, {"metadata.region": "us"}]}, False),
    ({"$not": {"payload.vip": True}}, False),
    ({"$not": {"payload.vip": False}}, True),
    (
        {
            "$or": [
                {"metadata.region": {"$in": ["us", "ca"]}},
                {"$and": [{"payload.customer.tier": "gold"}, {"$not": {"payload.currency": "USD"}}]},
            ]
        },
        True,
    ),
    ({"type": "invoice.paid", "$or": [{"payload.vip": False}, {"payload.amount": {"$lt": 0}}]}, False),
    ({"payload.email": {"$regex": "(?i)@example\\.com$"}, "$not": {"payload.test": True}}, True),
]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[repr(c[0])[:70] for c in CASES])
def test_matches(spec: dict[str, Any] | None, expected: bool) -> None:
    if spec is not None:
        validate_filter(spec)
    assert matches(spec, DOC) is expected


INVALID: list[tuple[Any, str]] = [
    ({"payload.amount": {"$gtx": 1}}, "$gtx"),
    ({"$nor": [{"type": "x"}]}, "$nor"),
    ({"amount": 1}, "'amount'"),
    ({"payload..amount": 1}, "'payload..amount'"),
    ({"": 1}, "''"),
    ({"payload.amount": {"$gt": [1]}}, "payload.amount.$gt"),
    ({"payload.amount": {"$gt": True}}, "payload.amount.$gt"),
    ({"payload.amount": {"$lte": None}}, "payload.amount.$lte"),
    ({"metadata.region": {"$in": "eu"}}, "metadata.region.$in"),
    ({"metadata.region": {"$nin": {"a": 1}}}, "metadata.region.$nin"),
    ({"metadata.region": {"$in": list(range(MAX_IN_ITEMS + 1))}}, "at most"),
    ({"payload.note": {"$exists": 1}}, "payload.note.$exists"),
    ({"payload.email": {"$regex": 5}}, "payload.email.$regex"),
    ({"payload.email": {"$regex": "("}}, "invalid regular expression"),
    ({"payload.email": {"$regex": "(a)\\1"}}, "unsupported regular expression"),
    ({"payload.email": {"$regex": "a(?=b)"}}, "unsupported regular expression"),
    ({"payload.email": {"$regex": "a" * 300}}, "longer than"),
    ({"$and": []}, "$and"),
    ({"$or": {"type": "x"}}, "$or"),
    ({"$and": ["type"]}, "$and[0]"),
    ({"$not": [{"type": "x"}]}, "$not"),
    ({"$or": [{"type": "x"}, {"payload.x": {"$bad": 1}}]}, "$or[1].payload.x.$bad"),
    ({"payload.status": {"$eq": "paid", "plain": 1}}, "cannot mix"),
]


@pytest.mark.parametrize(("spec", "fragment"), INVALID, ids=[i[1] for i in INVALID])
def test_invalid_filters_name_the_problem(spec: Any, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_filter(spec)
    assert fragment in caught.value.detail
    assert caught.value.extra["errors"][0]["field"] == "filter"
    assert matches(spec, DOC) is False  # an invalid filter, if ever stored, matches nothing


def test_filter_must_be_an_object() -> None:
    with pytest.raises(ValidationFailed, match="must be an object"):
        validate_filter(["type"])  # type: ignore[arg-type]


def test_nesting_and_size_limits() -> None:
    deep: dict[str, Any] = {"type": "x"}
    for _ in range(20):
        deep = {"$not": deep}
    with pytest.raises(ValidationFailed, match="nested deeper"):
        validate_filter(deep)
    wide = {"$or": [{"type": f"t{i}"} for i in range(600)]}
    with pytest.raises(ValidationFailed, match="clauses"):
        validate_filter(wide)


def test_regex_subject_is_bounded() -> None:
    spec = {"payload.text": {"$regex": "end$"}}
    assert matches(spec, {"payload": {"text": "x" * 10 + "end"}}) is True
    assert matches(spec, {"payload": {"text": "x" * MAX_REGEX_SUBJECT + "end"}}) is False


@pytest.mark.parametrize("pattern", ["^[a-z]+@[a-z]+\\.com$", "(foo|bar)+", "\\d{3}-\\d{4}", "(?i)^inv"])
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    compiled = compile_regex(pattern)
    assert compiled.search("zzz") is None or pattern == "(foo|bar)+"


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|ab)*c", ".*.*.*x", "^(a?){30}a{30}$"])
def test_backtracking_patterns_are_linear_with_re2(pattern: str) -> None:
    """Patterns that take exponential time in a backtracking engine finish at once: were they run
    by Python's re, this test would hang instead of passing."""
    spec = {"payload.s": {"$regex": pattern}}
    validate_filter(spec)
    assert matches(spec, {"payload": {"s": "a" * 5000 + "!"}}) is False


def test_matching_never_raises_on_odd_documents() -> None:
    spec = {"payload.a.b": {"$gt": 1}, "payload.c": {"$regex": "x"}}
    odd: list[Any] = [None, [], "text", 5, {"a": [1, 2]}, {"a": {"b": "2"}}, {"c": ["x"]}]
    for payload in odd:
        assert matches(spec, {"type": "t", "payload": payload}) is False
    assert matches({"payload.a": 1}, {}) is False
    assert matches({"payload.a": float("nan")}, DOC) is False  # not JSON: matches nothing


# --------------------------------------------------------------------------- properties

json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
payloads = st.dictionaries(st.sampled_from(["a", "b", "c"]), json_scalars, max_size=3)
leaf_filters = st.one_of(
    st.builds(lambda k, v: {f"payload.{k}": v}, st.sampled_from(["a", "b", "c"]), json_scalars),
    st.builds(
        lambda k, op, v: {f"payload.{k}": {op: v}},
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        st.integers(-1000, 1000),
    ),
    st.builds(
        lambda k, vs: {f"payload.{k}": {"$in": vs}},
        st.sampled_from(["a", "b", "c"]),
        st.lists(json_scalars, max_size=3),
    ),
    st.builds(lambda k, b: {f"payload.{k}": {"$exists": b}}, st.sampled_from(["a", "b", "c"]), st.booleans()),
)
filters = st.recursive(
    leaf_filters,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
    ),
    max_leaves=6,
)


def _doc(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "t", "payload": payload, "metadata": {}}


@settings(max_examples=200, deadline=None)
@given(filters, payloads)
def test_not_inverts(spec: dict[str, Any], payload: dict[str, Any]) -> None:
    validate_filter(spec)
    assert matches({"$not": spec}, _doc(payload)) is (not matches(spec, _doc(payload)))


@settings(max_examples=200, deadline=None)
@given(filters, payloads)
def test_single_and_or_is_identity(spec: dict[str, Any], payload: dict[str, Any]) -> None:
    expected = matches(spec, _doc(payload))
    assert matches({"$and": [spec]}, _doc(payload)) is expected
    assert matches({"$or": [spec]}, _doc(payload)) is expected


@settings(max_examples=200, deadline=None)
@given(filters, filters, payloads)
def test_de_morgan(a: dict[str, Any], b: dict[str, Any], payload: dict[str, Any]) -> None:
    left = matches({"$not": {"$and": [a, b]}}, _doc(payload))
    right = matches({"$or": [{"$not": a}, {"$not": b}]}, _doc(payload))
    assert left is right


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a", "b", "c"]), st.lists(json_scalars, max_size=4), payloads)
def test_nin_is_not_in(key: str, values: list[Any], payload: dict[str, Any]) -> None:
    path = f"payload.{key}"
    assert matches({path: {"$nin": values}}, _doc(payload)) is (
        not matches({path: {"$in": values}}, _doc(payload))
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a", "b", "c"]), json_scalars, payloads)
def test_neq_is_not_eq(key: str, value: Any, payload: dict[str, Any]) -> None:
    path = f"payload.{key}"
    assert matches({path: {"$neq": value}}, _doc(payload)) is (not matches({path: value}, _doc(payload)))

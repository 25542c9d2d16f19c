"""Transformations: JSONata reshaping, syntax errors at save time, and the sandbox's bounds."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from interlink.core.errors import ValidationFailed
from interlink.webhooks.transform import (
    MAX_OUTPUT_BYTES,
    MAX_TEMPLATE_LENGTH,
    TransformationError,
    compile_transformation,
)

DOC: dict[str, Any] = {
    "type": "invoice.paid",
    "payload": {
        "id": "in_1",
        "amount": 1250,
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "items": [
            {"sku": "A-1", "price": 5, "qty": 1},
            {"sku": "B-2", "price": 20, "qty": 2},
            {"sku": "C-3", "price": 30, "qty": 1},
        ],
    },
    "metadata": {"region": "eu"},
}

RESHAPES: list[tuple[str, Any]] = [
    ("payload", DOC["payload"]),
    ("type", "invoice.paid"),
    ('{"event": type, "total": payload.amount / 100}', {"event": "invoice.paid", "total": 12.5}),
    (
        '{"text": "Invoice " & payload.id & " was paid by " & payload.customer.name}',
        {"text": "Invoice in_1 was paid by Ada"},
    ),
    (
        'payload.items[price > 10].{"sku": sku, "qty": qty}',
        [{"sku": "B-2", "qty": 2}, {"sku": "C-3", "qty": 1}],
    ),
    ("payload.items.sku", ["A-1", "B-2", "C-3"]),
    ("$sum(payload.items.(price * qty))", 75),
    ("$count(payload.items)", 3),
    ('$uppercase(metadata.region) & "-" & $substringBefore(type, ".")', "EU-invoice"),
    (
        'payload ~> |$|{"amount": amount / 100}, ["items"]|',
        {"id": "in_1", "amount": 12.5, "customer": {"name": "Ada", "email": "ada@example.com"}},
    ),
    (
        '{"customer": payload.customer.email, "vip": payload.amount > 1000}',
        {"customer": "ada@example.com", "vip": True},
    ),
    ("payload.items{sku: price}", {"A-1": 5, "B-2": 20, "C-3": 30}),
    ("$match(payload.customer.email, /@(.+)$/).groups[0]", "example.com"),
    ("($double := function($x) { $x * 2 }; $map(payload.items.price, $double))", [10, 40, 60]),
    ("payload.nothing", None),
]


@pytest.mark.parametrize(("template", "expected"), RESHAPES, ids=[r[0][:60] for r in RESHAPES])
def test_reshapes(template: str, expected: Any) -> None:
    assert compile_transformation(template).apply(DOC) == expected


def test_result_is_plain_json() -> None:
    result = compile_transformation("[1..3]").apply(DOC)
    assert result == [1, 2, 3]
    assert type(result) is list


def test_compiled_transformation_is_reusable_and_independent() -> None:
    first = compile_transformation("payload.amount")
    second = compile_transformation("metadata.region")
    assert first.apply(DOC) == 1250
    assert second.apply(DOC) == "eu"
    assert first.apply({"payload": {"amount": 7}}) == 7


def test_concurrent_use_from_threads() -> None:
    transformation = compile_transformation('{"n": payload.n, "sq": payload.n * payload.n}')
    errors: list[str] = []

    def work(base: int) -> None:
        for n in range(base, base + 200):
            out = transformation.apply({"payload": {"n": n}})
            if out != {"n": n, "sq": n * n}:
                errors.append(f"{n}: {out}")

    threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


SYNTAX_ERRORS: list[tuple[str, str]] = [
    ('{"a": ', "Expected }"),
    ("payload.", "Unexpected end of expression"),
    ("(", "Expected )"),
    ("payload[", "Expected ]"),
    ("$map(payload, function($x) { $x )", "Expected"),
    ('"unterminated', "String literal must be terminated"),
]


@pytest.mark.parametrize(("template", "fragment"), SYNTAX_ERRORS, ids=[s[0] for s in SYNTAX_ERRORS])
def test_syntax_errors_are_rejected_when_compiled(template: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        compile_transformation(template)
    assert caught.value.extra["errors"][0]["field"] == "transformation"
    assert fragment in caught.value.detail
    assert "not valid JSONata" in caught.value.detail


@pytest.mark.parametrize("template", ["", "   "])
def test_empty_template_is_rejected(template: str) -> None:
    with pytest.raises(ValidationFailed, match="non-empty"):
        compile_transformation(template)


def test_template_length_is_capped() -> None:
    compile_transformation('"' + "x" * (MAX_TEMPLATE_LENGTH - 2) + '"')
    with pytest.raises(ValidationFailed, match="longer than"):
        compile_transformation('"' + "x" * MAX_TEMPLATE_LENGTH + '"')


@pytest.mark.parametrize("literal", ["/(a+)+$/", "/(.*)(.*)(.*)x/", "/(a)\\1/", "/a(?=b)/"])
def test_backtracking_prone_regex_literals_are_rejected_when_compiled(literal: str) -> None:
    """Template regexes run on Python's backtracking engine, so they are held to a strict rule."""
    with pytest.raises(ValidationFailed, match="regular expression"):
        compile_transformation(f"$match(payload.id, {literal})")


def test_simple_regex_literals_are_accepted() -> None:
    transformation = compile_transformation("$contains(payload.id, /^inv_[0-9]+$/)")
    assert transformation.apply({"type": "t", "payload": {"id": "inv_42"}, "metadata": {}}) is True


RUNTIME_ERRORS: list[tuple[str, str]] = [
    ('payload.amount + "x"', "must evaluate to a number"),
    ("$unknown(1)", "non-function"),
    ('$eval("1 + 1")', "$eval is not available"),
    ("function($x) { $x }", "not JSON"),
]


@pytest.mark.parametrize(("template", "fragment"), RUNTIME_ERRORS, ids=[r[0] for r in RUNTIME_ERRORS])
def test_runtime_errors_are_readable(template: str, fragment: str) -> None:
    transformation = compile_transformation(template)
    with pytest.raises(TransformationError) as caught:
        transformation.apply(DOC)
    assert fragment in caught.value.detail
    assert caught.value.status == 422


def test_infinite_tail_recursion_is_stopped_by_the_time_bound() -> None:
    transformation = compile_transformation("($f := function($n) { $f($n + 1) }; $f(0))", time_limit=0.2)
    with pytest.raises(TransformationError, match=r"longer than 0\.2 s"):
        transformation.apply(DOC)


def test_long_loop_is_stopped_by_the_time_bound() -> None:
    template = "$sum($map([1..50000], function($v) { $sum($map([1..50000], function($w) { $w })) }))"
    with pytest.raises(TransformationError, match=r"longer than 0\.2 s"):
        compile_transformation(template, time_limit=0.2).apply(DOC)


def test_deep_recursion_is_stopped_by_the_depth_bound() -> None:
    transformation = compile_transformation("($f := function($n) { $n + $f($n + 1) }; $f(0))")
    with pytest.raises(TransformationError, match="nested deeper"):
        transformation.apply(DOC)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ('($f := function($s) { $f($s & $s) }; $f("x"))', "string grew longer"),
        ('$pad("x", 100000000)', "$pad width"),
        ("[1..100000000]", "more than"),
        ("$string([1..90000])", "string grew longer"),
    ],
)
def test_memory_growth_is_bounded(template: str, fragment: str) -> None:
    with pytest.raises(TransformationError) as caught:
        compile_transformation(template).apply(DOC)
    assert fragment in caught.value.detail


def test_output_size_is_capped() -> None:
    big = {"payload": {"blob": "x" * (MAX_OUTPUT_BYTES // 2)}}
    doubled = compile_transformation("[payload.blob, payload.blob, payload.blob]")
    with pytest.raises(TransformationError, match="larger than"):
        doubled.apply(big)
    assert compile_transformation("payload.blob").apply(big) == big["payload"]["blob"]


def test_smaller_output_cap_can_be_configured() -> None:
    transformation = compile_transformation("payload", max_output_bytes=64)
    with pytest.raises(TransformationError, match="larger than 64 bytes"):
        transformation.apply(DOC)

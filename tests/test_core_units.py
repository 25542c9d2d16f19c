"""Unit tests of small core pieces: ids, enums, correlation ids, redaction, pagination."""

from __future__ import annotations

import ast
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlink.core import enums
from interlink.core.context import accept_correlation_id
from interlink.core.errors import ValidationFailed
from interlink.core.ids import is_id, min_id_at, new_id
from interlink.core.logging import REDACTED, redact_text, redact_value
from interlink.core.pagination import PageRequest
from interlink.core.text import has_control_characters

ENUM_NAMES = [
    "ApiKeyStatus",
    "ApiKeyScope",
    "TokenType",
    "RetentionPolicy",
    "DeliveryStatus",
    "DeliveryChannel",
    "IntegrationCategory",
    "IntegrationConnectionStatus",
    "IntegrationProviderStatus",
    "IntegrationEnvironment",
    "AuthenticationType",
]


def test_ids_are_prefixed_and_strictly_increasing() -> None:
    ids = [new_id("key") for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_id(i, "key") for i in ids)
    assert not is_id(ids[0], "ten")
    assert not is_id("key_../../etc/passwd")


def test_id_layout_is_milliseconds_then_randomness_in_crockford_base32() -> None:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    before = int(time.time() * 1000)
    made = new_id("req")
    after = int(time.time() * 1000)
    body = made.removeprefix("req_")
    value = 0
    for char in body:
        value = value * 32 + alphabet.index(char)
    assert before <= value >> 80 <= after  # 48 bits of milliseconds on top of 80 random bits
    assert min_id_at("req", datetime.fromtimestamp(before / 1000, UTC)) <= made
    assert min_id_at("req", datetime.fromtimestamp(0, UTC)) == "req_" + "0" * 26
    assert min_id_at("req", datetime.fromtimestamp(0.001, UTC)) == "req_" + "0000000001" + "0" * 16
    assert min_id_at("req", datetime.fromtimestamp(1.055, UTC)) == "req_" + "000000010Z" + "0" * 16


@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\x1b", "\x1f", "\x7f"])
def test_control_characters_are_found_with_or_without_tabs_allowed(char: str) -> None:
    assert has_control_characters(f"name{char}x")
    assert has_control_characters(f"name{char}x", allow_tab=True)


def test_tabs_pass_only_when_allowed_and_plain_text_always() -> None:
    assert has_control_characters("a\tb") and not has_control_characters("a\tb", allow_tab=True)
    for text in ("", "Acme Inc. (EU) - ünïcode ✓", "\x80\x9f"):  # C1 code points are not C0 controls
        assert not has_control_characters(text) and not has_control_characters(text, allow_tab=True)


def test_the_eleven_enums_exist_and_are_documented() -> None:
    source = Path(enums.__file__).read_text()
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert sorted(classes) == sorted(ENUM_NAMES)
    for name in ENUM_NAMES:
        assert ast.get_docstring(classes[name]), f"{name} has no docstring"
        members = list(getattr(enums, name))
        assert members, name
        assert len({m.value for m in members}) == len(members)


def test_retention_days() -> None:
    assert enums.RetentionPolicy.NONE.days == 0
    assert enums.RetentionPolicy.DAYS_30.days == 30
    assert enums.RetentionPolicy.FOREVER.days is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("bad\nvalue", False),
        ("", False),
        (None, False),
    ],
)
def test_correlation_ids(given: str | None, kept: bool) -> None:
    result = accept_correlation_id(given)
    assert (result == given) is kept
    assert 1 <= len(result) <= 128


def test_redaction_catches_keys_and_secret_fields() -> None:
    key = "il_live_" + "A" * 38
    assert key not in redact_text(f"auth with {key} failed")
    assert "whsec_" + "x" * 20 not in redact_text("secret whsec_" + "x" * 20)
    assert redact_text("Authorization: Bearer abcdefghijkl") == f"Authorization: Bearer {REDACTED}"
    assert redact_value("password", "hunter2") == REDACTED
    assert redact_value("nested", {"client_secret": "s3cr3t", "name": "ok"}) == {
        "client_secret": REDACTED,
        "name": "ok",
    }
    assert redact_value("count", 3) == 3


def test_page_request_validation() -> None:
    with pytest.raises(ValidationFailed):
        PageRequest(limit=0)
    with pytest.raises(ValidationFailed):
        PageRequest(limit=10, after="not-an-id")
    assert PageRequest(limit=10, after=new_id("key")).limit == 10

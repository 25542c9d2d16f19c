"""The key format: entropy, checksum, environment tag and display prefix (pure unit tests)."""

from __future__ import annotations

import math

import pytest

from interlink.core.enums import IntegrationEnvironment
from interlink.keys.format import (
    BASE62,
    CHECKSUM_LENGTH,
    RANDOM_LENGTH,
    checksum,
    display_prefix,
    generate_key,
    parse_key,
)

ENVIRONMENTS = list(IntegrationEnvironment)


def _body(key: str) -> str:
    return key.split("_", 2)[2][:RANDOM_LENGTH]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_generated_key_has_tag_and_parses(environment: IntegrationEnvironment) -> None:
    key = generate_key(environment)
    assert key.startswith(f"il_{environment.key_tag}_")
    body = key[len(f"il_{environment.key_tag}_") :]
    assert len(body) == RANDOM_LENGTH + CHECKSUM_LENGTH
    assert set(body) <= set(BASE62)
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.environment is environment
    assert parsed.prefix == display_prefix(key)


def test_entropy_is_at_least_128_bits() -> None:
    assert RANDOM_LENGTH * math.log2(len(BASE62)) >= 128
    assert len(set(BASE62)) == 62


def test_random_part_uses_the_whole_alphabet_and_never_repeats() -> None:
    keys = [generate_key(IntegrationEnvironment.PRODUCTION) for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    bodies = [_body(k) for k in keys]
    assert len(set(bodies)) == len(bodies)
    seen = set("".join(bodies))
    assert seen == set(BASE62)
    # Every position varies (no fixed characters hiding inside the random part).
    for position in range(RANDOM_LENGTH):
        assert len({b[position] for b in bodies}) > 40


def test_checksum_detects_every_single_character_change() -> None:
    for _ in range(3):
        key = generate_key(IntegrationEnvironment.PRODUCTION)
        head_length = len(key) - CHECKSUM_LENGTH
        start = len("il_live_")
        for position in range(start, len(key)):
            for replacement in BASE62:
                if replacement == key[position]:
                    continue
                mutated = key[:position] + replacement + key[position + 1 :]
                assert parse_key(mutated) is None, (position, position < head_length)


@pytest.mark.parametrize("source", ENVIRONMENTS)
def test_checksum_detects_a_swapped_environment_tag(source: IntegrationEnvironment) -> None:
    for _ in range(200):
        key = generate_key(source)
        rest = key[len(f"il_{source.key_tag}_") :]
        for target in ENVIRONMENTS:
            if target is source:
                continue
            assert parse_key(f"il_{target.key_tag}_{rest}") is None


def test_checksum_is_crc_of_the_head() -> None:
    key = generate_key(IntegrationEnvironment.SANDBOX)
    assert key[-CHECKSUM_LENGTH:] == checksum(key[:-CHECKSUM_LENGTH])


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "il_live_",
        "sk_live_" + "a" * 38,
        "il_prod_" + "a" * 38,
        "il_live_" + "a" * 37,
        "il_live_" + "a" * 39,
        "il_live_" + "a" * 31 + "-" + "a" * 6,
        "IL_LIVE_" + "a" * 38,
    ],
)
def test_malformed_keys_are_refused(candidate: str) -> None:
    assert parse_key(candidate) is None


def test_whitespace_around_a_valid_key_is_refused() -> None:
    key = generate_key(IntegrationEnvironment.PRODUCTION)
    assert parse_key(key) is not None
    for variant in (key + "\n", key + " ", " " + key, "\n" + key, key + "\r\n"):
        assert parse_key(variant) is None


def test_display_prefix_reveals_only_six_random_characters() -> None:
    key = generate_key(IntegrationEnvironment.STAGING)
    prefix = display_prefix(key)
    assert prefix == "il_stage_" + _body(key)[:6]
    assert prefix == parse_key(key).prefix  # type: ignore[union-attr]
    assert _body(key)[6:] not in prefix

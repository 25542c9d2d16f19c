"""Keyring (AES-256-GCM with key ids and associated data), master key specs, the local secrets file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from interlink.core.crypto import (
    CryptoError,
    Keyring,
    generate_master_key,
    keyed_hash,
    load_local_secrets,
    local_secrets_path,
    parse_master_keys,
)
from interlink.core.secrets import associated_data

K1 = generate_master_key("k1")
K2 = generate_master_key("k2")
AAD = associated_data("ten_A", "tenant", "ten_A", "sec_1")


def _flip(token: str, index: int) -> str:
    prefix, kid, body = token.split(".", 2)
    padded = body + "=" * (-len(body) % 4)
    blob = bytearray(base64.urlsafe_b64decode(padded))
    blob[index] ^= 0x01
    return f"{prefix}.{kid}.{base64.urlsafe_b64encode(bytes(blob)).rstrip(b'=').decode()}"


def test_round_trip_and_key_id_in_ciphertext() -> None:
    ring = Keyring.from_spec(K1)
    token = ring.encrypt(b"s3cr3t \xe2\x9c\x93", AAD)
    assert token.startswith("v1.k1.")
    assert Keyring.key_id_of(token) == "k1"
    assert b"s3cr3t" not in token.encode()
    assert ring.decrypt(token, AAD) == b"s3cr3t \xe2\x9c\x93"
    # A fresh nonce every time: the same plaintext never gives the same ciphertext.
    assert ring.encrypt(b"same", AAD) != ring.encrypt(b"same", AAD)


def test_empty_plaintext_round_trips() -> None:
    ring = Keyring.from_spec(K1)
    assert ring.decrypt(ring.encrypt(b"", AAD), AAD) == b""


@pytest.mark.parametrize(
    "other",
    [
        associated_data("ten_B", "tenant", "ten_A", "sec_1"),  # another tenant
        associated_data("ten_A", "connection", "ten_A", "sec_1"),  # another owner type
        associated_data("ten_A", "tenant", "ten_B", "sec_1"),  # another owner
        associated_data("ten_A", "tenant", "ten_A", "sec_2"),  # another row
        b"",
    ],
)
def test_wrong_associated_data_fails(other: bytes) -> None:
    ring = Keyring.from_spec(K1)
    token = ring.encrypt(b"value", AAD)
    with pytest.raises(CryptoError, match="authentication"):
        ring.decrypt(token, other)


def test_associated_data_is_unambiguous() -> None:
    # Joining with a separator could let "a|b","c" collide with "a","b|c"; the encoding must not.
    assert associated_data("t", "a|b", "c", "s") != associated_data("t", "a", "b|c", "s")
    assert associated_data("t", "a,b", "c", "s") != associated_data("t", "a", "b,c", "s")


@pytest.mark.parametrize("index", [0, 11, 12, -1])
def test_tampering_fails(index: int) -> None:
    ring = Keyring.from_spec(K1)
    token = ring.encrypt(b"value", AAD)
    with pytest.raises(CryptoError):
        ring.decrypt(_flip(token, index), AAD)


def test_relabelled_key_id_fails() -> None:
    ring = Keyring.from_spec(f"{K1},{K2}")
    token = ring.encrypt(b"value", AAD)
    forged = token.replace("v1.k1.", "v1.k2.", 1)
    with pytest.raises(CryptoError, match="authentication"):
        ring.decrypt(forged, AAD)


@pytest.mark.parametrize(
    "token", ["v1.k1.", "v1.k1.AAAA", "v1.k1.A", "v1.k1.!!!!", "v1.k1." + "A" * 30, "v1.k1"]
)
def test_truncated_or_garbled_ciphertext_raises_crypto_error(token: str) -> None:
    ring = Keyring.from_spec(K1)
    with pytest.raises(CryptoError):
        ring.decrypt(token, AAD)


@pytest.mark.parametrize("token", ["", "plain text", "v2.k1.AAAA", "k1.AAAA"])
def test_not_an_interlink_ciphertext(token: str) -> None:
    with pytest.raises(CryptoError, match="not an Interlink ciphertext"):
        Keyring.from_spec(K1).decrypt(token, AAD)


def test_unknown_key_id() -> None:
    token = Keyring.from_spec(K2).encrypt(b"value", AAD)
    with pytest.raises(CryptoError, match="'k2', which is not configured"):
        Keyring.from_spec(K1).decrypt(token, AAD)


def test_primary_encrypts_and_every_key_decrypts() -> None:
    old = Keyring.from_spec(K1)
    old_token = old.encrypt(b"old", AAD)
    both = Keyring.from_spec(f"{K2},{K1}")
    assert both.primary_kid == "k2"
    assert both.key_ids == ["k2", "k1"]
    assert both.decrypt(old_token, AAD) == b"old"
    new_token = both.encrypt(b"new", AAD)
    assert Keyring.key_id_of(new_token) == "k2"
    with pytest.raises(CryptoError):
        old.decrypt(new_token, AAD)


def test_generate_master_key_parses() -> None:
    entry = generate_master_key()
    [(kid, key)] = parse_master_keys(entry)
    assert entry.startswith(kid + ":")
    assert len(key) == 32
    assert generate_master_key() != entry


def test_parse_master_keys_accepts_spaces_and_trailing_commas() -> None:
    keys = parse_master_keys(f" {K1} , {K2},")
    assert [kid for kid, _ in keys] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no master key"),
        (" , ", "no master key"),
        ("nocolon", "kid:base64key"),
        (":" + "A" * 43, "kid:base64key"),
        ("bad kid:" + "A" * 43, "kid:base64key"),
        ("k" * 33 + ":" + "A" * 43, "kid:base64key"),
        ("k1:" + "A" * 20, "must be 32 bytes"),
        ("k1:" + "A" * 60, "must be 32 bytes"),
        ("k1:A", "not valid base64"),
    ],
)
def test_malformed_master_key_spec(spec: str, message: str) -> None:
    with pytest.raises(CryptoError, match=message):
        parse_master_keys(spec)


def test_duplicate_key_id_is_refused() -> None:
    with pytest.raises(CryptoError, match="appears twice"):
        parse_master_keys(f"{K1},{K1}")


def test_empty_keyring_is_refused() -> None:
    with pytest.raises(CryptoError):
        Keyring([])


def test_keyed_hash_depends_on_pepper_and_value() -> None:
    a = keyed_hash(b"p" * 32, "il_live_x")
    assert a == keyed_hash(b"p" * 32, "il_live_x")
    assert a != keyed_hash(b"q" * 32, "il_live_x")
    assert a != keyed_hash(b"p" * 32, "il_live_y")
    assert len(a) == 64


def test_keyed_hash_is_hmac_sha256_whatever_was_hashed_before() -> None:
    peppers = [bytes([n]) * 32 for n in range(6)]  # more peppers than the keyed-MAC cache holds
    for round_ in range(3):
        for pepper in peppers:
            for value in ("il_live_a", "il_test_" + "b" * 40, "ünïcode"):
                expected = hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()
                assert keyed_hash(pepper, value) == expected, (round_, pepper[:1], value)


def test_local_secrets_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = load_local_secrets("", "", tmp_path)
    path = local_secrets_path(tmp_path)
    assert first.master_keys_from_file and first.pepper_from_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["master_keys"] == first.master_keys
    second = load_local_secrets("", "", tmp_path)
    assert second.master_keys == first.master_keys
    assert second.key_pepper == first.key_pepper
    Keyring.from_spec(second.master_keys)


def test_configured_master_keys_win_over_the_file(tmp_path: Path) -> None:
    load_local_secrets("", "", tmp_path)
    resolved = load_local_secrets(K1, "", tmp_path)
    assert resolved.master_keys == K1
    assert not resolved.master_keys_from_file
    assert resolved.pepper_from_file


def test_malformed_configured_master_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CryptoError):
        load_local_secrets("k1:short", "", tmp_path)


def test_generation_can_be_refused_and_first_writer_wins(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="INTERLINK_MASTER_KEYS"):
        load_local_secrets("", "", tmp_path / "refused", allow_generate=False)
    assert not (tmp_path / "refused" / "local-secrets.json").exists()

    from interlink.core.crypto import local_secrets_path, write_local_file

    path = local_secrets_path(tmp_path / "race")
    assert write_local_file(path, {"master_keys": "first"}, exclusive=True) is True
    assert write_local_file(path, {"master_keys": "second"}, exclusive=True) is False
    assert "first" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["local-secrets.json"]  # no temp files left
    # Once the file exists, reading it needs no permission to generate.
    made = load_local_secrets("", "", tmp_path / "ok")
    again = load_local_secrets("", "", tmp_path / "ok", allow_generate=False)
    assert again.master_keys == made.master_keys and again.key_pepper == made.key_pepper

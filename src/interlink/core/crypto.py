"""Encryption and keyed hashing.

* :class:`Keyring` — AES-256-GCM with a key id in every ciphertext and associated data that binds a
  ciphertext to its owner, so a value copied to another row or tenant fails to decrypt.
  Ciphertext format: ``v1.<kid>.<base64url(nonce12 || ciphertext || tag16)>``.
* :func:`keyed_hash` — HMAC-SHA256 with the server pepper, for API keys.
* :func:`load_local_secrets` — the master keys and pepper of the embedded default, generated into
  the data folder on first use (with a warning) when the environment names none.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = structlog.get_logger(__name__)

_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
LOCAL_SECRETS_FILE = "local-secrets.json"


class CryptoError(Exception):
    """A ciphertext could not be decrypted (wrong key, wrong owner, tampered) or a key is malformed."""


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded)


def _b64encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def generate_master_key(kid: str | None = None) -> str:
    """A new ``kid:base64`` master key entry."""
    kid = kid or "k" + secrets.token_hex(4)
    return f"{kid}:{_b64encode(AESGCM.generate_key(bit_length=256))}"


def parse_master_keys(spec: str) -> list[tuple[str, bytes]]:
    """Parse ``kid:key,kid:key``; the first entry is primary. Raises CryptoError when malformed."""
    entries: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        kid, sep, encoded = raw.partition(":")
        if not sep or not _KID_RE.match(kid):
            raise CryptoError("master key entries must look like 'kid:base64key' (kid: letters, digits, _ -)")
        try:
            key = _b64decode(encoded)
        except ValueError as exc:
            raise CryptoError(f"master key {kid!r} is not valid base64") from exc
        if len(key) != 32:
            raise CryptoError(f"master key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        if kid in seen:
            raise CryptoError(f"master key id {kid!r} appears twice")
        seen.add(kid)
        entries.append((kid, key))
    if not entries:
        raise CryptoError("no master key configured")
    return entries


class Keyring:
    """A set of AES-256-GCM master keys; the primary encrypts, all decrypt."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise CryptoError("a keyring needs at least one key")
        self.primary_kid = keys[0][0]
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def from_spec(cls, spec: str) -> Keyring:
        return cls(parse_master_keys(spec))

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> str:
        """Encrypt under the primary key, bound to ``associated_data``."""
        nonce = os.urandom(12)
        sealed = self._ciphers[self.primary_kid].encrypt(nonce, plaintext, associated_data)
        return f"v1.{self.primary_kid}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, associated_data: bytes) -> bytes:
        """Decrypt a token made by :meth:`encrypt` with the same associated data."""
        kid = self.key_id_of(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CryptoError(f"ciphertext uses master key {kid!r}, which is not configured")
        try:
            blob = _b64decode(token.split(".", 2)[2])
        except ValueError as exc:
            raise CryptoError("ciphertext is not valid base64") from exc
        if len(blob) < 12 + 16:
            raise CryptoError("ciphertext is truncated")
        try:
            return cipher.decrypt(blob[:12], blob[12:], associated_data)
        except InvalidTag as exc:
            raise CryptoError("ciphertext failed authentication (wrong key, owner or tampered)") from exc

    @staticmethod
    def key_id_of(token: str) -> str:
        """The master key id a ciphertext was made with."""
        parts = token.split(".", 2)
        if len(parts) != 3 or parts[0] != "v1":
            raise CryptoError("not an Interlink ciphertext")
        return parts[1]


def keyed_hash(pepper: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``pepper``, hex encoded."""
    mac = _keyed_mac(pepper).copy()  # the pepper's key schedule is computed once, not per call
    mac.update(value.encode())
    return mac.hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed_mac(pepper: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with ``pepper`` and fed nothing: :func:`keyed_hash` copies it."""
    return hmac.new(pepper, digestmod=hashlib.sha256)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class LocalSecrets:
    """Master keys and pepper resolved for this process."""

    master_keys: str
    key_pepper: bytes
    master_keys_from_file: bool
    pepper_from_file: bool


def local_secrets_path(data_dir: Path) -> Path:
    return data_dir / LOCAL_SECRETS_FILE


def _read_local_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data.items()}


def write_local_file(path: Path, data: dict[str, str], *, exclusive: bool = False) -> bool:
    """Write the local secrets file atomically with owner-only permissions, then sync its folder.

    With ``exclusive`` the file is only created, never replaced: returns False when another
    process created it first (two first starts at once must agree on one set of keys).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return True


def load_local_secrets(
    master_keys: str, key_pepper: str, data_dir: Path, *, allow_generate: bool = True
) -> LocalSecrets:
    """Resolve master keys and pepper: from settings when given, else from (or into) the data folder.

    Generating is only for the embedded SQLite default (``allow_generate``): processes on other
    machines sharing a PostgreSQL database would each invent different keys.
    """
    path = local_secrets_path(data_dir)
    stored = _read_local_file(path) if not (master_keys and key_pepper) else {}
    changed = False
    if not master_keys and "master_keys" not in stored:
        stored["master_keys"] = generate_master_key()
        changed = True
    if not key_pepper and "key_pepper" not in stored:
        stored["key_pepper"] = _b64encode(secrets.token_bytes(32))
        changed = True
    if changed:
        if not allow_generate:
            raise CryptoError(
                "set INTERLINK_MASTER_KEYS and INTERLINK_KEY_PEPPER: they are generated only for the "
                "embedded SQLite database (see docs/operations.md)"
            )
        if not write_local_file(path, stored, exclusive=not path.exists()):
            # Another process created the file first: use its keys.
            return load_local_secrets(master_keys, key_pepper, data_dir, allow_generate=False)
        log.warning(
            "local_secrets_generated",
            path=str(path),
            advice="set INTERLINK_MASTER_KEYS and INTERLINK_KEY_PEPPER in production and keep a backup",
        )
    resolved_keys = master_keys or stored["master_keys"]
    pepper_text = key_pepper or stored["key_pepper"]
    try:
        pepper = _b64decode(pepper_text)
    except ValueError as exc:
        raise CryptoError("INTERLINK_KEY_PEPPER must be base64") from exc
    if len(pepper) < 32:
        raise CryptoError("INTERLINK_KEY_PEPPER must decode to at least 32 bytes")
    parse_master_keys(resolved_keys)
    return LocalSecrets(
        master_keys=resolved_keys,
        key_pepper=pepper,
        master_keys_from_file=not master_keys,
        pepper_from_file=not key_pepper,
    )

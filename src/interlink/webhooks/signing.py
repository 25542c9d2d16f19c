"""Standard Webhooks signatures (https://www.standardwebhooks.com), both directions.

* Secrets look like ``whsec_<base64 of 32 random bytes>``.
* The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is
  ``v1,<base64(HMAC-SHA256(secret bytes, content))>``. ``webhook-signature`` carries one
  space-separated signature per active secret, so a receiver can rotate without downtime.
* Verification accepts any listed ``v1`` signature that matches, in constant time, and refuses
  timestamps outside the tolerance (default 5 minutes) in either direction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A webhook could not be verified; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def generate_secret(num_bytes: int = 32) -> str:
    """A new signing secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(num_bytes)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret (the prefix is optional on input)."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret must be whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret must hold 24 to 64 bytes")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(key, content, hashlib.sha256)).decode()


@dataclass(frozen=True)
class SignedHeaders:
    msg_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "webhook-id": self.msg_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def sign(secrets_in_use: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> SignedHeaders:
    """Headers for one message, signed with every secret given (newest first by convention)."""
    keys = [secret_bytes(s) for s in secrets_in_use]
    if not keys:
        raise ValueError("at least one signing secret is needed")
    signature = " ".join(_signature(key, msg_id, timestamp, body) for key in keys)
    return SignedHeaders(msg_id, timestamp, signature)


def verify(
    secrets_accepted: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a received webhook; returns its ``webhook-id``. Raises :class:`SignatureError`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    header = lowered.get("webhook-signature")
    if not msg_id or not stamp or not header:
        raise SignatureError(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise SignatureError("bad_timestamp", "webhook-timestamp is not an integer") from exc
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp_out_of_tolerance", "webhook-timestamp is too old or in the future")
    offered = [part for part in header.split(" ") if part.startswith("v1,")]
    for key in (secret_bytes(s) for s in secrets_accepted):
        expected = _signature(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise SignatureError("bad_signature", "no signature matches")

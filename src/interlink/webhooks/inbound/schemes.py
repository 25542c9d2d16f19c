"""Signature verification schemes of inbound webhooks: pure functions, no I/O.

Each scheme checks a received request (headers and raw body) against every accepted secret of a
source (several during a rotation) and either returns :class:`Verified` or raises
:class:`VerificationFailed` with a stable ``reason``:

* ``missing_signature``: the signature header (or the timestamp header a scheme needs) is absent;
* ``malformed_header``: it is present but cannot be parsed;
* ``bad_signature``: no accepted secret produces a matching signature;
* ``timestamp_out_of_tolerance``: the signed timestamp is further than the tolerance from now, in
  either direction (checked after the signature, so only a genuinely signed but stale or replayed
  request gets this reason).

Every comparison is constant-time (:func:`hmac.compare_digest` on the decoded digests).

Schemes (``options`` are the source's scheme options, checked by :func:`check_options`):

* ``standard`` (Standard Webhooks): ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
  (``v1,<base64>`` space separated); secrets are ``whsec_<base64>``; see
  :mod:`interlink.webhooks.signing`.
* ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``; HMAC-SHA256 keyed with the
  secret string over ``"<t>.<body>"``.
* ``github``: ``X-Hub-Signature-256: sha256=<hex>``; HMAC-SHA256 of the body. GitHub signs no
  timestamp, so there is no tolerance check (deduplication by ``X-GitHub-Delivery`` applies).
* ``shopify``: ``X-Shopify-Hmac-Sha256: <base64>``; HMAC-SHA256 of the body, no timestamp.
* ``hmac`` (generic): ``header`` (required), ``algorithm`` ``sha256``/``sha1``/``sha512``,
  ``encoding`` ``hex``/``base64``, ``prefix`` stripped from the header value (``sha256=``),
  optional ``timestampHeader`` (unix seconds; enables the tolerance check) and ``signedContent``
  ``body`` (default) or ``timestamp.body`` (``"<timestamp>.<body>"``, needs ``timestampHeader``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from interlink.webhooks import signing


class Scheme(StrEnum):
    STANDARD = "standard"
    STRIPE = "stripe"
    GITHUB = "github"
    SHOPIFY = "shopify"
    HMAC = "hmac"


class Reason(StrEnum):
    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_HEADER = "malformed_header"
    BAD_SIGNATURE = "bad_signature"
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"


class VerificationFailed(Exception):
    """A request failed verification; ``reason`` is a :class:`Reason` value."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Verified:
    """A request that passed: its signed timestamp (when the scheme signs one) and what the
    signature covers (the same bytes for a replayed request, whatever its unsigned headers)."""

    timestamp: int | None = None
    signed: bytes = b""


STRIPE_HEADER: Final = "stripe-signature"
GITHUB_HEADER: Final = "x-hub-signature-256"
SHOPIFY_HEADER: Final = "x-shopify-hmac-sha256"
ALGORITHMS: Final = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}
ENCODINGS: Final = ("hex", "base64")
SIGNED_CONTENTS: Final = ("body", "timestamp.body")
HEADER_NAME_RE: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
MAX_PREFIX: Final = 40


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _mac(key: bytes, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.digest(key, content, ALGORITHMS[algorithm])


def _matches(expected: bytes, offered: Sequence[bytes]) -> bool:
    # Every candidate is compared (no early exit that would reveal which one matched).
    found = False
    for candidate in offered:
        found |= hmac.compare_digest(expected, candidate)
    return found


def _check_tolerance(timestamp: int, now: int, tolerance: int) -> None:
    if abs(now - timestamp) > tolerance:
        raise VerificationFailed(
            Reason.TIMESTAMP_OUT_OF_TOLERANCE,
            f"the signed timestamp is more than {tolerance} seconds away from the server time",
        )


def _header(lowered: Mapping[str, str], name: str) -> str:
    value = lowered.get(name.lower())
    if value is None or not value.strip():
        raise VerificationFailed(Reason.MISSING_SIGNATURE, f"the {name} header is missing")
    return value.strip()


def _unix(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise VerificationFailed(
            Reason.MALFORMED_HEADER, f"the timestamp in {name} is not an integer"
        ) from None


def verify_standard(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: int, tolerance: int
) -> Verified:
    """Standard Webhooks (``webhook-id``/``webhook-timestamp``/``webhook-signature``); the
    timestamp is checked after the signature, like every other scheme."""
    lowered = _lower(headers)
    stamp = (lowered.get("webhook-timestamp") or "").strip()
    try:
        signed_at = int(stamp)
    except ValueError:
        signed_at = now  # missing or not an integer: signing.verify says which
    try:
        # Verified against its own timestamp: only the signature is checked here.
        message_id = signing.verify(secrets, lowered, body, now=signed_at, tolerance_seconds=0)
    except signing.SignatureError as exc:
        mapped = {
            "missing_headers": Reason.MISSING_SIGNATURE,
            "bad_timestamp": Reason.MALFORMED_HEADER,
        }.get(exc.reason, Reason.BAD_SIGNATURE)
        raise VerificationFailed(mapped, str(exc)) from None
    _check_tolerance(signed_at, now, tolerance)
    return Verified(signed_at, f"{message_id}.{signed_at}.".encode() + body)


def parse_stripe_header(value: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>,...`` → (timestamp, v1 signatures). Other schemes (``v0``) are ignored."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        name, sep, part = item.strip().partition("=")
        if not sep:
            raise VerificationFailed(Reason.MALFORMED_HEADER, "Stripe-Signature items must be name=value")
        if name == "t":
            timestamp = _unix(part, "Stripe-Signature")
        elif name == "v1":
            signatures.append(part)
    if timestamp is None:
        raise VerificationFailed(Reason.MALFORMED_HEADER, "Stripe-Signature has no t= timestamp")
    if not signatures:
        raise VerificationFailed(Reason.MALFORMED_HEADER, "Stripe-Signature has no v1= signature")
    return timestamp, signatures


def _hex_list(values: Sequence[str]) -> list[bytes]:
    out = []
    for value in values:
        try:
            out.append(bytes.fromhex(value))
        except ValueError:
            continue  # an undecodable candidate matches nothing
    return out


def verify_stripe(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: int, tolerance: int
) -> Verified:
    """Stripe: HMAC-SHA256 (key: the ``whsec_`` string itself) of ``"<t>.<body>"``, hex, as v1."""
    timestamp, signatures = parse_stripe_header(_header(_lower(headers), "Stripe-Signature"))
    offered = _hex_list(signatures)
    content = f"{timestamp}.".encode() + body
    if not any(_matches(_mac(s.encode(), content), offered) for s in secrets):
        raise VerificationFailed(Reason.BAD_SIGNATURE, "no v1 signature in Stripe-Signature matches")
    _check_tolerance(timestamp, now, tolerance)
    return Verified(timestamp, content)


def verify_github(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: int, tolerance: int
) -> Verified:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""
    value = _header(_lower(headers), "X-Hub-Signature-256")
    if not value.startswith("sha256="):
        raise VerificationFailed(Reason.MALFORMED_HEADER, "X-Hub-Signature-256 must start with sha256=")
    offered = _hex_list([value[len("sha256=") :]])
    if not offered:
        raise VerificationFailed(Reason.MALFORMED_HEADER, "X-Hub-Signature-256 is not hexadecimal")
    if not any(_matches(_mac(s.encode(), body), offered) for s in secrets):
        raise VerificationFailed(Reason.BAD_SIGNATURE, "X-Hub-Signature-256 does not match")
    return Verified(signed=body)


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_shopify(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: int, tolerance: int
) -> Verified:
    """Shopify: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>``."""
    decoded = _b64(_header(_lower(headers), "X-Shopify-Hmac-Sha256"))
    if decoded is None:
        raise VerificationFailed(Reason.MALFORMED_HEADER, "X-Shopify-Hmac-Sha256 is not base64")
    if not any(_matches(_mac(s.encode(), body), [decoded]) for s in secrets):
        raise VerificationFailed(Reason.BAD_SIGNATURE, "X-Shopify-Hmac-Sha256 does not match")
    return Verified(signed=body)


def verify_hmac(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int,
    options: Mapping[str, Any],
) -> Verified:
    """The generic HMAC header scheme (options as returned by :func:`check_options`)."""
    lowered = _lower(headers)
    name = str(options["header"])
    value = _header(lowered, name)
    prefix = str(options.get("prefix") or "")
    if prefix:
        if not value.startswith(prefix):
            raise VerificationFailed(Reason.MALFORMED_HEADER, f"{name} must start with {prefix!r}")
        value = value[len(prefix) :]
    if options.get("encoding", "hex") == "base64":
        decoded = _b64(value)
    else:
        found = _hex_list([value])
        decoded = found[0] if found else None
    if decoded is None:
        raise VerificationFailed(Reason.MALFORMED_HEADER, f"{name} is not {options.get('encoding', 'hex')}")
    timestamp: int | None = None
    stamp_header = options.get("timestampHeader")
    if stamp_header:
        timestamp = _unix(_header(lowered, str(stamp_header)), str(stamp_header))
    content = body
    if options.get("signedContent") == "timestamp.body":
        content = f"{timestamp}.".encode() + body
    algorithm = str(options.get("algorithm", "sha256"))
    if not any(_matches(_mac(s.encode(), content, algorithm), [decoded]) for s in secrets):
        raise VerificationFailed(Reason.BAD_SIGNATURE, f"{name} does not match")
    if timestamp is not None:
        _check_tolerance(timestamp, now, tolerance)
    return Verified(timestamp, content)


_PLAIN: dict[Scheme, Callable[..., Verified]] = {
    Scheme.STANDARD: verify_standard,
    Scheme.STRIPE: verify_stripe,
    Scheme.GITHUB: verify_github,
    Scheme.SHOPIFY: verify_shopify,
}


def verify(
    scheme: Scheme | str,
    options: Mapping[str, Any],
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int,
) -> Verified:
    """Verify with the named scheme. Raises :class:`VerificationFailed`."""
    if not secrets:
        raise VerificationFailed(Reason.BAD_SIGNATURE, "the source has no active signing secret")
    chosen = Scheme(scheme)
    if chosen is Scheme.HMAC:
        return verify_hmac(secrets, headers, body, now=now, tolerance=tolerance, options=options)
    return _PLAIN[chosen](secrets, headers, body, now=now, tolerance=tolerance)


def check_options(scheme: Scheme, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The normalised scheme options; ``ValueError("<option>: <message>")`` when invalid."""
    given = dict(options or {})
    if scheme is not Scheme.HMAC:
        if given:
            raise ValueError(f"{sorted(given)[0]}: the {scheme.value} scheme takes no options")
        return {}
    allowed = {"header", "algorithm", "encoding", "prefix", "timestampHeader", "signedContent"}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown option (allowed: {', '.join(sorted(allowed))})")
    header = given.get("header")
    if not isinstance(header, str) or not HEADER_NAME_RE.match(header):
        raise ValueError("header: the name of the signature header is required (an HTTP header name)")
    out: dict[str, Any] = {"header": header}
    algorithm = given.get("algorithm", "sha256")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: one of {', '.join(ALGORITHMS)}")
    out["algorithm"] = algorithm
    encoding = given.get("encoding", "hex")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding: one of {', '.join(ENCODINGS)}")
    out["encoding"] = encoding
    prefix = given.get("prefix")
    if prefix is not None:
        if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX or not prefix.isprintable():
            raise ValueError(f"prefix: a printable string of at most {MAX_PREFIX} characters")
        out["prefix"] = prefix
    stamp = given.get("timestampHeader")
    if stamp is not None:
        if not isinstance(stamp, str) or not HEADER_NAME_RE.match(stamp):
            raise ValueError("timestampHeader: an HTTP header name")
        out["timestampHeader"] = stamp
    content = given.get("signedContent", "body")
    if content not in SIGNED_CONTENTS:
        raise ValueError(f"signedContent: one of {', '.join(SIGNED_CONTENTS)}")
    if content == "timestamp.body" and stamp is None:
        raise ValueError("signedContent: timestamp.body needs timestampHeader")
    out["signedContent"] = content
    return out


def check_secret(scheme: Scheme, secret: str) -> str:
    """A secret the scheme can use; ``ValueError`` otherwise."""
    if not secret or len(secret) > 512 or not secret.isprintable() or secret != secret.strip():
        raise ValueError("a signing secret is 1 to 512 printable characters without surrounding spaces")
    if scheme is Scheme.STANDARD:
        signing.secret_bytes(secret)
    return secret


def generate_secret(scheme: Scheme) -> str:
    """A new random secret in the form the scheme's senders expect (``whsec_<base64>``)."""
    return signing.generate_secret()

"""Inbound verification schemes against signatures made the way each provider documents them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from interlink.webhooks.inbound.schemes import (
    Reason,
    Scheme,
    VerificationFailed,
    check_options,
    check_secret,
    verify,
)

BODY = b'{"id":"evt_1","type":"invoice.paid"}'
NOW = 1_760_000_000
TOL = 300


def _stripe_header(secret: str, body: bytes, t: int) -> str:
    # https://docs.stripe.com/webhooks#verify-manually: HMAC-SHA256 of "t.payload", hex
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def _github_header(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _shopify_header(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _reason(
    scheme: Scheme, secrets: list[str], headers: dict[str, str], body: bytes = BODY, **kw: object
) -> str:
    with pytest.raises(VerificationFailed) as info:
        verify(scheme, kw.pop("options", {}), secrets, headers, body, now=NOW, tolerance=TOL)  # type: ignore[arg-type]
    return info.value.reason.value


def test_standard_webhooks_signed_by_the_reference_library() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    when = datetime.fromtimestamp(NOW, UTC)
    signature = Webhook(secret).sign("msg_1", when, BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert verify(Scheme.STANDARD, {}, [secret], headers, BODY, now=NOW, tolerance=TOL).timestamp == NOW
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    # rotation: the old secret is still accepted next to the new one
    assert verify(Scheme.STANDARD, {}, [other, secret], headers, BODY, now=NOW, tolerance=TOL)
    assert _reason(Scheme.STANDARD, [other], headers) == Reason.BAD_SIGNATURE
    assert _reason(Scheme.STANDARD, [secret], headers, BODY + b" ") == Reason.BAD_SIGNATURE
    assert _reason(Scheme.STANDARD, [secret], {"webhook-id": "msg_1"}) == Reason.MISSING_SIGNATURE
    for offset in (-TOL - 1, TOL + 1):  # signed, but too old or too far ahead
        signed = Webhook(secret).sign("msg_1", datetime.fromtimestamp(NOW + offset, UTC), BODY.decode())
        stale = {**headers, "webhook-timestamp": str(NOW + offset), "webhook-signature": signed}
        assert _reason(Scheme.STANDARD, [secret], stale) == Reason.TIMESTAMP_OUT_OF_TOLERANCE
    # The timestamp is checked after the signature: one moved without re-signing (a replay of an
    # old request with a fresh timestamp, or a forged one) is a bad signature.
    moved = {**headers, "webhook-timestamp": str(NOW - 10_000)}
    assert _reason(Scheme.STANDARD, [secret], moved) == Reason.BAD_SIGNATURE
    assert _reason(Scheme.STANDARD, [other], moved) == Reason.BAD_SIGNATURE
    assert (
        _reason(Scheme.STANDARD, [secret], {**headers, "webhook-timestamp": "x"}) == Reason.MALFORMED_HEADER
    )


def test_stripe_signature_with_several_v1_and_tolerance() -> None:
    secret, old = "whsec_new", "whsec_old"
    header = _stripe_header(secret, BODY, NOW)
    assert verify(Scheme.STRIPE, {}, [secret], {"Stripe-Signature": header}, BODY, now=NOW, tolerance=TOL)
    # Stripe sends one v1 per active secret while a secret rolls; any one may match
    both = header + "," + _stripe_header(old, BODY, NOW).split(",")[1] + ",v0=abc"
    assert verify(Scheme.STRIPE, {}, [old], {"Stripe-Signature": both}, BODY, now=NOW, tolerance=TOL)
    assert _reason(Scheme.STRIPE, ["whsec_other"], {"Stripe-Signature": header}) == Reason.BAD_SIGNATURE
    assert _reason(Scheme.STRIPE, [secret], {}) == Reason.MISSING_SIGNATURE
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": "v1=00"}) == Reason.MALFORMED_HEADER
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": f"t={NOW}"}) == Reason.MALFORMED_HEADER
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": "garbage"}) == Reason.MALFORMED_HEADER
    stale = _stripe_header(secret, BODY, NOW - TOL - 1)
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": stale}) == Reason.TIMESTAMP_OUT_OF_TOLERANCE
    future = _stripe_header(secret, BODY, NOW + TOL + 1)
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": future}) == Reason.TIMESTAMP_OUT_OF_TOLERANCE
    # a timestamp moved without re-signing is a bad signature, not a tolerance failure
    moved = header.replace(f"t={NOW}", f"t={NOW - 10_000}")
    assert _reason(Scheme.STRIPE, [secret], {"Stripe-Signature": moved}) == Reason.BAD_SIGNATURE


def test_stripe_known_vector() -> None:
    # From openssl: printf '1492774577.{}' | openssl dgst -sha256 -hmac whsec_test_secret
    secret = "whsec_test_secret"
    expected = "53140ab8fa70c511cc40d5c9198af7dde7bbaee877038c056d8250c3bd3b2e11"
    header = f"t=1492774577,v1={expected}"
    assert verify(
        Scheme.STRIPE, {}, [secret], {"stripe-signature": header}, b"{}", now=1492774577, tolerance=TOL
    )


def test_github_signature() -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!"
    secret = "It's a Secret to Everybody"
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert _github_header(secret, b"Hello, World!") == documented
    headers = {"X-Hub-Signature-256": documented}
    assert verify(Scheme.GITHUB, {}, [secret], headers, b"Hello, World!", now=NOW, tolerance=TOL)
    assert _reason(Scheme.GITHUB, ["nope"], headers, b"Hello, World!") == Reason.BAD_SIGNATURE
    assert _reason(Scheme.GITHUB, [secret], {"X-Hub-Signature-256": "sha1=00"}) == Reason.MALFORMED_HEADER
    assert _reason(Scheme.GITHUB, [secret], {"X-Hub-Signature-256": "sha256=zz"}) == Reason.MALFORMED_HEADER
    assert _reason(Scheme.GITHUB, [secret], {"X-Hub-Signature": "sha1=00"}) == Reason.MISSING_SIGNATURE


def test_shopify_signature() -> None:
    secret = "shpss_0123456789abcdef"
    headers = {"X-Shopify-Hmac-Sha256": _shopify_header(secret, BODY)}
    assert verify(Scheme.SHOPIFY, {}, ["old", secret], headers, BODY, now=NOW, tolerance=TOL)
    assert _reason(Scheme.SHOPIFY, ["old"], headers) == Reason.BAD_SIGNATURE
    assert _reason(Scheme.SHOPIFY, [secret], {"X-Shopify-Hmac-Sha256": "%%%"}) == Reason.MALFORMED_HEADER
    assert _reason(Scheme.SHOPIFY, [secret], {}) == Reason.MISSING_SIGNATURE


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic_hmac(algorithm: str, encoding: str) -> None:
    options = check_options(
        Scheme.HMAC,
        {
            "header": "X-Signature",
            "algorithm": algorithm,
            "encoding": encoding,
            "prefix": "v1=",
            "timestampHeader": "X-Timestamp",
            "signedContent": "timestamp.body",
        },
    )
    secret = "generic-secret"
    digest = hmac.new(secret.encode(), f"{NOW}.".encode() + BODY, getattr(hashlib, algorithm)).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    headers = {"x-signature": "v1=" + value, "x-timestamp": str(NOW)}
    assert verify(Scheme.HMAC, options, [secret], headers, BODY, now=NOW, tolerance=TOL).timestamp == NOW
    assert _reason(Scheme.HMAC, ["x"], headers, options=options) == Reason.BAD_SIGNATURE
    assert _reason(Scheme.HMAC, [secret], {**headers, "x-signature": value}, options=options) == (
        Reason.MALFORMED_HEADER
    )
    assert _reason(Scheme.HMAC, [secret], {"x-signature": "v1=" + value}, options=options) == (
        Reason.MISSING_SIGNATURE
    )
    late = NOW + TOL + 5
    digest = hmac.new(secret.encode(), f"{late}.".encode() + BODY, getattr(hashlib, algorithm)).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    stale = {"x-signature": "v1=" + value, "x-timestamp": str(late)}
    assert _reason(Scheme.HMAC, [secret], stale, options=options) == Reason.TIMESTAMP_OUT_OF_TOLERANCE


def test_generic_hmac_body_only_defaults() -> None:
    options = check_options(Scheme.HMAC, {"header": "X-Sig"})
    assert options == {"header": "X-Sig", "algorithm": "sha256", "encoding": "hex", "signedContent": "body"}
    value = hmac.new(b"s", BODY, hashlib.sha256).hexdigest()
    assert verify(Scheme.HMAC, options, ["s"], {"X-Sig": value.upper()}, BODY, now=NOW, tolerance=TOL)


@pytest.mark.parametrize(
    ("scheme", "options", "field"),
    [
        (Scheme.HMAC, {}, "header"),
        (Scheme.HMAC, {"header": "bad header"}, "header"),
        (Scheme.HMAC, {"header": "X", "algorithm": "md5"}, "algorithm"),
        (Scheme.HMAC, {"header": "X", "encoding": "base32"}, "encoding"),
        (Scheme.HMAC, {"header": "X", "signedContent": "timestamp.body"}, "signedContent"),
        (Scheme.HMAC, {"header": "X", "extra": 1}, "extra"),
        (Scheme.STRIPE, {"header": "X"}, "header"),
    ],
)
def test_bad_options_name_the_option(scheme: Scheme, options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        check_options(scheme, options)


def test_secrets_are_checked_per_scheme() -> None:
    with pytest.raises(ValueError):
        check_secret(Scheme.STANDARD, "not-base64!")
    with pytest.raises(ValueError):
        check_secret(Scheme.STRIPE, " padded ")
    assert check_secret(Scheme.STRIPE, "whsec_abc") == "whsec_abc"


def test_no_secret_never_verifies() -> None:
    assert (
        _reason(Scheme.GITHUB, [], {"X-Hub-Signature-256": _github_header("", BODY)}) == Reason.BAD_SIGNATURE
    )


def test_stripe_cross_checked_with_the_stripe_library() -> None:
    """Headers made by Stripe's own library verify here, and headers made here verify there."""
    from stripe import WebhookSignature
    from stripe import error as stripe_error

    secret = "whsec_cross_check"
    text = BODY.decode()
    theirs = WebhookSignature.generate_signature_header(text, secret, timestamp=NOW)
    assert verify(Scheme.STRIPE, {}, [secret], {"Stripe-Signature": theirs}, BODY, now=NOW, tolerance=TOL)
    assert _reason(Scheme.STRIPE, ["whsec_other"], {"Stripe-Signature": theirs}) == Reason.BAD_SIGNATURE
    ours = _stripe_header(secret, BODY, int(time.time()))
    assert WebhookSignature.verify_header(text, ours, secret, tolerance=TOL)
    with pytest.raises(stripe_error.SignatureVerificationError):
        WebhookSignature.verify_header(text, ours, "whsec_other", tolerance=TOL)

"""Our Standard Webhooks signatures verify with the reference `standardwebhooks` package, and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from interlink.webhooks.signing import SignatureError, generate_secret, secret_bytes, sign, verify


def test_reference_library_accepts_our_signature() -> None:
    secret = generate_secret()
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "amount": 4200}}).encode()
    now = int(datetime.now(UTC).timestamp())
    headers = sign([secret], "msg_01", now, body).as_dict()
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_every_active_secret_signs_so_rotation_is_seamless() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"ok":true}'
    now = int(datetime.now(UTC).timestamp())
    headers = sign([new, old], "msg_02", now, body).as_dict()
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_we_verify_reference_signatures_and_refuse_tampering() -> None:
    secret = generate_secret()
    ts = datetime.now(UTC)
    body = '{"hello":"world"}'
    signature = Webhook(secret).sign("msg_03", ts, body)
    headers = {
        "webhook-id": "msg_03",
        "webhook-timestamp": str(int(ts.timestamp())),
        "webhook-signature": signature,
    }
    now = int(ts.timestamp())
    assert verify([secret], headers, body.encode(), now=now) == "msg_03"
    with pytest.raises(SignatureError) as tampered:
        verify([secret], headers, b'{"hello":"mallory"}', now=now)
    assert tampered.value.reason == "bad_signature"
    with pytest.raises(SignatureError) as stale:
        verify([secret], headers, body.encode(), now=now + 301)
    assert stale.value.reason == "timestamp_out_of_tolerance"
    with pytest.raises(SignatureError) as missing:
        verify([secret], {"webhook-id": "x"}, body.encode(), now=now)
    assert missing.value.reason == "missing_headers"


def test_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(secret_bytes(secret)) == 32
    with pytest.raises(ValueError):
        secret_bytes("whsec_not base64!")
    with pytest.raises(ValueError):
        secret_bytes("whsec_" + "QUJD")  # 3 bytes: too short

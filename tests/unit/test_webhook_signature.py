"""Our webhook signatures, checked by an independent implementation and by the README helper."""

from __future__ import annotations

import hashlib
import hmac
import time

from gateway.services.webhooks import sign, verify_signature

BODY = b'{"id":"evt_1","type":"order.paid","data":{"order":{"amount":58000}}}'


def independent_check(secret: str, header: str, body: bytes) -> bool:
    # Written from contract §7 alone: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.partition("=")
        fields.setdefault(key, []).append(value)
    message = fields["t"][0].encode() + b"." + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return expected in fields.get("v1", [])


def test_header_shape_and_independent_verification():
    now = int(time.time())
    header = sign(["whsec_new"], BODY, now)
    assert header.startswith(f"t={now},v1=")
    assert len(header.split("v1=")[1]) == 64
    assert independent_check("whsec_new", header, BODY)
    assert not independent_check("whsec_other", header, BODY)


def test_rotation_carries_one_v1_per_secret():
    header = sign(["whsec_new", "whsec_old"], BODY, int(time.time()))
    assert header.count("v1=") == 2
    assert independent_check("whsec_new", header, BODY)
    assert independent_check("whsec_old", header, BODY)
    assert verify_signature("whsec_old", header, BODY)
    assert verify_signature("whsec_new", header, BODY)


def test_readme_helper_rejects_tampering_old_timestamps_and_garbage():
    now = int(time.time())
    header = sign(["s3cret"], BODY, now)
    assert verify_signature("s3cret", header, BODY)
    assert not verify_signature("s3cret", header, BODY.replace(b"58000", b"58001"))
    assert not verify_signature("wrong", header, BODY)
    assert not verify_signature("s3cret", sign(["s3cret"], BODY, now - 301), BODY)
    assert verify_signature("s3cret", sign(["s3cret"], BODY, now - 301), BODY, tolerance=400)
    for bad in ("", "garbage", "t=abc,v1=00", "v1=deadbeef"):
        assert not verify_signature("s3cret", bad, BODY)

"""Pure parts of the console: RFC 6238, password hashing, masking, redaction, config, the SVG chart."""

from __future__ import annotations

import base64
from datetime import date

import pytest

from gateway.console import totp
from gateway.console.base import mask
from gateway.console.charts import DayTotal, collections_chart
from gateway.console.config import ConsoleConfig, load_console_config
from gateway.console.exports import defuse, vnd_number_format
from gateway.console.redact import MASK, redact_body, redact_headers, redact_query
from gateway.services.staff import hash_password, needs_rehash, verify_password
from gateway.settings import ConfigError

RFC_KEY = b"12345678901234567890"


# RFC 6238 appendix B, SHA-1 column (8 digits).
@pytest.mark.parametrize(
    ("unix", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1_vectors(unix, expected):
    assert totp.totp(RFC_KEY, unix, digits=8) == expected


def test_rfc4226_appendix_d_hotp_vectors():
    expected = [
        "755224",
        "287082",
        "359152",
        "969429",
        "338314",
        "254676",
        "287922",
        "162583",
        "399871",
        "520489",
    ]
    assert [totp.hotp(RFC_KEY, i) for i in range(10)] == expected


def test_match_accepts_one_step_either_side_and_refuses_replays():
    secret = base64.b32encode(RFC_KEY).decode()
    now = 1111111111.0
    step = totp.time_step(now)
    assert totp.match(secret, totp.totp(RFC_KEY, now), now) == step
    assert totp.match(secret, totp.totp(RFC_KEY, now - 30), now) == step - 1
    assert totp.match(secret, totp.totp(RFC_KEY, now + 30), now) == step + 1
    assert totp.match(secret, totp.totp(RFC_KEY, now - 90), now) is None
    assert totp.match(secret, totp.totp(RFC_KEY, now), now, after_step=step) is None  # replay
    assert totp.match(secret, "12 34 5", now) is None
    assert totp.match(secret, "abcdef", now) is None
    spaced = totp.totp(RFC_KEY, now)
    assert totp.match(secret, f"{spaced[:3]} {spaced[3:]}", now) == step


def test_new_secret_and_provisioning_uri():
    secret = totp.new_secret()
    assert len(totp.decode_secret(secret)) == 20
    uri = totp.provisioning_uri(secret, account="ke.toan@example.vn", issuer="DVC Payment Gateway")
    assert uri.startswith("otpauth://totp/DVC%20Payment%20Gateway:ke.toan@example.vn?")
    assert f"secret={secret}" in uri
    assert "issuer=DVC+Payment+Gateway" in uri
    assert "digits=6" in uri
    assert "period=30" in uri
    with pytest.raises(ValueError, match="base32"):
        totp.decode_secret("not base32!")


def test_password_hash_is_versioned_scrypt_with_a_salt():
    encoded = hash_password("correct horse battery")
    scheme, version, n, r, p, salt, key = encoded.split("$")
    assert (scheme, version, n, r, p) == ("scrypt", "1", "16384", "8", "1")
    assert len(base64.b64decode(salt + "==")) == 16
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert hash_password("correct horse battery") != encoded  # a fresh salt every time
    assert not needs_rehash(encoded)
    assert needs_rehash(encoded.replace("$16384$", "$1024$", 1))
    # A hash made with other parameters still verifies: they travel with it.
    assert not verify_password("x", "md5$whatever")
    assert not verify_password("x", "scrypt$1$16384$8$1$!!$!!")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0901234567", "••••••4567"), ("079201001234", "••••••••1234"), ("123", "•••"), (None, ""), ("", "")],
)
def test_mask_keeps_the_last_four(value, expected):
    assert mask(value) == expected


def test_redaction_of_stored_notifications():
    query = "vnp_Amount=5800000&vnp_TxnRef=GW1&vnp_SecureHash=abc123&vnp_SecureHashType=SHA512"
    assert dict(redact_query(query)) == {
        "vnp_Amount": "5800000",
        "vnp_TxnRef": "GW1",
        "vnp_SecureHash": MASK,
        "vnp_SecureHashType": MASK,
    }
    body = (
        b'{"partnerCode":"MOMO","orderId":"GW1","signature":"deadbeef","accessKey":"k","extra":{"mac":"x"}}'
    )
    text = redact_body(body)
    assert "deadbeef" not in text
    assert '"accessKey": "[redacted]"' in text
    assert '"mac": "[redacted]"' in text
    assert '"orderId": "GW1"' in text
    assert "s3cr3t" not in redact_body(b"data=1&mac=s3cr3t")
    xml = b"<Msg><Ref>GW1</Ref><Signature alg='rsa'>s3cr3t</Signature></Msg>"
    assert "s3cr3t" not in redact_body(xml)
    assert "GW1" in redact_body(xml)
    assert "s3cr3t" not in redact_body(b"odd text signature: s3cr3t end")
    assert dict(redact_headers({"X-Signature": "s", "Content-Type": "a/b"})) == {
        "Content-Type": "a/b",
        "X-Signature": MASK,
    }


def test_console_config_defaults_and_validation():
    assert load_console_config({}) == ConsoleConfig(refund_approval_threshold=5_000_000, idle_minutes=30)
    config = load_console_config({"REFUND_APPROVAL_THRESHOLD": "10_000_000", "CONSOLE_IDLE_MINUTES": "15"})
    assert (config.refund_approval_threshold, config.idle_minutes) == (10_000_000, 15)
    for bad in (
        {"REFUND_APPROVAL_THRESHOLD": "5.000.000"},
        {"CONSOLE_IDLE_MINUTES": "0"},
        {"CONSOLE_IDLE_MINUTES": "x"},
    ):
        with pytest.raises(ConfigError):
            load_console_config(bad)


def test_create_app_refuses_a_bad_console_setting(settings, monkeypatch):
    from gateway.app import create_app

    monkeypatch.setenv("CONSOLE_IDLE_MINUTES", "-5")
    with pytest.raises(ConfigError, match="CONSOLE_IDLE_MINUTES"):
        create_app(settings)


def test_xlsx_number_formats_spell_out_the_dots():
    assert vnd_number_format(0) == "0"
    assert vnd_number_format(999) == "0"
    assert vnd_number_format(58_000) == '#"."##0'
    assert vnd_number_format(1_234_567) == '#"."###"."##0'
    assert vnd_number_format(1_234_567_890) == '#"."###"."###"."##0'


def test_formula_text_is_defused():
    assert defuse("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert defuse("@SUM") == "'@SUM"
    assert defuse("Nguyễn Văn An") == "Nguyễn Văn An"


def test_chart_is_escaped_svg():
    days = [DayTotal(date(2026, 11, d), d * 1000, 1) for d in range(1, 31)]
    svg = str(collections_chart(days, title="<b>t</b>", empty_label="none"))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "&lt;b&gt;t&lt;/b&gt;" in svg
    assert svg.count("<rect") == 30
    assert "30.000 ₫ (1)" in svg
    empty = str(collections_chart([DayTotal(date(2026, 11, 1), 0, 0)], title="t", empty_label="nothing"))
    assert "nothing" in empty

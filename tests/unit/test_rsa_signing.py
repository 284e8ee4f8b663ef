"""RSA-SHA256 signatures (providers/rsa_signing.py) and signed bank notifications
(providers/bank_notifications.py), with keys generated at test time (providers.md §5, issue 4.4)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from providers.bank_notifications import DEFAULT_MAPPING, FieldMapping, verify_and_parse
from providers.rsa_signing import (
    Scheme,
    generate_private_key_pem,
    load_private_key,
    load_public_keys,
    public_key_pem,
    read_pem_files,
    sign,
    verify,
)

DATA = b'{"reference":"GW261125ABC123","amount":58000}'


@pytest.fixture(scope="module")
def pems() -> tuple[bytes, bytes, bytes]:
    # Three 2048-bit keys, generated once for the module: "new", "old" and a stranger's.
    return generate_private_key_pem(), generate_private_key_pem(), generate_private_key_pem()


@pytest.fixture(scope="module")
def key(pems: tuple[bytes, bytes, bytes]) -> rsa.RSAPrivateKey:
    return load_private_key(pems[0])


@pytest.fixture(scope="module")
def old_key(pems: tuple[bytes, bytes, bytes]) -> rsa.RSAPrivateKey:
    return load_private_key(pems[1])


@pytest.fixture(scope="module")
def other_key(pems: tuple[bytes, bytes, bytes]) -> rsa.RSAPrivateKey:
    return load_private_key(pems[2])


@pytest.fixture(scope="module")
def public(pems: tuple[bytes, bytes, bytes]) -> tuple[rsa.RSAPublicKey, ...]:
    return load_public_keys([public_key_pem(pems[0])])


# ---- sign / verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(Scheme))
def test_round_trip(key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], scheme: Scheme) -> None:
    signature = sign(key, DATA, scheme)
    assert len(base64.b64decode(signature, validate=True)) == 256  # 2048 bits
    verify(public, DATA, signature, scheme)


def test_pkcs1v15_is_deterministic_and_pss_is_not(key: rsa.RSAPrivateKey) -> None:
    assert sign(key, DATA) == sign(key, DATA, Scheme.PKCS1V15)
    assert sign(key, DATA, Scheme.PSS) != sign(key, DATA, Scheme.PSS)  # random salt


@pytest.mark.parametrize(
    ("signed_with", "checked_with"), [(Scheme.PKCS1V15, Scheme.PSS), (Scheme.PSS, Scheme.PKCS1V15)]
)
def test_the_scheme_must_match(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], signed_with: Scheme, checked_with: Scheme
) -> None:
    with pytest.raises(SignatureVerificationError):
        verify(public, DATA, sign(key, DATA, signed_with), checked_with)


@pytest.mark.parametrize("scheme", list(Scheme))
def test_another_keys_signature_is_refused(
    other_key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], scheme: Scheme
) -> None:
    with pytest.raises(SignatureVerificationError, match="any configured key"):
        verify(public, DATA, sign(other_key, DATA, scheme), scheme)


@pytest.mark.parametrize("position", [0, len(DATA) // 2, len(DATA) - 1])
def test_a_flipped_byte_of_the_body_is_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], position: int
) -> None:
    signature = sign(key, DATA)
    body = bytearray(DATA)
    body[position] ^= 0x01
    with pytest.raises(SignatureVerificationError):
        verify(public, bytes(body), signature)


def test_an_appended_byte_is_refused(key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]) -> None:
    with pytest.raises(SignatureVerificationError):
        verify(public, DATA + b" ", sign(key, DATA))


def test_a_truncated_signature_is_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    raw = base64.b64decode(sign(key, DATA))
    for truncated in (raw[:-1], raw[1:], raw[:128]):
        with pytest.raises(SignatureVerificationError):
            verify(public, DATA, base64.b64encode(truncated).decode())


def test_a_flipped_bit_of_the_signature_is_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    raw = bytearray(base64.b64decode(sign(key, DATA)))
    raw[100] ^= 0x80
    with pytest.raises(SignatureVerificationError):
        verify(public, DATA, base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("given", ["not base64!", "@@@@", "a", "é" * 8, "AAAA AAAA\n"])
def test_non_base64_is_refused(public: tuple[rsa.RSAPublicKey, ...], given: str) -> None:
    with pytest.raises(SignatureVerificationError):
        verify(public, DATA, given)


@pytest.mark.parametrize("given", [None, ""])
def test_a_missing_signature_is_refused(public: tuple[rsa.RSAPublicKey, ...], given: str | None) -> None:
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify(public, DATA, given)


def test_url_safe_base64_without_padding_is_accepted(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    # Find a message whose signature uses "+" or "/" (almost all do), so the alphabet really differs.
    for n in range(50):
        message = DATA + str(n).encode()
        standard = sign(key, message)
        if "+" in standard or "/" in standard:
            break
    url_safe = standard.translate(str.maketrans("+/", "-_")).rstrip("=")
    assert url_safe != standard
    verify(public, message, url_safe)
    verify(public, message, standard.rstrip("="))  # standard alphabet, padding dropped
    verify(public, message, f"  {standard}  ")  # surrounding whitespace (header folding)


def test_rotation_accepts_the_old_key_and_refuses_a_stranger(
    pems: tuple[bytes, bytes, bytes],
    key: rsa.RSAPrivateKey,
    old_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
) -> None:
    both = load_public_keys([public_key_pem(pems[0]), public_key_pem(pems[1])])
    verify(both, DATA, sign(key, DATA))
    verify(both, DATA, sign(old_key, DATA))
    verify(both, DATA, sign(old_key, DATA, Scheme.PSS), Scheme.PSS)
    with pytest.raises(SignatureVerificationError):
        verify(both, DATA, sign(other_key, DATA))
    with pytest.raises(SignatureVerificationError):
        verify((), DATA, sign(key, DATA))  # no key configured: fail closed


# ---- key loading --------------------------------------------------------------------------------------


def test_a_1024_bit_key_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="1024 bits"):
        load_private_key(private_pem)
    public_pem = small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="1024 bits"):
        load_public_keys([public_pem])
    with pytest.raises(ValueError, match="1024 bits"):
        load_private_key(generate_private_key_pem(1024))


def test_a_non_rsa_key_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_private_key(private_pem)
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_public_keys([public_pem])


def test_a_passphrase_protected_key_is_a_value_error(key: rsa.RSAPrivateKey) -> None:
    # cryptography raises TypeError here; configuration errors must surface as ValueError (ConfigError).
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(ValueError, match="private key"):
        load_private_key(encrypted)


@pytest.mark.parametrize(
    "pem", [b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
)
def test_garbage_pem_is_refused(pem: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's messages vary
        load_private_key(pem)
    with pytest.raises(ValueError):  # noqa: PT011
        load_public_keys([pem])


def test_a_public_key_is_not_a_private_key(pems: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        load_private_key(public_key_pem(pems[0]))


def test_no_public_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no public key"):
        load_public_keys([])


def test_read_pem_files(tmp_path: Path, pems: tuple[bytes, bytes, bytes]) -> None:
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_bytes(public_key_pem(pems[0]))
    b.write_bytes(public_key_pem(pems[1]))
    assert read_pem_files(f" {a} , ,{b},") == [a.read_bytes(), b.read_bytes()]
    assert read_pem_files("") == []
    with pytest.raises(ValueError, match="not found"):
        read_pem_files(f"{a},{tmp_path / 'missing.pem'}")
    with pytest.raises(ValueError, match="not found"):
        read_pem_files(str(tmp_path))  # a directory


# ---- FieldMapping.from_file -----------------------------------------------------------------------------

CUSTOM_MAPPING = {
    "fields": {
        "transaction_id": "ma_giao_dich",
        "account_no": "so_tai_khoan",
        "amount": "so_tien",
        "currency": "loai_tien",
        "direction": "chieu",
        "status": "trang_thai",
        "reference": "ma_thanh_toan",
        "remittance": "noi_dung",
        "transacted_at": "thoi_gian",
    },
    "signature_header": "X-Bank-Signature",
    "success_values": ["THANH_CONG", "00"],
    "failure_values": ["THAT_BAI", "HUY"],
}


def write_json(tmp_path: Path, content: Any, name: str = "mapping.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_custom_mapping_from_file(
    tmp_path: Path, key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    mapping = FieldMapping.from_file(write_json(tmp_path, CUSTOM_MAPPING))
    assert mapping.fields["amount"] == "so_tien"
    assert mapping.signature_header == "X-Bank-Signature"
    assert mapping.success_values == frozenset({"thanh_cong", "00"})  # lower-cased
    assert mapping.failure_values == frozenset({"that_bai", "huy"})

    body = json.dumps(
        {
            "ma_giao_dich": "FT2433100001",
            "so_tai_khoan": "0011001234567",
            "so_tien": 58000,
            "loai_tien": "VND",
            "chieu": "CREDIT",
            "trang_thai": "THANH_CONG",
            "ma_thanh_toan": "GW261125ABC123",
            "noi_dung": "GW261125ABC123 nop le phi",
            "thoi_gian": "2026-11-25T10:05:00+07:00",
        }
    ).encode()
    headers = {"x-bank-signature": sign(key, body)}  # header names are case-insensitive
    note = verify_and_parse(body, headers, public, mapping=mapping)
    assert (note.transaction_id, note.amount, note.reference) == ("FT2433100001", 58000, "GW261125ABC123")
    assert (note.status, note.direction, note.account_no) == ("thanh_cong", "credit", "0011001234567")
    assert note.transacted_at is not None
    assert note.transacted_at.isoformat() == "2026-11-25T10:05:00+07:00"
    # The default mapping looks for X-Signature: this message has none.
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify_and_parse(body, headers, public)


def test_partial_mapping_keeps_the_defaults(tmp_path: Path) -> None:
    mapping = FieldMapping.from_file(write_json(tmp_path, {"fields": {"amount": "so_tien"}}))
    assert mapping.fields == {**DEFAULT_MAPPING.fields, "amount": "so_tien"}
    assert mapping.signature_header == "X-Signature"
    assert mapping.success_values == DEFAULT_MAPPING.success_values


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read"),
        ("", "cannot read"),
        ("[1, 2]", "JSON object"),
        ({"fields": {"amout": "so_tien"}}, "unknown canonical field"),
        ({"fields": ["amount"]}, "'fields'"),
        ({"fields": {"amount": 3}}, "'fields'"),
        ({"fields": {"amount": ""}}, "'fields'"),
        ({"signature_header": ""}, "signature_header"),
        ({"signature_header": 7}, "signature_header"),
        ({"success_values": "paid"}, "success_values"),  # would become {"p", "a", "i", "d"}
        ({"failure_values": [1]}, "failure_values"),
        ({"success_values": ["ok"], "failure_values": ["OK"]}, "both success and failure"),
        ({"succes_values": ["ok"]}, "unknown key"),
    ],
)
def test_bad_mapping_files_are_refused(tmp_path: Path, content: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FieldMapping.from_file(write_json(tmp_path, content))


def test_a_missing_mapping_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        FieldMapping.from_file(str(tmp_path / "missing.json"))


# ---- verify_and_parse ---------------------------------------------------------------------------------


def notification(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": "FT2433100001",
        "account_no": "0011001234567",
        "amount": 58000,
        "currency": "VND",
        "direction": "credit",
        "status": "success",
        "reference": "GW261125ABC123",
        "remittance": "GW261125ABC123 nop le phi ho so",
        "transacted_at": "2026-11-25T10:05:00+07:00",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def signed(key: rsa.RSAPrivateKey, body: Any) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"X-Signature": sign(key, raw)}


def test_the_documented_default_notification(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    note = verify_and_parse(*signed(key, notification()), public)
    assert note.transaction_id == "FT2433100001"
    assert note.amount == 58000
    assert note.currency == "VND"
    assert note.status == "success"
    assert note.reference == "GW261125ABC123"
    assert note.remittance == "GW261125ABC123 nop le phi ho so"
    assert note.raw == notification()


@pytest.mark.parametrize("amount", [58000.0, 58000.5, "58000", "58.000", -1, True, None])
def test_non_integer_amounts_are_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], amount: Any
) -> None:
    with pytest.raises(MalformedNotification, match="amount"):
        verify_and_parse(*signed(key, notification(amount=amount)), public)


@pytest.mark.parametrize("txn", [..., None, "", "   ", 1.5, True, ["FT1"]])
def test_a_missing_transaction_id_is_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], txn: Any
) -> None:
    with pytest.raises(MalformedNotification, match="transaction_id"):
        verify_and_parse(*signed(key, notification(transaction_id=txn)), public)


@pytest.mark.parametrize("currency", ["USD", "vnd1", "704"])
def test_non_vnd_currency_is_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], currency: str
) -> None:
    with pytest.raises(MalformedNotification, match="not VND"):
        verify_and_parse(*signed(key, notification(currency=currency)), public)


def test_lower_case_or_absent_currency_is_vnd(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    assert verify_and_parse(*signed(key, notification(currency="vnd")), public).currency == "VND"
    assert verify_and_parse(*signed(key, notification(currency=...)), public).currency == "VND"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-25T10:05:00", "no UTC offset"),
        ("2026-11-25", "no UTC offset"),
        ("25/11/2026 10:05", "ISO-8601"),
    ],
)
def test_naive_or_unreadable_timestamps_are_refused(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], value: str, message: str
) -> None:
    with pytest.raises(MalformedNotification, match=message):
        verify_and_parse(*signed(key, notification(transacted_at=value)), public)


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b"\xff\xfe\x00"])
def test_a_signed_body_that_is_not_an_object_is_malformed(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], body: bytes
) -> None:
    with pytest.raises(MalformedNotification):
        verify_and_parse(*signed(key, body), public)


def test_the_signature_is_checked_before_parsing(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]
) -> None:
    raw, headers = signed(key, notification())
    with pytest.raises(SignatureVerificationError):
        verify_and_parse(b"not json", headers, public)
    with pytest.raises(SignatureVerificationError):
        verify_and_parse(raw, {}, public)


@pytest.mark.parametrize(("status", "expected"), [(..., "success"), ("", ""), (0, "0"), ("FAILED", "failed")])
def test_only_an_absent_status_defaults_to_success(
    key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...], status: Any, expected: str
) -> None:
    # A signed but empty status must not read as "success" (only a plain credit without the field does).
    assert verify_and_parse(*signed(key, notification(status=status)), public).status == expected


def test_pss_notifications(key: rsa.RSAPrivateKey, public: tuple[rsa.RSAPublicKey, ...]) -> None:
    raw = json.dumps(notification()).encode()
    headers = {"X-Signature": sign(key, raw, Scheme.PSS)}
    assert verify_and_parse(raw, headers, public, scheme=Scheme.PSS).amount == 58000
    with pytest.raises(SignatureVerificationError):
        verify_and_parse(raw, headers, public)  # PKCS#1 v1.5 expected

"""VietQR adapter: the QR it hands out, the bank's signed credit notification, answers (providers.md §4)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.base import Ack, CallbackRequest, Outcome, PaymentRequest, QueryRequest, RefundRequest
from providers.emqr import parse, parse_tlv, parse_vietqr
from providers.emulators.vietqr import Forge, credit_body, signed_request
from providers.rsa_signing import generate_private_key_pem, load_private_key, public_key_pem
from providers.vietqr import (
    EMULATOR_ACCOUNT_NAME,
    EMULATOR_ACCOUNT_NO,
    EMULATOR_BANK_BIN,
    EMULATOR_BANK_NAME,
    EMULATOR_KEY_PATH,
    VietqrProvider,
    find_reference,
)

BASE_URL = "http://gateway.test"
REFERENCE = "GW261125ABC123"
BANK_BIN = "970415"
ACCOUNT_NO = "113000012345"
ACCOUNT_NAME = "SO TU PHAP TINH THU NGHIEM"


@dataclass(frozen=True)
class Keys:
    new: bytes
    old: bytes
    stranger: bytes


_PUBLIC: dict[bytes, bytes] = {}
_PRIVATE: dict[bytes, rsa.RSAPrivateKey] = {}


@pytest.fixture(scope="module")
def keys() -> Keys:
    # RSA generation and loading are slow: three keys, loaded once, for the whole module.
    pems = [generate_private_key_pem() for _ in range(3)]
    for pem in pems:
        _PUBLIC[pem] = public_key_pem(pem)
        _PRIVATE[pem] = load_private_key(pem)
    return Keys(*pems)


def _write_public(tmp_path: Path, name: str, private_pem: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(_PUBLIC[private_pem] if private_pem in _PUBLIC else public_key_pem(private_pem))
    return path


def make_credentials(tmp_path: Path, key_files: str | None, **changes: str) -> ProviderCredentials:
    values = {
        "VIETQR_BANK_BIN": BANK_BIN,
        "VIETQR_ACCOUNT_NO": ACCOUNT_NO,
        "VIETQR_ACCOUNT_NAME": ACCOUNT_NAME,
        "VIETQR_BANK_NAME": "VietinBank",
    }
    if key_files is not None:
        values["VIETQR_BANK_PUBLIC_KEYS"] = key_files
    values.update(changes)
    return ProviderCredentials(code="vietqr", values=values, emulated=False, instance_path=str(tmp_path))


@pytest.fixture
def provider(tmp_path: Path, keys: Keys) -> VietqrProvider:
    # Key rotation: the bank's new and old public keys, comma separated.
    new = _write_public(tmp_path, "bank_new.pem", keys.new)
    old = _write_public(tmp_path, "bank_old.pem", keys.old)
    return VietqrProvider(
        make_credentials(tmp_path, f"{new}, {old}"), base_url=BASE_URL, session=requests.Session()
    )


@pytest.fixture
def forge(provider: VietqrProvider, keys: Keys) -> Forge:
    return Forge(provider, keys.new.decode())


@pytest.fixture
def no_network() -> Iterator[responses.RequestsMock]:
    # Any HTTP call would raise ConnectionError: the adapter must not make one.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def credit(
    keys_pem: bytes,
    *,
    amount: int = 58_000,
    remittance: str = f"{REFERENCE} chuyen tien",
    account_no: str | None = ACCOUNT_NO,
    **changes: Any,
) -> CallbackRequest:
    body = credit_body(
        transaction_id="FT24331000012345",
        account_no=account_no or "",
        amount=amount,
        remittance=remittance,
        transacted_at=datetime(2026, 11, 25, 3, 5, tzinfo=UTC),
    )
    if account_no is None:
        del body["account_no"]
    body.update(changes)
    key = _PRIVATE[keys_pem] if keys_pem in _PRIVATE else load_private_key(keys_pem)
    return signed_request(body, key)


def payment_request(**changes: Any) -> PaymentRequest:
    created = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "reference": REFERENCE,
        "amount": 58_000,
        "order_info": "Lệ phí hộ tịch H12.22-241125-0001",
        "return_url": f"{BASE_URL}/return/vietqr",
        "notify_url": f"{BASE_URL}/callbacks/vietqr",
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": created,
        "expires_at": created + timedelta(hours=1),
    }
    values.update(changes)
    return PaymentRequest(**values)


# ---- construction --------------------------------------------------------------------------------------


def test_class_attributes() -> None:
    assert VietqrProvider.code == "vietqr"
    assert VietqrProvider.display_name == "Chuyển khoản VietQR"
    assert VietqrProvider.methods == ("bank_transfer",)
    assert VietqrProvider.callback_methods == ("POST",)
    assert VietqrProvider.manual_refunds is True


def test_emulator_defaults_and_key_generated_once(tmp_path: Path) -> None:
    creds = ProviderCredentials(code="vietqr", values={}, emulated=True, instance_path=str(tmp_path / "inst"))
    p = VietqrProvider(creds, base_url="http://127.0.0.1:8000/")
    assert (p.bank_bin, p.account_no) == (EMULATOR_BANK_BIN, EMULATOR_ACCOUNT_NO)
    assert (p.account_name, p.bank_name) == (EMULATOR_ACCOUNT_NAME, EMULATOR_BANK_NAME)
    key_file = tmp_path / "inst" / EMULATOR_KEY_PATH
    assert not key_file.exists()  # lazily: building the app generates no key

    pem = p.emulator_private_key_pem()
    assert key_file.read_bytes() == pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind
    again = VietqrProvider(creds, base_url="http://127.0.0.1:8000")
    assert again.emulator_private_key_pem() == pem

    # The emulated provider trusts the emulator bank's key.
    n = p.verify_callback(credit(pem, account_no=EMULATOR_ACCOUNT_NO))
    assert n.outcome is Outcome.SUCCEEDED


def test_emulated_provider_uses_configured_public_keys(tmp_path: Path, keys: Keys) -> None:
    path = _write_public(tmp_path, "bank.pem", keys.new)
    creds = ProviderCredentials(
        code="vietqr",
        values={"VIETQR_BANK_PUBLIC_KEYS": str(path)},
        emulated=True,
        instance_path=str(tmp_path),
    )
    p = VietqrProvider(creds, base_url=BASE_URL)
    assert p.verify_callback(credit(keys.new, account_no=None)).reference == REFERENCE
    assert not (tmp_path / EMULATOR_KEY_PATH).exists()


def test_real_provider_has_no_emulator_key(provider: VietqrProvider) -> None:
    with pytest.raises(RuntimeError):
        provider.emulator_private_key_pem()


def test_without_a_bank_key_verification_fails_closed(tmp_path: Path, keys: Keys) -> None:
    p = VietqrProvider(make_credentials(tmp_path, None), base_url=BASE_URL)
    with pytest.raises(SignatureVerificationError, match="no bank key configured"):
        p.verify_callback(credit(keys.new))
    assert not (tmp_path / EMULATOR_KEY_PATH).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"VIETQR_BANK_BIN": "9704"}, "VIETQR_BANK_BIN"),
        ({"VIETQR_BANK_BIN": ""}, "VIETQR_BANK_BIN"),
        ({"VIETQR_ACCOUNT_NO": ""}, "VIETQR_ACCOUNT_NO"),
        ({"VIETQR_ACCOUNT_NO": "1" * 20}, "VIETQR_ACCOUNT_NO"),
        ({"VIETQR_ACCOUNT_NAME": " "}, "VIETQR_ACCOUNT_NAME"),
        ({"VIETQR_BANK_PUBLIC_KEYS": "/nonexistent/bank.pem"}, "key file not found"),
    ],
)
def test_bad_configuration_is_refused(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VietqrProvider(make_credentials(tmp_path, None, **changes), base_url=BASE_URL)


def test_bank_name_defaults_to_the_bin(tmp_path: Path) -> None:
    p = VietqrProvider(make_credentials(tmp_path, None, VIETQR_BANK_NAME=""), base_url=BASE_URL)
    assert p.bank_name == BANK_BIN


# ---- build_payment_request (§4.1) -----------------------------------------------------------------------


def test_build_payment_request(provider: VietqrProvider, no_network: responses.RequestsMock) -> None:
    redirect = provider.build_payment_request(payment_request())
    assert redirect.redirect_url == f"{BASE_URL}/pay/qr/{REFERENCE}"
    assert redirect.provider_txn_id is None
    assert redirect.provider_data == {
        "bank_bin": BANK_BIN,
        "account_no": ACCOUNT_NO,
        "account_name": ACCOUNT_NAME,
        "bank_name": "VietinBank",
        "transfer_reference": REFERENCE,
    }
    payload = redirect.qr_payload
    assert payload is not None
    qr = parse_vietqr(payload)
    assert (qr.bin, qr.account, qr.service) == (BANK_BIN, ACCOUNT_NO, "QRIBFTTA")
    assert (qr.amount, qr.dynamic) == (58_000, True)
    # contract §4: the VietQR carries the transfer reference in tag 62, sub-tag 08.
    assert dict(parse_tlv(dict(parse(payload))["62"])) == {"08": REFERENCE}
    assert len(no_network.calls) == 0


@pytest.mark.parametrize("amount", [0, -1, 1000.0, True])
def test_build_payment_request_refuses_bad_amounts(provider: VietqrProvider, amount: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        provider.build_payment_request(payment_request(amount=amount))


# ---- find_reference ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("GW261125ABC123 chuyen tien",), "GW261125ABC123"),
        (("NGUYEN VAN AN chuyen tien gw261125abc123",), "GW261125ABC123"),
        (("MBVCB.123456.GW261125ABC123.CT",), "GW261125ABC123"),
        ((None, "GW261125ABC123"), "GW261125ABC123"),
        (("BANKREF-1", "x GW261125ABC123"), "GW261125ABC123"),  # the bank's own field is not ours
        (("GW261125XYZ789", "GW261125ABC123"), "GW261125XYZ789"),  # the reference field comes first
        (("GW261125ABC12",), None),  # too short
        (("GW261125ABCI23",), None),  # I is not in the alphabet
        (("GW26112AABC123",), None),  # the date part is digits
        (("le phi ho so",), None),
        (("",), None),
    ],
)
def test_find_reference(texts: tuple[str | None, ...], expected: str | None) -> None:
    assert find_reference(*texts) == expected


def test_find_reference_refuses_two_references() -> None:
    with pytest.raises(MalformedNotification, match="several"):
        find_reference("GW261125ABC123 GW261125XYZ789")
    assert find_reference("GW261125ABC123 gw261125abc123") == "GW261125ABC123"


# ---- verify_callback ------------------------------------------------------------------------------------


def test_verify_a_credit_notification(provider: VietqrProvider, keys: Keys) -> None:
    n = provider.verify_callback(credit(keys.new))
    assert n.reference == REFERENCE
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 58_000
    assert n.provider_txn_id == "FT24331000012345"
    assert n.result_code == "success"
    assert n.paid_at == datetime(2026, 11, 25, 3, 5, tzinfo=UTC)
    assert n.paid_at.tzinfo is UTC
    assert n.raw["remittance"] == f"{REFERENCE} chuyen tien"
    assert n.dedupe_key == f"{REFERENCE}:FT24331000012345:payment"


def test_reference_is_found_case_insensitively(provider: VietqrProvider, keys: Keys) -> None:
    n = provider.verify_callback(credit(keys.new, remittance="NGUYEN VAN AN CK gw261125abc123"))
    assert n.reference == REFERENCE


def test_reference_field_comes_first(provider: VietqrProvider, keys: Keys) -> None:
    n = provider.verify_callback(credit(keys.new, remittance="chuyen tien", reference=REFERENCE))
    assert n.reference == REFERENCE
    other = provider.verify_callback(credit(keys.new, reference="BANKREF123"))
    assert other.reference == REFERENCE  # not ours: the remittance text decides


def test_a_different_amount_is_reported_as_credited(provider: VietqrProvider, keys: Keys) -> None:
    # The pipeline compares it with the attempt and answers BAD_AMOUNT (a discrepancy, not paid).
    n = provider.verify_callback(credit(keys.new, amount=50_000))
    assert (n.outcome, n.amount) == (Outcome.SUCCEEDED, 50_000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"remittance": "GW261125ABC123 GW261125XYZ789"}, "several"),
        ({"amount": 58000.0}, "integer"),
        ({"amount": "58.000"}, "integer"),
        ({"currency": "USD"}, "not VND"),
        ({"transaction_id": ""}, "transaction_id"),
    ],
)
def test_signed_but_unusable_is_malformed(
    provider: VietqrProvider, keys: Keys, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedNotification, match=message):
        provider.verify_callback(credit(keys.new, **changes))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"remittance": "chuyen tien le phi"}, "no_reference"),
        ({"direction": "debit"}, "not_a_credit"),
        ({"account_no": "999999999"}, "other_account"),
    ],
)
def test_money_for_no_order_is_recorded_not_retried(
    provider: VietqrProvider, keys: Keys, changes: dict[str, Any], why: str
) -> None:
    # No attempt has an empty reference: the pipeline answers "recorded" and keeps it for reconciliation.
    n = provider.verify_callback(credit(keys.new, **changes))
    assert (n.reference, n.outcome, n.result_code) == ("", Outcome.UNKNOWN, why)
    assert n.amount == 58_000


def test_account_is_optional(provider: VietqrProvider, keys: Keys) -> None:
    assert provider.verify_callback(credit(keys.new, account_no=None)).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize("status", ["failed", "cancelled", "pending"])
def test_a_credit_that_did_not_complete_is_not_final(
    provider: VietqrProvider, keys: Keys, status: str
) -> None:
    n = provider.verify_callback(credit(keys.new, status=status))
    assert n.outcome is Outcome.PENDING
    assert n.amount is None  # no money arrived: nothing to compare
    assert n.result_code == status


def test_body_that_is_not_json_is_malformed(provider: VietqrProvider, keys: Keys) -> None:
    from providers.rsa_signing import sign

    body = b"not json"
    request = CallbackRequest("POST", {}, {"X-Signature": sign(load_private_key(keys.new), body)}, body)
    with pytest.raises(MalformedNotification):
        provider.verify_callback(request)


# ---- signatures -------------------------------------------------------------------------------------------


def test_missing_signature(provider: VietqrProvider, forge: Forge) -> None:
    request = forge.strip_signature(
        forge.notification(reference=REFERENCE, amount=1, result_code="success", provider_txn_id="FT1")
    )
    assert "X-Signature" not in request.headers
    with pytest.raises(SignatureVerificationError, match="missing"):
        provider.verify_callback(request)


def test_garbage_signature(provider: VietqrProvider, keys: Keys) -> None:
    request = credit(keys.new)
    for value in ("", "not base64 !!", "AAAA"):
        bad = CallbackRequest("POST", {}, {**request.headers, "X-Signature": value}, request.body)
        with pytest.raises(SignatureVerificationError):
            provider.verify_callback(bad)


def test_signature_header_name_is_case_insensitive(provider: VietqrProvider, keys: Keys) -> None:
    request = credit(keys.new)
    lower = {k.lower(): v for k, v in request.headers.items()}
    assert provider.verify_callback(CallbackRequest("POST", {}, lower, request.body)).reference == REFERENCE


def test_key_rotation(provider: VietqrProvider, keys: Keys) -> None:
    # VIETQR_BANK_PUBLIC_KEYS holds the new and the old key: both verify, a third does not.
    assert provider.verify_callback(credit(keys.new)).outcome is Outcome.SUCCEEDED
    assert provider.verify_callback(credit(keys.old)).outcome is Outcome.SUCCEEDED
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(credit(keys.stranger))


def test_forge_notification_verifies(provider: VietqrProvider, forge: Forge) -> None:
    for code, outcome in Forge.result_codes.items():
        request = forge.notification(
            reference=REFERENCE, amount=58_000, result_code=code, provider_txn_id="FT9"
        )
        n = provider.verify_callback(request)
        assert (n.outcome, n.reference, n.amount, n.provider_txn_id) == (outcome, REFERENCE, 58_000, "FT9")
    assert (
        provider.verify_callback(
            forge.notification(
                reference=REFERENCE, amount=1, result_code=Forge.success_code, provider_txn_id="FT1"
            )
        ).outcome
        is Outcome.SUCCEEDED
    )


@pytest.mark.parametrize("field_name", Forge.signed_fields)
def test_each_tampered_field_is_rejected(provider: VietqrProvider, forge: Forge, field_name: str) -> None:
    request = forge.notification(
        reference=REFERENCE, amount=58_000, result_code="success", provider_txn_id="FT9"
    )
    tampered = forge.tamper(request, field_name)
    assert tampered.body != request.body
    assert tampered.headers == request.headers
    assert json.loads(tampered.body)[field_name] != json.loads(request.body).get(field_name)
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(tampered)


def test_forge_with_another_secret_is_rejected(provider: VietqrProvider, forge: Forge, keys: Keys) -> None:
    for secret in (keys.stranger.decode(), "not-a-pem-key"):
        request = forge.notification(
            reference=REFERENCE, amount=1, result_code="success", provider_txn_id="FT1", secret=secret
        )
        with pytest.raises(SignatureVerificationError):
            provider.verify_callback(request)
    old = forge.notification(
        reference=REFERENCE, amount=1, result_code="success", provider_txn_id="FT1", secret=keys.old.decode()
    )
    assert provider.verify_callback(old).outcome is Outcome.SUCCEEDED


def test_forge_needs_a_pem_key_and_a_vietqr_provider(provider: VietqrProvider, tmp_path: Path) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message varies
        Forge(provider, "not-a-pem-key")
    from providers.vnpay import VnpayProvider

    vnpay = VnpayProvider(ProviderCredentials(code="vnpay", values={}, emulated=True), base_url=BASE_URL)
    with pytest.raises(TypeError):
        Forge(vnpay, "x")


# ---- return, acknowledge, query, refund ----------------------------------------------------------------


def test_there_is_no_return_redirect(provider: VietqrProvider) -> None:
    with pytest.raises(MalformedNotification, match="no return redirect"):
        provider.verify_return(CallbackRequest("GET", {"ref": REFERENCE}, {}, b""))


@pytest.mark.parametrize(
    ("ack", "status", "body"),
    [
        (Ack.OK, 200, b'{"code":"00","message":"ok"}'),
        (Ack.ALREADY, 200, b'{"code":"00","message":"ok"}'),
        (Ack.NOT_FOUND, 200, b'{"code":"00","message":"ok"}'),
        (Ack.BAD_AMOUNT, 200, b'{"code":"00","message":"ok"}'),
        (Ack.BAD_SIGNATURE, 401, b'{"code":"97","message":"invalid signature"}'),
        (Ack.ERROR, 500, b'{"code":"99","message":"error, retry"}'),
    ],
)
def test_acknowledge(provider: VietqrProvider, ack: Ack, status: int, body: bytes) -> None:
    answer = provider.acknowledge(ack)
    assert (answer.status, answer.body, answer.content_type) == (status, body, "application/json")


def test_every_ack_has_an_answer(provider: VietqrProvider) -> None:
    assert {provider.acknowledge(ack).status for ack in Ack} == {200, 401, 500}


def test_query_has_no_api(provider: VietqrProvider, no_network: responses.RequestsMock) -> None:
    n = provider.query(QueryRequest(REFERENCE, 58_000, datetime.now(UTC), "x"))
    assert (n.reference, n.outcome, n.result_code, n.amount) == (
        REFERENCE,
        Outcome.UNKNOWN,
        "no_query_api",
        None,
    )
    assert len(no_network.calls) == 0


def test_refunds_are_manual(provider: VietqrProvider) -> None:
    now = datetime.now(UTC)
    request = RefundRequest("RF1", REFERENCE, "FT1", 1000, 58_000, 0, "x", "staff", now, now)
    with pytest.raises(NotImplementedError):
        provider.refund(request)

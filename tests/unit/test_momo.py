"""MoMo adapter: §7 cross-checks C-F, signing, IPN/redirect parsing, ack answers, create/query/refund."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from gateway.domain.errors import (
    GatewayError,
    MalformedNotification,
    ProviderUnavailable,
    SignatureVerificationError,
)
from gateway.settings import ProviderCredentials
from providers import momo
from providers.base import Ack, CallbackRequest, Outcome, PaymentRequest, QueryRequest, RefundRequest
from providers.momo import (
    CREATE_SIGNATURE_KEYS,
    EMULATOR_ACCESS_KEY,
    EMULATOR_PARTNER_CODE,
    EMULATOR_SECRET_KEY,
    IPN_SIGNATURE_KEYS,
    QUERY_SIGNATURE_KEYS,
    REFUND_SIGNATURE_KEYS,
    JsonNumber,
    MomoProvider,
    create_signature_raw,
    from_epoch_ms,
    ipn_signature_raw,
    loads_raw,
    new_request_id,
    query_signature_raw,
    raw_value,
    refund_signature_raw,
)
from providers.signing import hmac_hex

# providers.md §7: the public sandbox credentials of momo-wallet/payment python/MoMo.py.
PARTNER = "MOMO"
ACCESS_KEY = "F8BBA842ECF85"
SECRET = "K951B6PE1waDMi640xX08PD3vg6EkVlz"
ENDPOINT = "https://test-payment.momo.vn"
CREATE_URL = ENDPOINT + "/v2/gateway/api/create"
QUERY_URL = ENDPOINT + "/v2/gateway/api/query"
REFUND_URL = ENDPOINT + "/v2/gateway/api/refund"

# §7 cross-checks C-F (self-computed from the documented construction), string and hex.
C_RAW = (
    "accessKey=F8BBA842ECF85&amount=50000&extraData=&ipnUrl=https://example.com/momo/ipn&orderId=HS-2024-0001"
    "&orderInfo=Le phi ho so HS-2024-0001&partnerCode=MOMO&redirectUrl=https://example.com/momo/return"
    "&requestId=HS-2024-0001-r1&requestType=captureWallet"
)
C_HEX = "062a3e5a16602a8f02f35c3f521bce06184884a1a864b6bc9f11960cf06b9550"
D_RAW = (
    "accessKey=F8BBA842ECF85&amount=50000&extraData=&message=Successful.&orderId=HS-2024-0001"
    "&orderInfo=Le phi ho so HS-2024-0001&orderType=momo_wallet&partnerCode=MOMO&payType=qr"
    "&requestId=HS-2024-0001-r1&responseTime=1721720663942&resultCode=0&transId=4088878653"
)
D_HEX = "47e2b440cbc813290ca7d18dc143ad4c67ab35c011bd83367f1ed119939cc375"
E_RAW = "accessKey=F8BBA842ECF85&orderId=HS-2024-0001&partnerCode=MOMO&requestId=HS-2024-0001-q1"
E_HEX = "3955c97bbc03f728102f56a17bdcfd74c357ceaae4e10aa26ec10f6e676268f4"
F_RAW = (
    "accessKey=F8BBA842ECF85&amount=50000&description=&orderId=HS-2024-0001-RF1&partnerCode=MOMO"
    "&requestId=HS-2024-0001-rf1&transId=4088878653"
)
F_HEX = "db300c0a940213bc12a5f031dcd9138c29b49295f06eb6c7de31dcff5005a09c"

# The IPN of cross-check D as MoMo POSTs it: JSON numbers for amount/transId/resultCode/responseTime.
D_FIELDS: dict[str, Any] = {
    "partnerCode": "MOMO",
    "orderId": "HS-2024-0001",
    "requestId": "HS-2024-0001-r1",
    "amount": 50000,
    "orderInfo": "Le phi ho so HS-2024-0001",
    "orderType": "momo_wallet",
    "transId": 4088878653,
    "resultCode": 0,
    "message": "Successful.",
    "payType": "qr",
    "responseTime": 1721720663942,
    "extraData": "",
}


def make_credentials(secret: str = SECRET, **changes: str) -> ProviderCredentials:
    values = {
        "MOMO_PARTNER_CODE": PARTNER,
        "MOMO_ACCESS_KEY": ACCESS_KEY,
        "MOMO_SECRET_KEY": secret,
        "MOMO_ENDPOINT": ENDPOINT + "/",
    }
    values.update(changes)
    return ProviderCredentials(code="momo", values=values, emulated=False)


@pytest.fixture
def provider() -> MomoProvider:
    return MomoProvider(make_credentials(), base_url="http://gateway.test", session=requests.Session())


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _text(value: Any) -> str:
    # How MoMo's JSON writes a value, independently of the adapter: numbers as JSON numbers.
    return json.dumps(value) if isinstance(value, int | float) else str(value)


def signed_body(secret: str = SECRET, **changes: Any) -> bytes:
    """D_FIELDS with ``changes`` (None deletes), signed over the JSON text of each value like MoMo."""
    fields = {**D_FIELDS, **changes}
    fields = {k: v for k, v in fields.items() if v is not None}
    raw = "&".join(
        f"{key}={ACCESS_KEY if key == 'accessKey' else _text(fields.get(key, ''))}"
        for key in IPN_SIGNATURE_KEYS
    )
    fields["signature"] = hmac_hex(secret, raw, "sha256")
    return json.dumps(fields).encode()


def ipn(body: bytes) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        args={},
        headers={"Content-Type": "application/json"},
        body=body,
        remote_addr="203.0.113.10",
    )


def d_body() -> bytes:
    return json.dumps({**D_FIELDS, "signature": D_HEX}).encode()


# ---- §7 cross-checks ------------------------------------------------------------------------------------


def test_signature_key_sets_are_in_a_to_z_order() -> None:
    for keys in (CREATE_SIGNATURE_KEYS, IPN_SIGNATURE_KEYS, QUERY_SIGNATURE_KEYS, REFUND_SIGNATURE_KEYS):
        assert list(keys) == sorted(keys)
        assert keys[0] == "accessKey"


def test_cross_check_c_create() -> None:
    fields = {
        "partnerCode": "MOMO",
        "partnerName": "ignored",
        "storeId": "ignored",
        "requestId": "HS-2024-0001-r1",
        "amount": 50000,
        "orderId": "HS-2024-0001",
        "orderInfo": "Le phi ho so HS-2024-0001",
        "redirectUrl": "https://example.com/momo/return",
        "ipnUrl": "https://example.com/momo/ipn",
        "lang": "vi",
        "extraData": "",
        "requestType": "captureWallet",
        "accessKey": "F8BBA842ECF85",
    }
    raw = create_signature_raw(fields)
    assert raw == C_RAW
    assert hmac_hex(SECRET, raw, "sha256") == C_HEX


def test_cross_check_d_ipn_from_json_numbers() -> None:
    raw = ipn_signature_raw({**loads_raw(json.dumps(D_FIELDS)), "accessKey": ACCESS_KEY})
    assert raw == D_RAW
    assert hmac_hex(SECRET, raw, "sha256") == D_HEX


def test_cross_check_d_ipn_from_query_strings() -> None:
    # The redirect carries the same values as strings (§2.3): same bytes to sign.
    raw = ipn_signature_raw({**{k: str(v) for k, v in D_FIELDS.items()}, "accessKey": ACCESS_KEY})
    assert raw == D_RAW


def test_cross_check_e_query() -> None:
    fields = {"partnerCode": "MOMO", "requestId": "HS-2024-0001-q1", "orderId": "HS-2024-0001", "lang": "vi"}
    raw = query_signature_raw({**fields, "accessKey": ACCESS_KEY})
    assert raw == E_RAW
    assert hmac_hex(SECRET, raw, "sha256") == E_HEX


def test_cross_check_f_refund() -> None:
    fields = {
        "partnerCode": "MOMO",
        "orderId": "HS-2024-0001-RF1",
        "requestId": "HS-2024-0001-rf1",
        "amount": 50000,
        "transId": 4088878653,
        "lang": "vi",
        "description": "",
    }
    raw = refund_signature_raw({**fields, "accessKey": ACCESS_KEY})
    assert raw == F_RAW
    assert hmac_hex(SECRET, raw, "sha256") == F_HEX


# ---- pure helpers -----------------------------------------------------------------------------------


def test_loads_raw_keeps_number_text() -> None:
    data = loads_raw(b'{"a": 50000, "b": 5e4, "c": 50000.0, "d": "50000", "e": -1, "f": true, "g": null}')
    assert data == {"a": "50000", "b": "5e4", "c": "50000.0", "d": "50000", "e": "-1", "f": True, "g": None}
    assert isinstance(data["a"], JsonNumber)
    assert not isinstance(data["d"], JsonNumber)


@pytest.mark.parametrize(
    "body", [b'{"a": 1, "a": 2}', b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"{", b""]
)
def test_loads_raw_refuses_ambiguous_or_broken_json(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's and ours
        loads_raw(body)


def test_raw_value() -> None:
    assert raw_value(None) == ""
    assert raw_value(True) == "true"
    assert raw_value(4088878653) == "4088878653"
    assert raw_value("Lệ phí") == "Lệ phí"  # raw: never URL-encoded (§2.1)
    assert raw_value({"a": 1}) == '{"a":1}'


def test_from_epoch_ms() -> None:
    assert from_epoch_ms("1721720663942") == datetime(2024, 7, 23, 7, 44, 23, 942000, tzinfo=UTC)
    assert from_epoch_ms(1721720663942) == datetime(2024, 7, 23, 7, 44, 23, 942000, tzinfo=UTC)
    for bad in (None, "", "1.5", "-1", "abc", "9" * 30, True):
        assert from_epoch_ms(bad) is None


def test_new_request_id_is_unique_and_short() -> None:
    ids = {new_request_id("GW240521ABCDEF") for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("GW240521ABCDEF-") and len(i) <= 50 for i in ids)
    assert len(new_request_id("x" * 64)) <= 50


# ---- construction -----------------------------------------------------------------------------------


def test_emulator_defaults() -> None:
    p = MomoProvider(
        ProviderCredentials(code="momo", values={}, emulated=True), base_url="http://127.0.0.1:8000/"
    )
    assert p.partner_code == EMULATOR_PARTNER_CODE == "GWDEMOMOMO"
    assert p.access_key == EMULATOR_ACCESS_KEY
    assert p.secrets == (EMULATOR_SECRET_KEY,)
    assert p.create_url == "http://127.0.0.1:8000/_emulator/momo/v2/gateway/api/create"
    assert p.query_url == "http://127.0.0.1:8000/_emulator/momo/v2/gateway/api/query"
    assert p.refund_url == "http://127.0.0.1:8000/_emulator/momo/v2/gateway/api/refund"


def test_env_values(provider: MomoProvider) -> None:
    assert (provider.partner_code, provider.access_key, provider.secret) == (PARTNER, ACCESS_KEY, SECRET)
    assert provider.create_url == CREATE_URL
    assert (provider.code, provider.display_name, provider.callback_methods) == ("momo", "MoMo", ("POST",))
    assert provider.methods == ("captureWallet", "payWithATM")


@pytest.mark.parametrize("secret", ["", " , "])
def test_empty_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        MomoProvider(make_credentials(secret), base_url="http://gateway.test")


@pytest.mark.parametrize("name", ["MOMO_PARTNER_CODE", "MOMO_ACCESS_KEY", "MOMO_ENDPOINT"])
def test_missing_variable_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        MomoProvider(make_credentials(**{name: " "}), base_url="http://gateway.test")


def test_rotated_secret_signs_with_the_first() -> None:
    p = MomoProvider(make_credentials(f"new_secret, {SECRET}"), base_url="http://gateway.test")
    assert p.secrets == ("new_secret", SECRET)
    assert p.secret == "new_secret"


# ---- create (§2.2) --------------------------------------------------------------------------------------


def payment_request(**changes: Any) -> PaymentRequest:
    created = datetime(2024, 7, 23, 7, 40, tzinfo=UTC)
    values: dict[str, Any] = {
        "reference": "HS-2024-0001",
        "amount": 50_000,
        "order_info": "Lệ phí hồ sơ HS-2024-0001",
        "return_url": "https://example.com/momo/return",
        "notify_url": "https://example.com/momo/ipn",
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": created,
        "expires_at": created + timedelta(minutes=15),
    }
    values.update(changes)
    return PaymentRequest(**values)


def create_answer(sent: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "partnerCode": PARTNER,
        "orderId": sent["orderId"],
        "requestId": sent["requestId"],
        "amount": sent["amount"],
        "responseTime": 1721720400000,
        "message": "Thành công.",
        "resultCode": 0,
        "payUrl": "https://test-payment.momo.vn/v2/gateway/pay?t=abc",
        "deeplink": "momo://app?action=payWithApp",
        "qrCodeUrl": "momo://app?action=payWithApp",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def answer_create(mocked: responses.RequestsMock, status: int = 200, **changes: Any) -> None:
    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body or b"")
        return status, {"Content-Type": "application/json"}, json.dumps(create_answer(sent, **changes))

    mocked.add_callback(responses.POST, CREATE_URL, callback=reply)


def sent_body(mocked: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(mocked.calls[index].request.body or b"")
    return body


def test_build_payment_request_reproduces_cross_check_c(
    provider: MomoProvider, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(momo, "new_request_id", lambda reference: f"{reference}-r1")
    answer_create(mocked)
    redirect = provider.build_payment_request(payment_request())
    assert redirect.redirect_url == "https://test-payment.momo.vn/v2/gateway/pay?t=abc"
    assert redirect.provider_data == {"requestId": "HS-2024-0001-r1", "requestType": "captureWallet"}
    assert redirect.qr_payload is None
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"
    assert sent_body(mocked) == {
        "partnerCode": "MOMO",
        "partnerName": momo.PARTNER_NAME,
        "storeId": "MOMO",
        "requestId": "HS-2024-0001-r1",
        "amount": 50000,
        "orderId": "HS-2024-0001",
        "orderInfo": "Le phi ho so HS-2024-0001",
        "redirectUrl": "https://example.com/momo/return",
        "ipnUrl": "https://example.com/momo/ipn",
        "lang": "vi",
        "extraData": "",
        "requestType": "captureWallet",
        "signature": C_HEX,
    }


def test_build_payment_request_atm_english_rotated_key(mocked: responses.RequestsMock) -> None:
    p = MomoProvider(make_credentials(f"new_secret,{SECRET}"), base_url="http://gateway.test")
    answer_create(mocked)
    redirect = p.build_payment_request(payment_request(method="payWithATM", locale="en", order_info="%%%"))
    sent = sent_body(mocked)
    assert sent["requestType"] == "payWithATM"
    assert sent["lang"] == "en"
    assert sent["orderInfo"] == "Thanh toan HS-2024-0001"  # §2.2 orderInfo is required
    assert sent["requestId"].startswith("HS-2024-0001-")
    # Outgoing requests are signed with the first key of "new,old".
    assert sent["signature"] == hmac_hex(
        "new_secret", create_signature_raw({**sent, "accessKey": ACCESS_KEY}), "sha256"
    )
    assert redirect.provider_data == {"requestId": sent["requestId"], "requestType": "payWithATM"}


@pytest.mark.parametrize(
    ("method", "amount"),
    [
        (None, 999),
        ("captureWallet", 50_000_001),
        ("payWithATM", 9_999),
        ("payWithATM", 50_000_001),
    ],
)
def test_amount_outside_the_limits_is_refused_before_calling(
    provider: MomoProvider, mocked: responses.RequestsMock, method: str | None, amount: int
) -> None:
    with pytest.raises(GatewayError) as info:
        provider.build_payment_request(payment_request(method=method, amount=amount))
    assert not isinstance(info.value, ProviderUnavailable)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    ("method", "amount"),
    [(None, 1_000), ("captureWallet", 50_000_000), ("payWithATM", 10_000), ("payWithATM", 50_000_000)],
)
def test_amount_limits_are_inclusive(
    provider: MomoProvider, mocked: responses.RequestsMock, method: str | None, amount: int
) -> None:
    answer_create(mocked)
    provider.build_payment_request(payment_request(method=method, amount=amount))
    assert sent_body(mocked)["amount"] == amount


def test_unknown_method_is_refused(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    with pytest.raises(GatewayError, match="payWithCC"):
        provider.build_payment_request(payment_request(method="payWithCC"))
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("amount", [0, -1000, True, 50_000.0])
def test_non_integer_amount_is_a_bug(provider: MomoProvider, amount: Any) -> None:
    with pytest.raises(ValueError, match="amount"):
        provider.build_payment_request(payment_request(amount=amount))


@pytest.mark.parametrize("code", [1001, 11, 12, 13, 20, 21, 22, 40, 41, 42, 98, 1005])
def test_create_refusal_is_a_definite_gateway_error(
    provider: MomoProvider, mocked: responses.RequestsMock, code: int
) -> None:
    answer_create(mocked, resultCode=code, payUrl=None, message="Từ chối")
    with pytest.raises(GatewayError, match=f"resultCode {code}") as info:
        provider.build_payment_request(payment_request())
    assert not isinstance(info.value, ProviderUnavailable)


def test_create_refusal_in_a_400_json_answer(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    answer_create(mocked, status=400, resultCode=13, payUrl=None)
    with pytest.raises(GatewayError, match="resultCode 13") as info:
        provider.build_payment_request(payment_request())
    assert not isinstance(info.value, ProviderUnavailable)


@pytest.mark.parametrize("code", [10, 7000, 7002, 99, 43])
def test_create_not_now_codes_are_unavailable(
    provider: MomoProvider, mocked: responses.RequestsMock, code: int
) -> None:
    answer_create(mocked, resultCode=code, payUrl=None)
    with pytest.raises(ProviderUnavailable, match=str(code)):
        provider.build_payment_request(payment_request())


@pytest.mark.parametrize(
    "changes",
    [
        {"payUrl": None},
        {"payUrl": ""},
        {"payUrl": "javascript:alert(1)"},
        {"orderId": "SOMEONE-ELSE"},
        {"requestId": "other-request"},
        {"resultCode": None},
        {"resultCode": "zero"},
        {"resultCode": 0.0},
    ],
)
def test_create_unusable_answer_is_unavailable(
    provider: MomoProvider, mocked: responses.RequestsMock, changes: dict[str, Any]
) -> None:
    answer_create(mocked, **changes)
    with pytest.raises(ProviderUnavailable):
        provider.build_payment_request(payment_request())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, "Service Unavailable"),
        (500, '{"resultCode": 0}'),
        (200, "<html>oops"),
        (200, "[1]"),
        (404, "nope"),
    ],
)
def test_create_http_trouble_is_unavailable(
    provider: MomoProvider, mocked: responses.RequestsMock, status: int, body: str
) -> None:
    mocked.post(CREATE_URL, status=status, body=body)
    with pytest.raises(ProviderUnavailable):
        provider.build_payment_request(payment_request())


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_create_unreachable_is_unavailable(
    provider: MomoProvider, mocked: responses.RequestsMock, error: Exception
) -> None:
    mocked.post(CREATE_URL, body=error)
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        provider.build_payment_request(payment_request())


def test_create_uses_the_configured_timeout(mocked: responses.RequestsMock) -> None:
    p = MomoProvider(make_credentials(), base_url="http://gateway.test", timeout=31.5)
    seen: list[Any] = []
    original = p.session.post

    def spy(*args: Any, **kwargs: Any) -> requests.Response:
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    p.session.post = spy  # type: ignore[method-assign]
    answer_create(mocked)
    p.build_payment_request(payment_request())
    assert seen == [31.5]


# ---- IPN and redirect (§2.3) ------------------------------------------------------------------------------


def test_verify_callback_accepts_cross_check_d(provider: MomoProvider) -> None:
    n = provider.verify_callback(ipn(d_body()))
    assert n.reference == "HS-2024-0001"
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 50_000
    assert n.provider_txn_id == "4088878653"
    assert n.result_code == "0"
    assert n.paid_at == datetime(2024, 7, 23, 7, 44, 23, 942000, tzinfo=UTC)
    assert n.kind == "payment"
    assert n.raw["amount"] == "50000"
    assert n.raw["signature"] == D_HEX
    assert n.dedupe_key == "HS-2024-0001:4088878653:payment"


def test_verify_return_accepts_the_same_fields_as_query_parameters(provider: MomoProvider) -> None:
    args = {**{k: str(v) for k, v in D_FIELDS.items()}, "signature": D_HEX}
    n = provider.verify_return(CallbackRequest(method="GET", args=args, headers={}, body=b""))
    assert (n.reference, n.outcome, n.amount, n.provider_txn_id) == (
        "HS-2024-0001",
        Outcome.SUCCEEDED,
        50_000,
        "4088878653",
    )
    assert n.paid_at == provider.verify_callback(ipn(d_body())).paid_at


def test_verify_callback_accepts_the_old_key_during_rotation() -> None:
    p = MomoProvider(make_credentials(f"new_secret,{SECRET}"), base_url="http://gateway.test")
    assert p.verify_callback(ipn(d_body())).outcome is Outcome.SUCCEEDED
    assert p.verify_callback(ipn(signed_body("new_secret"))).outcome is Outcome.SUCCEEDED


def test_verify_callback_rejects_a_key_that_is_neither_new_nor_old() -> None:
    p = MomoProvider(make_credentials(f"new_secret,{SECRET}"), base_url="http://gateway.test")
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(ipn(signed_body("third_secret")))


def test_verify_callback_rejects_a_wrong_key() -> None:
    p = MomoProvider(make_credentials("another_secret"), base_url="http://gateway.test")
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(ipn(d_body()))


def test_verify_callback_rejects_another_access_key() -> None:
    # The accessKey is part of the string-to-sign (§2.1): another partner's key cannot verify.
    p = MomoProvider(make_credentials(MOMO_ACCESS_KEY="OTHERKEY"), base_url="http://gateway.test")
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(ipn(d_body()))


@pytest.mark.parametrize("signature", [None, "", "00", 12345, D_HEX.upper() + "0"])
def test_verify_callback_rejects_missing_or_junk_signature(provider: MomoProvider, signature: Any) -> None:
    fields: dict[str, Any] = dict(D_FIELDS)
    if signature is not None:
        fields["signature"] = signature
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(json.dumps(fields).encode()))


@pytest.mark.parametrize("field", sorted(D_FIELDS))
def test_verify_callback_rejects_each_tampered_field(provider: MomoProvider, field: str) -> None:
    fields = json.loads(d_body())
    value = fields[field]
    fields[field] = value + 1 if isinstance(value, int) else value + "x"
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(json.dumps(fields).encode()))


@pytest.mark.parametrize("field", sorted(k for k, v in D_FIELDS.items() if v != ""))
def test_verify_callback_rejects_each_removed_field(provider: MomoProvider, field: str) -> None:
    fields = json.loads(d_body())
    del fields[field]
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(json.dumps(fields).encode()))


def test_verify_callback_rejects_a_number_written_as_float(provider: MomoProvider) -> None:
    # Same value, other bytes: MoMo signed "amount=50000", not "amount=50000.0".
    body = d_body().replace(b'"amount": 50000', b'"amount": 50000.0')
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(body))


def test_verify_callback_ignores_an_access_key_in_the_message(provider: MomoProvider) -> None:
    fields = json.loads(d_body())
    fields["accessKey"] = "ATTACKER"
    assert provider.verify_callback(ipn(json.dumps(fields).encode())).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'"x"', b"\xff", d_body()[:-1] + b', "amount": 1}'],
)
def test_unreadable_body_is_a_signature_error(provider: MomoProvider, body: bytes) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(body))


@pytest.mark.parametrize("amount", [50000.0, -50000, "50.000", "", "５００００", True])
def test_signed_but_bad_amount_is_malformed(provider: MomoProvider, amount: Any) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_callback(ipn(signed_body(amount=amount)))


def test_signed_amount_in_exponent_notation_is_malformed(provider: MomoProvider) -> None:
    # The signature holds for the bytes sent ("amount=5e4"), but 5e4 is not how MoMo writes a Long.
    raw = D_RAW.replace("amount=50000", "amount=5e4")
    fields = {**D_FIELDS, "signature": hmac_hex(SECRET, raw, "sha256")}
    body = json.dumps(fields).replace('"amount": 50000', '"amount": 5e4').encode()
    with pytest.raises(MalformedNotification, match="5e4"):
        provider.verify_callback(ipn(body))


def test_a_nested_value_cannot_be_verified(provider: MomoProvider) -> None:
    # No documented rendering for a JSON array/object in the string-to-sign: never trusted.
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(signed_body(amount=[50000])))


def test_signed_amount_as_digit_string_is_accepted(provider: MomoProvider) -> None:
    assert provider.verify_callback(ipn(signed_body(amount="50000"))).amount == 50_000


@pytest.mark.parametrize(
    "changes",
    [
        {"orderId": None},
        {"orderId": ""},
        {"resultCode": None},
        {"resultCode": 0.0},
        {"resultCode": "ok"},
        {"transId": 4088878653.5},
        {"partnerCode": "SOMEONE"},
    ],
)
def test_signed_but_unusable_is_malformed(provider: MomoProvider, changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_callback(ipn(signed_body(**changes)))


def test_signature_is_checked_before_parsing(provider: MomoProvider) -> None:
    fields = json.loads(d_body())
    fields["amount"] = "garbage"
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(ipn(json.dumps(fields).encode()))


@pytest.mark.parametrize("trans_id", [0, "0", "", None])
def test_no_transaction_id(provider: MomoProvider, trans_id: Any) -> None:
    n = provider.verify_callback(ipn(signed_body(transId=trans_id, resultCode=1006)))
    assert n.provider_txn_id is None
    assert n.dedupe_key == "HS-2024-0001:-:payment"


def test_unparseable_response_time_has_no_paid_at(provider: MomoProvider) -> None:
    assert provider.verify_callback(ipn(signed_body(responseTime="soon"))).paid_at is None


# §2.6 mapping for an IPN, one row per documented code (grouped as in providers/momo.py).
IPN_OUTCOMES: list[tuple[int, Outcome]] = [
    (0, Outcome.SUCCEEDED),
    # not final yet
    (1000, Outcome.PENDING),
    (7000, Outcome.PENDING),
    (7002, Outcome.PENDING),
    (8000, Outcome.PENDING),
    (9000, Outcome.PENDING),
    (43, Outcome.PENDING),
    # the citizen's side failed
    (1001, Outcome.FAILED),
    (1002, Outcome.FAILED),
    (1003, Outcome.FAILED),
    (1004, Outcome.FAILED),
    (1005, Outcome.FAILED),
    (1006, Outcome.FAILED),
    (1007, Outcome.FAILED),
    (1017, Outcome.FAILED),
    (1026, Outcome.FAILED),
    (4001, Outcome.FAILED),
    (4100, Outcome.FAILED),
    (98, Outcome.FAILED),
    # MoMo refused the request: no money moved
    (10, Outcome.FAILED),
    (11, Outcome.FAILED),
    (12, Outcome.FAILED),
    (13, Outcome.FAILED),
    (20, Outcome.FAILED),
    (21, Outcome.FAILED),
    (22, Outcome.FAILED),
    (42, Outcome.FAILED),
    # says nothing about the first request / unknown / refund codes / undocumented
    (40, Outcome.UNKNOWN),
    (41, Outcome.UNKNOWN),
    (99, Outcome.UNKNOWN),
    (1080, Outcome.UNKNOWN),
    (1081, Outcome.UNKNOWN),
    (1088, Outcome.UNKNOWN),
    (1234, Outcome.UNKNOWN),
]


def test_the_table_covers_every_documented_code() -> None:
    assert {str(code) for code, _ in IPN_OUTCOMES} - {"1234"} == set(momo.DOCUMENTED_RESULT_CODES)


@pytest.mark.parametrize(("code", "outcome"), IPN_OUTCOMES)
def test_ipn_outcome_mapping(provider: MomoProvider, code: int, outcome: Outcome) -> None:
    n = provider.verify_callback(ipn(signed_body(resultCode=code)))
    assert n.outcome is outcome
    assert n.result_code == str(code)


# ---- acknowledge (§2.3, contract §6) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "status"),
    [
        (Ack.OK, 204),
        (Ack.ALREADY, 204),
        (Ack.NOT_FOUND, 204),
        (Ack.BAD_AMOUNT, 204),
        (Ack.BAD_SIGNATURE, 400),
        (Ack.ERROR, 500),
    ],
)
def test_acknowledge(provider: MomoProvider, ack: Ack, status: int) -> None:
    answer = provider.acknowledge(ack)
    assert answer.status == status
    assert answer.body == b""
    assert answer.content_type is None


# ---- query (§2.4) -----------------------------------------------------------------------------------------


def query_request() -> QueryRequest:
    return QueryRequest(
        reference="HS-2024-0001",
        amount=50_000,
        created_at=datetime(2024, 7, 23, 7, 40, tzinfo=UTC),
        order_info="Lệ phí hồ sơ",
        provider_data={"requestId": "HS-2024-0001-r1", "requestType": "captureWallet"},
    )


def query_answer(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerCode": PARTNER,
        "orderId": "HS-2024-0001",
        "requestId": "HS-2024-0001-q1",
        "extraData": "",
        "amount": 50000,
        "transId": 4088878653,
        "payType": "qr",
        "resultCode": 0,
        "refundTrans": [],
        "message": "Thành công.",
        "responseTime": 1721720900000,
        "lastUpdated": 1721720663942,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_query_succeeded_and_reproduces_cross_check_e(
    provider: MomoProvider, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(momo, "new_request_id", lambda reference: f"{reference}-q1")
    mocked.post(QUERY_URL, json=query_answer())
    n = provider.query(query_request())
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 50_000
    assert n.provider_txn_id == "4088878653"
    assert n.result_code == "0"
    assert n.paid_at == datetime(2024, 7, 23, 7, 44, 23, 942000, tzinfo=UTC)
    assert sent_body(mocked) == {
        "partnerCode": "MOMO",
        "requestId": "HS-2024-0001-q1",
        "orderId": "HS-2024-0001",
        "lang": "vi",
        "signature": E_HEX,
    }


def test_query_request_ids_are_fresh(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(QUERY_URL, json=query_answer())
    provider.query(query_request())
    provider.query(query_request())
    assert sent_body(mocked, 0)["requestId"] != sent_body(mocked, 1)["requestId"]


@pytest.mark.parametrize(
    ("changes", "outcome", "result_code"),
    [
        ({"resultCode": 1000, "transId": 0}, Outcome.PENDING, "1000"),
        ({"resultCode": 9000}, Outcome.PENDING, "9000"),
        ({"resultCode": 7000}, Outcome.PENDING, "7000"),
        ({"resultCode": 1006}, Outcome.FAILED, "1006"),
        ({"resultCode": 1001}, Outcome.FAILED, "1001"),
        # request errors describe the query, not the payment
        ({"resultCode": 42, "amount": None, "transId": None}, Outcome.UNKNOWN, "42"),
        ({"resultCode": 13}, Outcome.UNKNOWN, "13"),
        ({"resultCode": 10}, Outcome.UNKNOWN, "10"),
        ({"resultCode": 99}, Outcome.UNKNOWN, "99"),
        ({"resultCode": 4242}, Outcome.UNKNOWN, "4242"),
        # not about our order / unusable
        ({"orderId": "SOMEONE-ELSE"}, Outcome.UNKNOWN, "garbage"),
        ({"partnerCode": "OTHER"}, Outcome.UNKNOWN, "garbage"),
        ({"amount": 50000.5}, Outcome.UNKNOWN, "garbage"),
        ({"amount": None}, Outcome.UNKNOWN, "garbage"),
        ({"resultCode": "x"}, Outcome.UNKNOWN, "garbage"),
    ],
)
def test_query_state_mapping(
    provider: MomoProvider,
    mocked: responses.RequestsMock,
    changes: dict[str, Any],
    outcome: Outcome,
    result_code: str,
) -> None:
    mocked.post(QUERY_URL, json=query_answer(**changes))
    n = provider.query(query_request())
    assert n.outcome is outcome
    assert n.result_code == result_code
    if outcome is not Outcome.SUCCEEDED:
        assert n.paid_at is None


def test_query_pending_has_no_transaction(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(QUERY_URL, json=query_answer(resultCode=1000, transId=0))
    assert provider.query(query_request()).provider_txn_id is None


def test_query_400_with_momo_json_is_read(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(QUERY_URL, status=400, json={"resultCode": 20, "message": "Bad format request."})
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "20")


@pytest.mark.parametrize(("status", "code"), [(503, "http_503"), (500, "http_500"), (404, "http_404")])
def test_query_http_errors_are_unknown(
    provider: MomoProvider, mocked: responses.RequestsMock, status: int, code: str
) -> None:
    mocked.post(QUERY_URL, status=status, body="Service Unavailable")
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, code)


@pytest.mark.parametrize("body", ["<html>oops", "[1, 2]", "", '{"message": "no code"}'])
def test_query_garbage_is_unknown(provider: MomoProvider, mocked: responses.RequestsMock, body: str) -> None:
    mocked.post(QUERY_URL, status=200, body=body)
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "garbage")


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_query_unreachable_is_unknown(
    provider: MomoProvider, mocked: responses.RequestsMock, error: Exception
) -> None:
    mocked.post(QUERY_URL, body=error)
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "unreachable")


# ---- refund (§2.5) and query_refund ---------------------------------------------------------------------


def refund_request(**changes: Any) -> RefundRequest:
    created = datetime(2024, 7, 24, 2, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "reference": "HS-2024-0001-RF1",
        "payment_reference": "HS-2024-0001",
        "payment_txn_id": "4088878653",
        "amount": 50_000,
        "payment_amount": 50_000,
        "already_refunded": 0,
        "reason": "",
        "actor": "finance@example.gov.vn",
        "created_at": created,
        "payment_created_at": created - timedelta(days=1),
        "payment_provider_data": {"requestId": "HS-2024-0001-r1", "requestType": "captureWallet"},
    }
    values.update(changes)
    return RefundRequest(**values)


def refund_answer(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerCode": PARTNER,
        "orderId": "HS-2024-0001-RF1",
        "requestId": "HS-2024-0001-rf1",
        "amount": 50000,
        "transId": 4088900001,
        "resultCode": 0,
        "message": "Thành công.",
        "responseTime": 1721786400000,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_refund_succeeded_and_reproduces_cross_check_f(
    provider: MomoProvider, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(momo, "new_request_id", lambda reference: "HS-2024-0001-rf1")
    mocked.post(REFUND_URL, json=refund_answer())
    result = provider.refund(refund_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.result_code == "0"
    assert result.provider_reference == "4088900001"
    assert result.message == "Thành công."
    assert sent_body(mocked) == {
        "partnerCode": "MOMO",
        "orderId": "HS-2024-0001-RF1",
        "requestId": "HS-2024-0001-rf1",
        "amount": 50000,
        "transId": 4088878653,
        "lang": "vi",
        "description": "",
        "signature": F_HEX,
    }


def test_refund_description_is_ascii(provider: MomoProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(REFUND_URL, json=refund_answer(amount=20000))
    provider.refund(refund_request(amount=20_000, reason="Hoàn phí hồ sơ: nộp trùng #2"))
    sent = sent_body(mocked)
    assert sent["description"] == "Hoan phi ho so: nop trung 2"
    assert sent["amount"] == 20000
    assert sent["signature"] == hmac_hex(
        SECRET, refund_signature_raw({**sent, "accessKey": ACCESS_KEY}), "sha256"
    )


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (1080, Outcome.FAILED),
        (1081, Outcome.FAILED),
        (1088, Outcome.FAILED),
        (11, Outcome.FAILED),
        (13, Outcome.FAILED),
        (20, Outcome.FAILED),
        (21, Outcome.FAILED),
        (22, Outcome.FAILED),
        (42, Outcome.FAILED),
        (1000, Outcome.PENDING),
        (7000, Outcome.PENDING),
        (7002, Outcome.PENDING),
        # a refund with this orderId/requestId may already exist: resolve with query_refund
        (40, Outcome.UNKNOWN),
        (41, Outcome.UNKNOWN),
        (10, Outcome.UNKNOWN),
        (43, Outcome.UNKNOWN),
        (99, Outcome.UNKNOWN),
        (1006, Outcome.UNKNOWN),
    ],
)
def test_refund_result_mapping(
    provider: MomoProvider, mocked: responses.RequestsMock, code: int, outcome: Outcome
) -> None:
    mocked.post(REFUND_URL, json=refund_answer(resultCode=code, transId=0))
    result = provider.refund(refund_request())
    assert result.outcome is outcome
    assert result.result_code == str(code)
    assert result.provider_reference is None


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (503, "Service Unavailable", "http_503"),
        (200, "<html>oops", "garbage"),
        (200, json.dumps(refund_answer(orderId="HS-2024-0001")), "garbage"),
        (200, json.dumps(refund_answer(resultCode=None)), "garbage"),
    ],
)
def test_refund_trouble_is_unknown(
    provider: MomoProvider, mocked: responses.RequestsMock, status: int, body: str, code: str
) -> None:
    mocked.post(REFUND_URL, status=status, body=body)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, code)


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_refund_unreachable_is_unknown(
    provider: MomoProvider, mocked: responses.RequestsMock, error: Exception
) -> None:
    mocked.post(REFUND_URL, body=error)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "unreachable")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"payment_txn_id": None}, "missing_trans_id"),
        ({"payment_txn_id": "abc"}, "missing_trans_id"),
        ({"amount": 999}, "amount_out_of_range"),
        (
            {"amount": 9_999, "payment_provider_data": {"requestType": "payWithATM"}},
            "amount_out_of_range",
        ),
    ],
)
def test_refund_refused_locally_without_calling(
    provider: MomoProvider, mocked: responses.RequestsMock, changes: dict[str, Any], code: str
) -> None:
    result = provider.refund(refund_request(**changes))
    assert (result.outcome, result.result_code) == (Outcome.FAILED, code)
    assert len(mocked.calls) == 0


def test_query_refund_uses_the_refund_order_id(
    provider: MomoProvider, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        QUERY_URL, json=query_answer(orderId="HS-2024-0001-RF1", transId=4088900001, payType="", amount=20000)
    )
    result = provider.query_refund(refund_request(amount=20_000))
    assert (result.outcome, result.result_code, result.provider_reference) == (
        Outcome.SUCCEEDED,
        "0",
        "4088900001",
    )
    sent = sent_body(mocked)
    assert sent["orderId"] == "HS-2024-0001-RF1"
    assert sent["signature"] == hmac_hex(
        SECRET, query_signature_raw({**sent, "accessKey": ACCESS_KEY}), "sha256"
    )


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (7000, Outcome.PENDING),
        (1000, Outcome.PENDING),
        (1081, Outcome.FAILED),
        (1088, Outcome.FAILED),
        (1080, Outcome.FAILED),
        (1002, Outcome.FAILED),
        (42, Outcome.UNKNOWN),
        (13, Outcome.UNKNOWN),
        (99, Outcome.UNKNOWN),
    ],
)
def test_query_refund_mapping(
    provider: MomoProvider, mocked: responses.RequestsMock, code: int, outcome: Outcome
) -> None:
    mocked.post(QUERY_URL, json=query_answer(orderId="HS-2024-0001-RF1", resultCode=code))
    result = provider.query_refund(refund_request())
    assert (result.outcome, result.result_code) == (outcome, str(code))


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (503, "down", "http_503"),
        (200, "<html>oops", "garbage"),
        (200, json.dumps(query_answer()), "garbage"),  # about the purchase, not the refund
    ],
)
def test_query_refund_trouble_is_unknown(
    provider: MomoProvider, mocked: responses.RequestsMock, status: int, body: str, code: str
) -> None:
    mocked.post(QUERY_URL, status=status, body=body)
    result = provider.query_refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, code)

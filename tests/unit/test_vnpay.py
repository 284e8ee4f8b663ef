"""VNPAY adapter: published vectors (providers.md §7), signing, callback parsing, ack bodies, querydr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.base import Ack, CallbackRequest, Outcome, PaymentRequest, QueryRequest
from providers.signing import hmac_hex
from providers.vnpay import (
    EMULATOR_HASH_SECRET,
    EMULATOR_TMN_CODE,
    VnpayProvider,
    ascii_order_info,
    from_vnp_date,
    query_response_hash_data,
    querydr_hash_data,
    refund_hash_data,
    sign_string,
    signed_query,
    to_vnp_date,
)

PAY_URL = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"
API_URL = "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction"

# providers.md §7 vector 1 (lehuygiang28/vnpay DEFAULT_RETURN_QUERY_INPUT), decoded as a framework would.
VECTOR_1_PARAMS: dict[str, str] = {
    "vnp_Amount": "1000000",
    "vnp_BankCode": "NCB",
    "vnp_BankTranNo": "VNP14422574",
    "vnp_CardType": "ATM",
    "vnp_OrderInfo": "Thanh toan don hang 2024-05-21T02:17:31.249Z",
    "vnp_PayDate": "20240521091806",
    "vnp_ResponseCode": "00",
    "vnp_TmnCode": "TEST_TMN_CODE",
    "vnp_TransactionNo": "14422574",
    "vnp_TransactionStatus": "00",
    "vnp_TxnRef": "1716257871703",
}
VECTOR_1_STRING = (
    "vnp_Amount=1000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14422574&vnp_CardType=ATM"
    "&vnp_OrderInfo=Thanh+toan+don+hang+2024-05-21T02%3A17%3A31.249Z&vnp_PayDate=20240521091806"
    "&vnp_ResponseCode=00&vnp_TmnCode=TEST_TMN_CODE&vnp_TransactionNo=14422574&vnp_TransactionStatus=00"
    "&vnp_TxnRef=1716257871703"
)
VECTOR_1_HASH = (
    "649982421beb422556a1374713c74e58e716ecbd05007c0c0e1f7effdfaf361d"
    "bf146889ca446139afe11b9954c4d5c486e99e3b86fcfab6957f29eb0be72895"
)
VECTOR_2_HASH = (
    "503194f6d93b57b357b2d1d09742565e67e86d771352c5dca4fc8d39df3d392c"
    "6b3809add9405f97cfb9631f445e36c80656cfbf47eac67d97fa165865c13e1b"
)


def make_credentials(secret: str = "test_secret") -> ProviderCredentials:
    return ProviderCredentials(
        code="vnpay",
        values={
            "VNPAY_TMN_CODE": "TEST_TMN_CODE",
            "VNPAY_HASH_SECRET": secret,
            "VNPAY_PAY_URL": PAY_URL,
            "VNPAY_API_URL": API_URL,
        },
        emulated=False,
    )


@pytest.fixture
def provider() -> VnpayProvider:
    return VnpayProvider(make_credentials(), base_url="http://gateway.test", session=requests.Session())


def callback(args: dict[str, str]) -> CallbackRequest:
    return CallbackRequest(method="GET", args=args, headers={}, body=b"", remote_addr="203.0.113.10")


def signed(params: dict[str, str], secret: str = "test_secret") -> dict[str, str]:
    return dict(parse_qsl(signed_query(secret, params), keep_blank_values=True))


# ---- §7 published vectors -------------------------------------------------------------------------------


def test_vector_1_string_to_sign_and_hash() -> None:
    params = {**VECTOR_1_PARAMS, "vnp_SecureHash": "ignored", "vnp_SecureHashType": "HmacSHA512"}
    assert sign_string(params) == VECTOR_1_STRING
    assert hmac_hex("test_secret", VECTOR_1_STRING, "sha512") == VECTOR_1_HASH


def test_vector_1_drops_empty_values() -> None:
    assert sign_string({**VECTOR_1_PARAMS, "vnp_BankTranNo": "", "vnp_Extra": ""}) == VECTOR_1_STRING.replace(
        "&vnp_BankTranNo=VNP14422574", ""
    )


def test_vector_2_response_code_99() -> None:
    data = sign_string({**VECTOR_1_PARAMS, "vnp_ResponseCode": "99"})
    assert data == VECTOR_1_STRING.replace("vnp_ResponseCode=00", "vnp_ResponseCode=99")
    assert hmac_hex("test_secret", data, "sha512") == VECTOR_2_HASH


def test_vector_3_raw_hmac() -> None:
    data = "vnp_Amount=10000&vnp_OrderInfo=Payment+for+order+%231234567890&vnp_TnxRef=1234567890"
    params = {
        "vnp_TnxRef": "1234567890",
        "vnp_OrderInfo": "Payment for order #1234567890",
        "vnp_Amount": "10000",
    }
    assert sign_string(params) == data
    assert hmac_hex("YOUR_SECURE_SECRET", data, "sha512") == (
        "7bb8160a5d2085a85b3267817a40ee4f770a335282f19714726e6fc6f28a64c7"
        "5a1e7e9c1aa96f3cbda5ce44095088fb4cb2af66c596d2f655b0b53966312089"
    )


def test_vector_4_hmac_sha512_sanity() -> None:
    assert hmac_hex("secret", "data", "sha512") == (
        "6274071d33dec2728a2a1c903697fc1210b3252221c3d137e12d9f1ae5c8ed53"
        "e05e692b05a9eefff289667e2387c0fc0bd8a3d9bd7000782730c856a77a77d5"
    )


def test_cross_check_a_querydr_pipe_string() -> None:
    fields = {
        "vnp_RequestId": "REQUEST123456",
        "vnp_Version": "2.1.0",
        "vnp_Command": "querydr",
        "vnp_TmnCode": "TEST_TMN_CODE",
        "vnp_TxnRef": "TXN123456789",
        "vnp_OrderInfo": "Test order query",
        "vnp_TransactionNo": "not hashed",
        "vnp_TransactionDate": "20231221103000",
        "vnp_CreateDate": "20231221103000",
        "vnp_IpAddr": "127.0.0.1",
    }
    data = querydr_hash_data(fields)
    assert data == (
        "REQUEST123456|2.1.0|querydr|TEST_TMN_CODE|TXN123456789|20231221103000|20231221103000"
        "|127.0.0.1|Test order query"
    )
    assert hmac_hex("test_secret", data, "sha512") == (
        "ac23f7e0db3fc8bc6dc83350725b891aa921ec7a83d1a370978d314457eeda17"
        "6ff26a87bd4e13dc896c24890238b29fadf033080a07aa52abafa830cd2eb565"
    )


def test_cross_check_b_refund_pipe_string() -> None:
    fields = {
        "vnp_RequestId": "REFUND123456",
        "vnp_Version": "2.1.0",
        "vnp_Command": "refund",
        "vnp_TmnCode": "TEST_TMN_CODE",
        "vnp_TransactionType": "02",
        "vnp_TxnRef": "TXN123456789",
        "vnp_Amount": "1000000",
        "vnp_TransactionNo": "14422574",
        "vnp_TransactionDate": "20231221103000",
        "vnp_CreateBy": "merchant_user",
        "vnp_CreateDate": "20231221103000",
        "vnp_IpAddr": "127.0.0.1",
        "vnp_OrderInfo": "Test refund order",
    }
    data = refund_hash_data(fields)
    assert data == (
        "REFUND123456|2.1.0|refund|TEST_TMN_CODE|02|TXN123456789|1000000|14422574|20231221103000"
        "|merchant_user|20231221103000|127.0.0.1|Test refund order"
    )
    assert hmac_hex("test_secret", data, "sha512") == (
        "1b0d3f82bc64cda12af250a284e72895b965ad745fef5a5b4f2b0ab50142e008"
        "9598fd9fd28e73d1c4ede96932996c3b08b4e9ab8a02fa5e88ecc555afba9a33"
    )


def test_query_response_hash_data_uses_empty_strings_for_missing_fields() -> None:
    assert query_response_hash_data({"vnp_ResponseId": "R1", "vnp_ResponseCode": "91"}) == "R1||91" + "|" * 12


# ---- pure helpers -----------------------------------------------------------------------------------


def test_ascii_order_info_strips_diacritics_and_symbols() -> None:
    assert ascii_order_info("Lệ phí hồ sơ Đăng ký #12/ABC") == "Le phi ho so Dang ky 12ABC"
    assert ascii_order_info("  đường   Nguyễn\tTrãi: HS-01_x.y~z ") == "duong Nguyen Trai: HS-01_x.yz"
    assert len(ascii_order_info("a" * 300)) == 255


def test_vnp_dates_are_gmt7() -> None:
    instant = datetime(2024, 5, 21, 2, 18, 6, tzinfo=UTC)
    assert to_vnp_date(instant) == "20240521091806"
    assert from_vnp_date("20240521091806") == instant
    assert from_vnp_date("20240521091806").tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        to_vnp_date(datetime(2024, 5, 21))  # naive on purpose
    for bad in ("2024052109180", "2024-05-21", "20241321091806", "２０２４０５２１０９１８０６"):
        with pytest.raises(ValueError):  # noqa: PT011 - strptime's messages vary
            from_vnp_date(bad)


# ---- construction -----------------------------------------------------------------------------------


def test_emulator_defaults() -> None:
    creds = ProviderCredentials(code="vnpay", values={}, emulated=True)
    p = VnpayProvider(creds, base_url="http://127.0.0.1:8000/")
    assert p.tmn_code == EMULATOR_TMN_CODE
    assert p.secrets == (EMULATOR_HASH_SECRET,)
    assert p.pay_url == "http://127.0.0.1:8000/_emulator/vnpay/paymentv2/vpcpay.html"
    assert p.api_url == "http://127.0.0.1:8000/_emulator/vnpay/merchant_webapi/api/transaction"


@pytest.mark.parametrize("secret", ["", " , "])
def test_empty_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        VnpayProvider(make_credentials(secret), base_url="http://gateway.test")


def test_rotated_secret_signs_with_the_first() -> None:
    p = VnpayProvider(make_credentials("new_secret, test_secret"), base_url="http://gateway.test")
    assert p.secrets == ("new_secret", "test_secret")
    assert p.secret == "new_secret"


# ---- build_payment_request (§1.2) ----------------------------------------------------------------------


def payment_request(**changes: Any) -> PaymentRequest:
    created = datetime(2024, 5, 21, 2, 17, 31, tzinfo=UTC)
    values: dict[str, Any] = {
        "reference": "HS20240521001",
        "amount": 150_000,
        "order_info": "Lệ phí hồ sơ Đăng ký #12/ABC",
        "return_url": "https://gateway.test/return/vnpay?x=1",
        "notify_url": "https://gateway.test/callbacks/vnpay",
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": created,
        "expires_at": created + timedelta(minutes=15),
    }
    values.update(changes)
    return PaymentRequest(**values)


def test_build_payment_request(provider: VnpayProvider) -> None:
    redirect = provider.build_payment_request(payment_request())
    assert redirect.redirect_url is not None
    parts = urlsplit(redirect.redirect_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PAY_URL
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    # The query string is exactly the §1.3 string-to-sign plus the hash.
    data, _, given = parts.query.rpartition("&vnp_SecureHash=")
    assert data == sign_string(params)
    assert given == hmac_hex("test_secret", data, "sha512")
    assert params == {
        "vnp_Version": "2.1.0",
        "vnp_Command": "pay",
        "vnp_TmnCode": "TEST_TMN_CODE",
        "vnp_Amount": "15000000",
        "vnp_CreateDate": "20240521091731",
        "vnp_ExpireDate": "20240521093231",
        "vnp_CurrCode": "VND",
        "vnp_IpAddr": "203.0.113.10",
        "vnp_Locale": "vn",
        "vnp_OrderInfo": "Le phi ho so Dang ky 12ABC",
        "vnp_OrderType": "billpayment",
        "vnp_ReturnUrl": "https://gateway.test/return/vnpay?x=1",
        "vnp_TxnRef": "HS20240521001",
        "vnp_SecureHash": given,
    }
    assert redirect.provider_data == {"vnp_CreateDate": "20240521091731", "vnp_TxnRef": "HS20240521001"}


def test_build_payment_request_bank_code_and_locale(provider: VnpayProvider) -> None:
    url = provider.build_payment_request(payment_request(bank_code="VNPAYQR", locale="en")).redirect_url
    assert url is not None
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["vnp_BankCode"] == "VNPAYQR"
    assert params["vnp_Locale"] == "en"


@pytest.mark.parametrize("amount", [0, -100, True])
def test_build_payment_request_refuses_bad_amounts(provider: VnpayProvider, amount: int) -> None:
    with pytest.raises(ValueError, match="amount"):
        provider.build_payment_request(payment_request(amount=amount))


# ---- verify_callback / verify_return (§1.3-§1.6) ---------------------------------------------------------


def vector_1_ipn() -> dict[str, str]:
    return {**VECTOR_1_PARAMS, "vnp_SecureHash": VECTOR_1_HASH}


def test_verify_callback_accepts_vector_1(provider: VnpayProvider) -> None:
    args = {**vector_1_ipn(), "lang": "vi"}  # non-vnp_ keys are ignored (§1.3)
    n = provider.verify_callback(callback(args))
    assert n.reference == "1716257871703"
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 10_000
    assert n.provider_txn_id == "14422574"
    assert n.result_code == "00"
    assert n.paid_at == datetime(2024, 5, 21, 2, 18, 6, tzinfo=UTC)
    assert n.raw == vector_1_ipn()
    assert provider.verify_return(callback(args)) == n


def test_verify_callback_accepts_the_old_key_during_rotation() -> None:
    p = VnpayProvider(make_credentials("new_secret,test_secret"), base_url="http://gateway.test")
    assert p.verify_callback(callback(vector_1_ipn())).outcome is Outcome.SUCCEEDED


def test_verify_callback_rejects_a_wrong_key() -> None:
    p = VnpayProvider(make_credentials("another_secret"), base_url="http://gateway.test")
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(callback(vector_1_ipn()))


@pytest.mark.parametrize("given", [None, "", "00"])
def test_verify_callback_rejects_missing_or_junk_hash(provider: VnpayProvider, given: str | None) -> None:
    args = dict(VECTOR_1_PARAMS)
    if given is not None:
        args["vnp_SecureHash"] = given
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(args))


@pytest.mark.parametrize("field", sorted(VECTOR_1_PARAMS))
def test_verify_callback_rejects_each_tampered_field(provider: VnpayProvider, field: str) -> None:
    args = vector_1_ipn()
    args[field] = args[field] + "1"
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(args))


@pytest.mark.parametrize("field", sorted(VECTOR_1_PARAMS))
def test_verify_callback_rejects_each_removed_field(provider: VnpayProvider, field: str) -> None:
    args = vector_1_ipn()
    del args[field]
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(args))


def test_verify_callback_rejects_an_added_vnp_field(provider: VnpayProvider) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback({**vector_1_ipn(), "vnp_Extra": "x"}))


@pytest.mark.parametrize(
    ("response_code", "status", "outcome"),
    [
        ("00", "00", Outcome.SUCCEEDED),
        ("24", "02", Outcome.FAILED),
        ("51", "02", Outcome.FAILED),
        ("11", "02", Outcome.FAILED),
        ("99", "02", Outcome.FAILED),
        ("07", "00", Outcome.UNKNOWN),  # debited but suspected: never FAILED
        ("00", "01", Outcome.UNKNOWN),
        ("00", "", Outcome.UNKNOWN),
        ("42", "02", Outcome.UNKNOWN),
    ],
)
def test_outcome_mapping(provider: VnpayProvider, response_code: str, status: str, outcome: Outcome) -> None:
    args = signed({**VECTOR_1_PARAMS, "vnp_ResponseCode": response_code, "vnp_TransactionStatus": status})
    n = provider.verify_callback(callback(args))
    assert n.outcome is outcome
    assert n.result_code == response_code


def test_cancel_has_no_provider_txn_id(provider: VnpayProvider) -> None:
    args = signed({**VECTOR_1_PARAMS, "vnp_ResponseCode": "24", "vnp_TransactionNo": "0", "vnp_PayDate": "x"})
    n = provider.verify_callback(callback(args))
    assert n.provider_txn_id is None
    assert n.paid_at is None
    assert n.dedupe_key == "1716257871703:-:payment"


@pytest.mark.parametrize("amount", ["1000050", "-100", "1e6", "10.00", "", "１００"])
def test_signed_but_bad_amount_is_malformed(provider: VnpayProvider, amount: str) -> None:
    args = signed({**VECTOR_1_PARAMS, "vnp_Amount": amount})
    with pytest.raises(MalformedNotification):
        provider.verify_callback(callback(args))


@pytest.mark.parametrize("field", ["vnp_TxnRef", "vnp_Amount", "vnp_ResponseCode"])
def test_signed_but_missing_field_is_malformed(provider: VnpayProvider, field: str) -> None:
    params = dict(VECTOR_1_PARAMS)
    del params[field]
    with pytest.raises(MalformedNotification):
        provider.verify_callback(callback(signed(params)))


def test_signature_is_checked_before_parsing(provider: VnpayProvider) -> None:
    # A garbage amount under a wrong signature is a signature error, not a parse error.
    args = {**vector_1_ipn(), "vnp_Amount": "garbage"}
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(args))


# ---- acknowledge (§1.5) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "body"),
    [
        (Ack.OK, b'{"RspCode":"00","Message":"Confirm Success"}'),
        (Ack.NOT_FOUND, b'{"RspCode":"01","Message":"Order not found"}'),
        (Ack.ALREADY, b'{"RspCode":"02","Message":"Order already confirmed"}'),
        (Ack.BAD_AMOUNT, b'{"RspCode":"04","Message":"Invalid amount"}'),
        (Ack.BAD_SIGNATURE, b'{"RspCode":"97","Message":"Invalid signature"}'),
        (Ack.ERROR, b'{"RspCode":"99","Message":"Unknown error"}'),
    ],
)
def test_acknowledge(provider: VnpayProvider, ack: Ack, body: bytes) -> None:
    answer = provider.acknowledge(ack)
    assert answer.status == 200
    assert answer.body == body
    assert answer.content_type == "application/json"


# ---- query (§1.8) ---------------------------------------------------------------------------------------


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def query_request() -> QueryRequest:
    return QueryRequest(
        reference="HS20240521001",
        amount=150_000,
        created_at=datetime(2024, 5, 21, 2, 17, 31, tzinfo=UTC),
        order_info="Lệ phí hồ sơ",
        provider_data={"vnp_CreateDate": "20240521091731", "vnp_TxnRef": "HS20240521001"},
    )


def query_answer(secret: str = "test_secret", **changes: str) -> dict[str, str]:
    body = {
        "vnp_ResponseId": "4f1c0b2a",
        "vnp_Command": "querydr",
        "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success",
        "vnp_TmnCode": "TEST_TMN_CODE",
        "vnp_TxnRef": "HS20240521001",
        "vnp_Amount": "15000000",
        "vnp_BankCode": "NCB",
        "vnp_PayDate": "20240521092000",
        "vnp_TransactionNo": "14422574",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "00",
        "vnp_OrderInfo": "Le phi ho so",
        "vnp_PromotionCode": "",
        "vnp_PromotionAmount": "",
    }
    body.update(changes)
    body["vnp_SecureHash"] = hmac_hex(secret, query_response_hash_data(body), "sha512")
    return body


def test_query_succeeded_and_request_is_signed(
    provider: VnpayProvider, mocked: responses.RequestsMock
) -> None:
    mocked.post(API_URL, json=query_answer())
    n = provider.query(query_request())
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 150_000
    assert n.provider_txn_id == "14422574"
    assert n.result_code == "00"
    assert n.paid_at == datetime(2024, 5, 21, 2, 20, tzinfo=UTC)

    sent = json.loads(mocked.calls[0].request.body or b"")
    assert sent["vnp_Command"] == "querydr"
    assert sent["vnp_Version"] == "2.1.0"
    assert sent["vnp_TmnCode"] == "TEST_TMN_CODE"
    assert sent["vnp_TxnRef"] == "HS20240521001"
    assert sent["vnp_TransactionDate"] == "20240521091731"
    assert sent["vnp_OrderInfo"] == "Le phi ho so"
    assert sent["vnp_RequestId"].isalnum()
    assert len(sent["vnp_RequestId"]) <= 32
    assert sent["vnp_SecureHash"] == hmac_hex("test_secret", querydr_hash_data(sent), "sha512")


def test_query_transaction_date_falls_back_to_created_at(
    provider: VnpayProvider, mocked: responses.RequestsMock
) -> None:
    mocked.post(API_URL, json=query_answer())
    req = query_request()
    provider.query(QueryRequest(req.reference, req.amount, req.created_at, req.order_info))
    assert json.loads(mocked.calls[0].request.body or b"")["vnp_TransactionDate"] == "20240521091731"


def test_query_accepts_an_answer_signed_with_the_old_key(mocked: responses.RequestsMock) -> None:
    p = VnpayProvider(make_credentials("new_secret,test_secret"), base_url="http://gateway.test")
    mocked.post(API_URL, json=query_answer("test_secret"))
    assert p.query(query_request()).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("changes", "outcome", "result_code"),
    [
        ({"vnp_TransactionStatus": "01", "vnp_TransactionNo": "0", "vnp_PayDate": ""}, Outcome.PENDING, "01"),
        ({"vnp_TransactionStatus": "02"}, Outcome.FAILED, "02"),
        ({"vnp_TransactionStatus": "04"}, Outcome.UNKNOWN, "04"),
        ({"vnp_ResponseCode": "91", "vnp_Amount": ""}, Outcome.UNKNOWN, "91"),
        ({"vnp_ResponseCode": "97"}, Outcome.UNKNOWN, "97"),
        ({"vnp_TxnRef": "SOMEONE_ELSE"}, Outcome.UNKNOWN, "garbage"),
        ({"vnp_Amount": "15000050"}, Outcome.UNKNOWN, "garbage"),
    ],
)
def test_query_state_mapping(
    provider: VnpayProvider,
    mocked: responses.RequestsMock,
    changes: dict[str, str],
    outcome: Outcome,
    result_code: str,
) -> None:
    mocked.post(API_URL, json=query_answer(**changes))
    n = provider.query(query_request())
    assert n.outcome is outcome
    assert n.result_code == result_code


def test_query_503_is_unknown(provider: VnpayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(API_URL, status=503, body="Service Unavailable")
    n = provider.query(query_request())
    assert n.outcome is Outcome.UNKNOWN
    assert n.result_code == "http_503"


@pytest.mark.parametrize("body", ["<html>oops", "[1, 2]", ""])
def test_query_garbage_is_unknown(provider: VnpayProvider, mocked: responses.RequestsMock, body: str) -> None:
    mocked.post(API_URL, status=200, body=body)
    n = provider.query(query_request())
    assert n.outcome is Outcome.UNKNOWN
    assert n.result_code == "garbage"


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_query_unreachable_is_unknown(
    provider: VnpayProvider, mocked: responses.RequestsMock, error: Exception
) -> None:
    mocked.post(API_URL, body=error)
    n = provider.query(query_request())
    assert n.outcome is Outcome.UNKNOWN
    assert n.result_code == "unreachable"


@pytest.mark.parametrize("tamper", ["wrong_key", "edited", "unsigned"])
def test_query_bad_signature_is_unknown(
    provider: VnpayProvider, mocked: responses.RequestsMock, tamper: str
) -> None:
    answer = query_answer("wrong_key") if tamper == "wrong_key" else query_answer()
    if tamper == "edited":
        answer["vnp_Amount"] = "100"
    if tamper == "unsigned":
        del answer["vnp_SecureHash"]
    mocked.post(API_URL, json=answer)
    n = provider.query(query_request())
    assert n.outcome is Outcome.UNKNOWN
    assert n.result_code == "bad_signature"

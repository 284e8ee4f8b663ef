"""The VNPAY emulator against the real adapter: pay page, IPN, return redirect, querydr (providers.md §1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import flask
import pytest
import requests
import responses
from flask.testing import FlaskClient

from gateway.settings import ProviderCredentials
from providers.base import CallbackRequest, Notification, Outcome, PaymentRequest, QueryRequest
from providers.emulators import vnpay as emulator
from providers.emulators.vnpay import VnpayEmulatorBlueprint, build_ipn_query, create_blueprint, format_vnd
from providers.signing import hmac_hex
from providers.vnpay import (
    EMULATOR_HASH_SECRET,
    EMULATOR_TMN_CODE,
    VnpayProvider,
    query_response_hash_data,
    querydr_hash_data,
    refund_response_hash_data,
    signed_query,
    to_vnp_date,
)

BASE_URL = "http://gateway.test"
IPN_URL = "http://gateway.test/callbacks/vnpay"
RETURN_URL = "http://gateway.test/return/vnpay?lang=vi"
IPN_OK = '{"RspCode":"00","Message":"Confirm Success"}'


@dataclass
class Env:
    app: flask.Flask
    provider: VnpayProvider
    blueprint: VnpayEmulatorBlueprint
    client: FlaskClient
    mock: responses.RequestsMock

    def ipn_calls(self) -> list[dict[str, str]]:
        return [
            dict(parse_qsl(urlsplit(c.request.url or "").query, keep_blank_values=True))
            for c in self.mock.calls
            if (c.request.url or "").startswith(IPN_URL)
        ]


@pytest.fixture
def env() -> Iterator[Env]:
    provider = VnpayProvider(
        ProviderCredentials(code="vnpay", values={}, emulated=True),
        base_url=BASE_URL,
        session=requests.Session(),
    )
    blueprint = create_blueprint(provider, ipn_url=IPN_URL, http=requests.Session())
    app = flask.Flask(__name__)
    app.register_blueprint(blueprint, url_prefix="/_emulator/vnpay")
    client = app.test_client()

    def forward(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        # provider.query() speaks HTTP through requests; hand its call to the emulator in-process.
        resp = client.post(
            urlsplit(request.url or "").path, data=request.body, content_type="application/json"
        )
        return resp.status_code, {"Content-Type": resp.content_type or ""}, resp.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(IPN_URL, body=IPN_OK, content_type="application/json")
        mock.add_callback(responses.POST, provider.api_url, callback=forward)
        yield Env(app, provider, blueprint, client, mock)


def payment_request(reference: str = "HS20240521001", amount: int = 150_000) -> PaymentRequest:
    now = datetime.now(UTC)
    return PaymentRequest(
        reference=reference,
        amount=amount,
        order_info="Lệ phí hồ sơ Đăng ký #12/ABC",
        return_url=RETURN_URL,
        notify_url=IPN_URL,
        client_ip="203.0.113.10",
        locale="vi",
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )


def pay_path(env: Env, **changes: str) -> str:
    """The path+query the browser opens; ``changes`` are applied after signing (tampering)."""
    url = env.provider.build_payment_request(payment_request()).redirect_url
    assert url is not None
    parts = urlsplit(url)
    assert parts.path == "/_emulator/vnpay/paymentv2/vpcpay.html"
    query = parts.query
    for key, value in changes.items():
        params = dict(parse_qsl(query))
        params[key] = value
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{parts.path}?{query}"


def resign(env: Env, **changes: str) -> str:
    """A pay path re-signed with the emulator secret after ``changes`` (tests checks behind the signature)."""
    url = env.provider.build_payment_request(payment_request()).redirect_url
    assert url is not None
    parts = urlsplit(url)
    params = {k: v for k, v in parse_qsl(parts.query) if k != "vnp_SecureHash"}
    params.update(changes)
    return f"{parts.path}?{signed_query(EMULATOR_HASH_SECRET, params)}"


def checkout_and_pay(env: Env, outcome: str) -> Any:
    path = pay_path(env)
    page = env.client.get(path)
    assert page.status_code == 200
    return env.client.post(
        "/_emulator/vnpay/paymentv2/pay", data={"query": urlsplit(path).query, "outcome": outcome}
    )


def verify(env: Env, args: dict[str, str]) -> Notification:
    return env.provider.verify_callback(CallbackRequest(method="GET", args=args, headers={}, body=b""))


def query(env: Env, reference: str = "HS20240521001") -> Notification:
    return env.provider.query(
        QueryRequest(
            reference=reference,
            amount=150_000,
            created_at=datetime.now(UTC),
            order_info="Le phi ho so",
            provider_data={"vnp_CreateDate": to_vnp_date(datetime.now(UTC))},
        )
    )


# ---- pay page -----------------------------------------------------------------------------------------


def test_checkout_page_shows_the_order(env: Env) -> None:
    page = env.client.get(pay_path(env))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "150.000 VND" in html
    assert "HS20240521001" in html
    assert "Le phi ho so Dang ky 12ABC" in html
    assert 'action="/_emulator/vnpay/paymentv2/pay"' in html
    for label in ("Thanh toán thành công", "Thất bại — không đủ số dư", "Hủy giao dịch"):
        assert label in html
    assert "<script" not in html


def test_format_vnd() -> None:
    assert format_vnd(0) == "0"
    assert format_vnd(1_234_567) == "1.234.567"


@pytest.mark.parametrize(
    "changes",
    [{"vnp_Amount": "20000000"}, {"vnp_TxnRef": "OTHER"}, {"vnp_SecureHash": "00"}, {"vnp_SecureHash": ""}],
)
def test_tampered_pay_url_shows_invalid_signature(env: Env, changes: dict[str, str]) -> None:
    page = env.client.get(pay_path(env, **changes))
    assert page.status_code == 400
    assert "Sai chữ ký / Invalid signature" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vnp_TmnCode": "OTHER001"}, "Unknown terminal"),
        ({"vnp_Amount": "1000050"}, "Invalid amount"),
        ({"vnp_Amount": "0"}, "Invalid amount"),
        ({"vnp_Command": "querydr"}, "Invalid request"),
    ],
)
def test_signed_but_invalid_pay_request_is_refused(env: Env, changes: dict[str, str], message: str) -> None:
    page = env.client.get(resign(env, **changes))
    assert page.status_code == 400
    assert message in page.get_data(as_text=True)


def test_checkout_page_escapes_untrusted_values(env: Env) -> None:
    page = env.client.get(resign(env, vnp_OrderInfo='<script>alert("x")</script>'))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


# ---- pay → IPN + return --------------------------------------------------------------------------------


def test_success_sends_a_verifiable_ipn_and_redirects(env: Env) -> None:
    resp = checkout_and_pay(env, "success")
    [ipn] = env.ipn_calls()
    n = verify(env, ipn)
    assert n.outcome is Outcome.SUCCEEDED
    assert n.reference == "HS20240521001"
    assert n.amount == 150_000
    assert n.result_code == "00"
    assert n.provider_txn_id is not None
    assert len(n.provider_txn_id) == 8
    assert n.paid_at is not None
    assert ipn["vnp_TmnCode"] == EMULATOR_TMN_CODE
    assert ipn["vnp_BankCode"] == "NCB"
    assert ipn["vnp_BankTranNo"].startswith("VNP")
    assert ipn["vnp_CardType"] == "ATM"
    assert ipn["vnp_TransactionStatus"] == "00"

    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(RETURN_URL + "&")  # the return URL already had a query
    returned = dict(parse_qsl(urlsplit(location).query))
    assert returned.pop("lang") == "vi"
    assert returned == ipn
    assert env.provider.verify_return(CallbackRequest("GET", returned, {}, b"")) == n


@pytest.mark.parametrize(
    ("outcome", "code", "txn_id"),
    [("failure", "51", True), ("cancel", "24", False)],
)
def test_failure_and_cancel_are_failed(env: Env, outcome: str, code: str, txn_id: bool) -> None:
    resp = checkout_and_pay(env, outcome)
    assert resp.status_code == 302
    [ipn] = env.ipn_calls()
    n = verify(env, ipn)
    assert n.outcome is Outcome.FAILED
    assert n.result_code == code
    assert ipn["vnp_TransactionStatus"] == "02"
    assert (n.provider_txn_id is not None) is txn_id


def test_a_finished_transaction_cannot_be_paid_again(env: Env) -> None:
    checkout_and_pay(env, "success")
    path = pay_path(env)
    assert env.client.get(path).status_code == 400
    again = env.client.post(
        "/_emulator/vnpay/paymentv2/pay", data={"query": urlsplit(path).query, "outcome": "success"}
    )
    assert again.status_code == 400
    assert len(env.ipn_calls()) == 1


def test_tampered_hidden_query_is_refused(env: Env) -> None:
    query_string = urlsplit(pay_path(env, vnp_Amount="100")).query
    resp = env.client.post(
        "/_emulator/vnpay/paymentv2/pay", data={"query": query_string, "outcome": "success"}
    )
    assert resp.status_code == 400
    assert "Sai chữ ký" in resp.get_data(as_text=True)
    assert env.ipn_calls() == []


def test_unknown_outcome_is_refused(env: Env) -> None:
    resp = checkout_and_pay(env, "maybe")
    assert resp.status_code == 400
    assert env.ipn_calls() == []


def test_unreachable_ipn_url_still_redirects(env: Env) -> None:
    env.mock.replace(responses.GET, IPN_URL, body=requests.ConnectionError("refused"))
    resp = checkout_and_pay(env, "success")
    assert resp.status_code == 302
    # The signed IPN is kept so that a test can replay it (VNPAY would retry).
    assert verify(env, dict(parse_qsl(env.blueprint.transactions["HS20240521001"].ipn_query))).outcome is (
        Outcome.SUCCEEDED
    )


def test_forged_ipn_with_build_ipn_query_verifies(env: Env) -> None:
    args = dict(
        parse_qsl(
            build_ipn_query(
                EMULATOR_HASH_SECRET,
                {
                    "vnp_TxnRef": "R1",
                    "vnp_Amount": "500000",
                    "vnp_ResponseCode": "00",
                    "vnp_TransactionStatus": "00",
                },
            )
        )
    )
    n = verify(env, args)
    assert (n.reference, n.amount, n.outcome) == ("R1", 5000, Outcome.SUCCEEDED)


# ---- querydr --------------------------------------------------------------------------------------------


def test_querydr_after_payment_is_succeeded(env: Env) -> None:
    checkout_and_pay(env, "success")
    [ipn] = env.ipn_calls()
    n = query(env)
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 150_000
    assert n.provider_txn_id == ipn["vnp_TransactionNo"]
    assert n.raw["vnp_TransactionType"] == "01"


def test_querydr_states(env: Env) -> None:
    assert query(env).result_code == "91"  # never opened: VNPAY does not know it
    assert query(env).outcome is Outcome.UNKNOWN
    env.client.get(pay_path(env))
    assert query(env).outcome is Outcome.PENDING  # page opened, no button pressed
    checkout_and_pay(env, "failure")
    assert query(env).outcome is Outcome.FAILED


def test_querydr_answer_is_signed_in_the_response_order(env: Env) -> None:
    checkout_and_pay(env, "success")
    body = {
        "vnp_RequestId": "REQ1",
        "vnp_Version": "2.1.0",
        "vnp_Command": "querydr",
        "vnp_TmnCode": EMULATOR_TMN_CODE,
        "vnp_TxnRef": "HS20240521001",
        "vnp_TransactionDate": "20240521091731",
        "vnp_CreateDate": "20240521091731",
        "vnp_IpAddr": "127.0.0.1",
        "vnp_OrderInfo": "x",
    }
    body["vnp_SecureHash"] = hmac_hex(EMULATOR_HASH_SECRET, querydr_hash_data(body), "sha512")
    answer = env.client.post("/_emulator/vnpay/merchant_webapi/api/transaction", json=body).get_json()
    assert answer["vnp_ResponseCode"] == "00"
    assert answer["vnp_Amount"] == "15000000"
    assert answer["vnp_SecureHash"] == hmac_hex(
        EMULATOR_HASH_SECRET, query_response_hash_data(answer), "sha512"
    )

    body["vnp_SecureHash"] = "0" * 128
    bad = env.client.post("/_emulator/vnpay/merchant_webapi/api/transaction", json=body).get_json()
    assert bad["vnp_ResponseCode"] == "97"

    refund = {**body, "vnp_Command": "refund"}
    answer = env.client.post("/_emulator/vnpay/merchant_webapi/api/transaction", json=refund).get_json()
    assert answer["vnp_ResponseCode"] == "97"  # unsigned refund: checksum first
    assert answer["vnp_SecureHash"] == hmac_hex(
        EMULATOR_HASH_SECRET, refund_response_hash_data(answer), "sha512"
    )


def test_querydr_of_another_terminal_is_refused(env: Env) -> None:
    other = VnpayProvider(
        ProviderCredentials(
            code="vnpay",
            values={
                "VNPAY_TMN_CODE": "OTHER001",
                "VNPAY_HASH_SECRET": EMULATOR_HASH_SECRET,
                "VNPAY_PAY_URL": env.provider.pay_url,
                "VNPAY_API_URL": env.provider.api_url,
            },
            emulated=False,
        ),
        base_url=BASE_URL,
    )
    n = other.query(QueryRequest("HS20240521001", 150_000, datetime.now(UTC), "x"))
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "02")


@pytest.mark.parametrize(
    ("faults", "result_code"),
    [({"status": 503}, "http_503"), ({"garbage": True}, "garbage")],
)
def test_api_faults_make_query_unknown(env: Env, faults: dict[str, Any], result_code: str) -> None:
    checkout_and_pay(env, "success")
    env.blueprint.faults.update(faults)
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, result_code)
    env.blueprint.faults.clear()
    assert query(env).outcome is Outcome.SUCCEEDED


def test_slow_fault_sleeps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(emulator.time, "sleep", slept.append)
    env.blueprint.faults["slow"] = 2.5
    query(env)
    assert slept == [2.5]


def test_blueprint_is_reachable_by_name(env: Env) -> None:
    # Fault switches are reached through the app once the factory has mounted the emulator.
    assert env.app.blueprints["emulator_vnpay"] is env.blueprint

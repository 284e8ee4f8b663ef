"""The emulated RSA-signing bank against the real adapter (docs/rsabank.md, contract §10): signed create,
payment page, notification, return redirect, query, refunds, fault switches and the NotificationForge."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import flask
import pytest
import requests
import responses
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway.domain.errors import GatewayError, ProviderUnavailable, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.base import (
    CallbackRequest,
    Notification,
    Outcome,
    PaymentRedirect,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
)
from providers.emulators import rsabank as emulator
from providers.emulators.rsabank import (
    EMULATOR_ACCOUNT_NO,
    Forge,
    RsabankEmulatorBlueprint,
    create_blueprint,
)
from providers.rsa_signing import Scheme, generate_private_key_pem, public_key_pem, sign, verify
from providers.rsabank import RsabankProvider, cached_private_key, return_message

BASE_URL = "http://gateway.test"
NOTIFY_URL = "http://gateway.test/callbacks/rsabank"
IPN_URL = "http://ipn.test/callbacks/rsabank"  # the fallback when a create request names no notify_url
RETURN_URL = "http://gateway.test/return/rsabank"
ACK_OK = '{"code":"00","message":"received"}'
PREFIX = "/_emulator/rsabank"


@dataclass
class Env:
    app: flask.Flask
    provider: RsabankProvider
    blueprint: RsabankEmulatorBlueprint
    client: FlaskClient
    mock: responses.RequestsMock

    def notifications(self, url: str = NOTIFY_URL) -> list[CallbackRequest]:
        """The notifications the bank POSTed, as the gateway's callback view would see them."""
        return [
            CallbackRequest(
                method="POST", args={}, headers=dict(c.request.headers), body=_bytes(c.request.body)
            )
            for c in self.mock.calls
            if c.request.url == url
        ]

    def api(self, path: str, payload: Any, **header_changes: str) -> TestResponse:
        """POST a request signed with the gateway's key straight to the emulator."""
        body, headers = self.provider.signed_request(payload)
        headers.update(header_changes)
        headers = {k: v for k, v in headers.items() if v}
        return self.client.post(PREFIX + path, data=body, headers=headers, base_url=BASE_URL)


def _bytes(body: bytes | str | None) -> bytes:
    return body.encode() if isinstance(body, str) else body or b""


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One instance folder for the module: the emulator's key pairs are generated once and reused.
    return str(tmp_path_factory.mktemp("instance"))


def emulated_provider(instance: str, **values: str) -> RsabankProvider:
    creds = ProviderCredentials(code="rsabank", values=values, emulated=True, instance_path=instance)
    return RsabankProvider(creds, base_url=BASE_URL, session=requests.Session())


def mount(provider: RsabankProvider) -> Iterator[Env]:
    blueprint = create_blueprint(provider, ipn_url=IPN_URL, http=requests.Session())
    app = flask.Flask(__name__)
    app.register_blueprint(blueprint, url_prefix=PREFIX)
    client = app.test_client()

    def forward(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        # The adapter speaks HTTP through requests; hand its call to the emulator in-process.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"content-length", "host"}}
        resp = client.post(
            urlsplit(request.url or "").path, data=request.body, headers=headers, base_url=BASE_URL
        )
        return resp.status_code, dict(resp.headers), resp.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(NOTIFY_URL, body=ACK_OK, content_type="application/json")
        mock.post(IPN_URL, body=ACK_OK, content_type="application/json")
        mock.add_callback(responses.POST, re.compile(re.escape(provider.endpoint) + "/.*"), callback=forward)
        yield Env(app, provider, blueprint, client, mock)


@pytest.fixture
def env(instance: str) -> Iterator[Env]:
    yield from mount(emulated_provider(instance))


def payment_request(
    reference: str = "GW261125ABC123", amount: int = 58_000, **changes: Any
) -> PaymentRequest:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "reference": reference,
        "amount": amount,
        "order_info": "Thanh toán hồ sơ H12.22-241125-0001",
        "return_url": RETURN_URL,
        "notify_url": NOTIFY_URL,
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "method": "card",
    }
    values.update(changes)
    return PaymentRequest(**values)


def create(
    env: Env, reference: str = "GW261125ABC123", amount: int = 58_000, **changes: Any
) -> PaymentRedirect:
    return env.provider.build_payment_request(payment_request(reference, amount, **changes))


def pay(env: Env, outcome: str, redirect: PaymentRedirect | None = None) -> TestResponse:
    redirect = redirect or create(env)
    assert redirect.redirect_url is not None
    path = urlsplit(redirect.redirect_url).path
    assert env.client.get(path).status_code == 200
    return env.client.post(path, data={"outcome": outcome})


def returned(resp: TestResponse) -> CallbackRequest:
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(RETURN_URL + "?")
    return CallbackRequest(method="GET", args=dict(parse_qsl(urlsplit(location).query)), headers={}, body=b"")


def query(env: Env, reference: str = "GW261125ABC123") -> Notification:
    return env.provider.query(QueryRequest(reference, 58_000, datetime.now(UTC), "Thanh toan ho so"))


def refund_request(
    reference: str, amount: int, payment_reference: str = "GW261125ABC123", **changes: Any
) -> RefundRequest:
    values: dict[str, Any] = {
        "reference": reference,
        "payment_reference": payment_reference,
        "payment_txn_id": None,
        "amount": amount,
        "payment_amount": 58_000,
        "already_refunded": 0,
        "reason": "Hoàn phí",
        "actor": "finance@example.vn",
        "created_at": datetime.now(UTC),
        "payment_created_at": datetime.now(UTC),
    }
    values.update(changes)
    return RefundRequest(**values)


# ---- create ---------------------------------------------------------------------------------------------


def test_create_answers_a_signed_payment_url(env: Env) -> None:
    redirect = create(env)
    assert redirect.redirect_url is not None
    bank_reference = redirect.provider_data["bank_reference"]
    assert re.fullmatch(r"BR[0-9]{12}", bank_reference)
    assert redirect.redirect_url == f"{BASE_URL}{PREFIX}/pay/{bank_reference}"
    payment = env.blueprint.payments[bank_reference]
    assert (payment.merchant_reference, payment.amount, payment.status) == (
        "GW261125ABC123",
        58_000,
        "pending",
    )
    assert payment.description == "Thanh toan ho so H12.22-241125-0001"
    assert payment.notify_url == NOTIFY_URL
    assert payment.expires_at.endswith("+07:00")


def test_a_retried_create_gets_the_same_page(env: Env) -> None:
    assert create(env).provider_data == create(env).provider_data
    assert len(env.blueprint.payments) == 1


def test_a_used_reference_is_refused(env: Env) -> None:
    pay(env, "success")
    with pytest.raises(GatewayError, match="duplicate_reference") as info:
        create(env)
    assert not isinstance(info.value, ProviderUnavailable)
    create(env, "GW261125ABC124")
    with pytest.raises(GatewayError, match="duplicate_reference"):
        create(env, "GW261125ABC124", amount=1)  # same reference, another amount


def test_our_bad_signature_is_refused_with_a_signed_error(env: Env, tmp_path: Path) -> None:
    resp = env.api(
        "/payments",
        {"merchant_reference": "X"},
        **{"X-Signature": sign(cached_private_key(generate_private_key_pem()), b"x")},
    )
    assert resp.status_code == 401
    assert resp.get_json()["code"] == "invalid_signature"
    verify(env.provider.bank_keys, resp.get_data(), resp.headers["X-Signature"])  # signed by the bank

    # An adapter holding another private key gets the bank's definite refusal.
    bank_pub = tmp_path / "bank.pub.pem"
    assert env.provider.emulator_bank_private_pem is not None
    bank_pub.write_bytes(public_key_pem(env.provider.emulator_bank_private_pem))
    ours = tmp_path / "ours.pem"
    ours.write_bytes(generate_private_key_pem())
    stranger = RsabankProvider(
        ProviderCredentials(
            code="rsabank",
            values={
                "RSABANK_ENDPOINT": env.provider.endpoint,
                "RSABANK_PUBLIC_KEYS": str(bank_pub),
                "RSABANK_PRIVATE_KEY": str(ours),
            },
            emulated=False,
        ),
        base_url=BASE_URL,
    )
    with pytest.raises(GatewayError, match="invalid_signature") as info:
        stranger.build_payment_request(payment_request())
    assert not isinstance(info.value, ProviderUnavailable)
    assert env.blueprint.payments == {}


def test_a_tampered_request_body_is_refused(env: Env) -> None:
    body, headers = env.provider.signed_request({"merchant_reference": "GW1", "amount": 100})
    resp = env.client.post(PREFIX + "/payments", data=body.replace(b"100", b"101"), headers=headers)
    assert (resp.status_code, resp.get_json()["code"]) == (401, "invalid_signature")


def test_a_request_id_is_required(env: Env) -> None:
    resp = env.api("/payments/query", {"merchant_reference": "GW1"}, **{"X-Request-Id": ""})
    assert (resp.status_code, resp.get_json()["code"]) == (400, "invalid_request")


VALID_CREATE = {
    "merchant_reference": "GW261125ABC123",
    "amount": 58000,
    "currency": "VND",
    "description": "Thanh toan",
    "return_url": RETURN_URL,
    "notify_url": NOTIFY_URL,
    "expires_at": "2026-11-25T11:00:00+07:00",
    "method": None,
}


@pytest.mark.parametrize(
    "changes",
    [
        {"merchant_reference": ""},
        {"merchant_reference": "X" * 65},
        {"amount": 58000.0},
        {"amount": "58000"},
        {"amount": 0},
        {"amount": True},
        {"currency": "USD"},
        {"return_url": "/return"},
        {"notify_url": "javascript:alert(1)"},
        {"method": "VNPAYQR"},
        {"description": 7},
        {"expires_at": "2026-11-25T11:00:00"},
        {"expires_at": "tomorrow"},
    ],
)
def test_invalid_create_requests_are_refused(env: Env, changes: dict[str, Any]) -> None:
    resp = env.api("/payments", {**VALID_CREATE, **changes})
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "invalid_request"
    verify(env.provider.bank_keys, resp.get_data(), resp.headers["X-Signature"])
    assert env.blueprint.payments == {}


def test_a_signed_non_object_body_is_refused(env: Env) -> None:
    resp = env.api("/payments", [1, 2])
    assert (resp.status_code, resp.get_json()["code"]) == (400, "invalid_request")


# ---- the payment page -----------------------------------------------------------------------------------


def test_page_shows_the_payment(env: Env) -> None:
    redirect = create(env)
    assert redirect.redirect_url is not None
    page = env.client.get(urlsplit(redirect.redirect_url).path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "58.000 VND" in html
    assert "GW261125ABC123" in html
    assert redirect.provider_data["bank_reference"] in html
    assert "Thanh toan ho so H12.22-241125-0001" in html
    assert "Thẻ ngân hàng" in html
    assert "Ngân hàng liên kết" in html
    for label in ("Thanh toán thành công", "Thanh toán thất bại", "Hủy giao dịch"):
        assert label in html
    assert f'action="{PREFIX}/pay/{redirect.provider_data["bank_reference"]}"' in html
    assert 'name="viewport"' in html
    assert "<script" not in html
    assert "<link" not in html
    assert "src=" not in html  # no external assets


def test_page_escapes_untrusted_values(env: Env) -> None:
    resp = env.api("/payments", {**VALID_CREATE, "description": '<script>alert("x")</script>'})
    page = env.client.get(urlsplit(resp.get_json()["payment_url"]).path)
    html = page.get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_page_uses_the_configured_bank_name(instance: str) -> None:
    for env in mount(emulated_provider(instance, RSABANK_NAME="Ngân hàng <Thử>")):
        redirect = create(env)
        assert redirect.redirect_url is not None
        html = env.client.get(urlsplit(redirect.redirect_url).path).get_data(as_text=True)
        assert "Ngân hàng &lt;Thử&gt;" in html


def test_unknown_payment_page_is_404(env: Env) -> None:
    resp = env.client.get(PREFIX + "/pay/BR000000000000")
    assert resp.status_code == 404
    assert "Không tìm thấy giao dịch" in resp.get_data(as_text=True)


# ---- pay -> notification + return ----------------------------------------------------------------------


def test_success_sends_a_verifiable_notification_and_redirects(env: Env) -> None:
    resp = pay(env, "success")
    [note_request] = env.notifications()
    body = json.loads(note_request.body)
    assert list(body) == [
        "transaction_id",
        "account_no",
        "amount",
        "currency",
        "direction",
        "status",
        "reference",
        "remittance",
        "transacted_at",
    ]
    assert body["account_no"] == EMULATOR_ACCOUNT_NO
    assert body["remittance"] == "GW261125ABC123 Thanh toan ho so H12.22-241125-0001"
    assert note_request.headers["Content-Type"] == "application/json"

    n = env.provider.verify_callback(note_request)
    assert n.outcome is Outcome.SUCCEEDED
    assert (n.reference, n.amount, n.result_code) == ("GW261125ABC123", 58_000, "success")
    assert n.provider_txn_id is not None
    assert re.fullmatch(r"FT[0-9]{10}", n.provider_txn_id)
    assert n.paid_at is not None
    assert abs(n.paid_at - datetime.now(UTC)) < timedelta(minutes=1)

    back = returned(resp)
    assert back.args["reference"] == "GW261125ABC123"
    assert back.args["status"] == "success"
    r = env.provider.verify_return(back)
    assert (r.reference, r.outcome) == ("GW261125ABC123", Outcome.SUCCEEDED)


@pytest.mark.parametrize(("outcome", "status"), [("failure", "failed"), ("cancel", "cancelled")])
def test_failure_and_cancel_are_failed(env: Env, outcome: str, status: str) -> None:
    resp = pay(env, outcome)
    [note_request] = env.notifications()
    n = env.provider.verify_callback(note_request)
    assert (n.outcome, n.result_code, n.amount) == (Outcome.FAILED, status, 58_000)
    r = env.provider.verify_return(returned(resp))
    assert (r.outcome, r.result_code) == (Outcome.FAILED, status)


def test_a_finished_payment_cannot_be_paid_again(env: Env) -> None:
    redirect = create(env)
    pay(env, "success", redirect)
    assert redirect.redirect_url is not None
    path = urlsplit(redirect.redirect_url).path
    assert env.client.get(path).status_code == 400
    again = env.client.post(path, data={"outcome": "failure"})
    assert again.status_code == 400
    assert "Giao dịch đã được xử lý" in again.get_data(as_text=True)
    assert len(env.notifications()) == 1


def test_unknown_outcome_is_refused(env: Env) -> None:
    resp = pay(env, "maybe")
    assert resp.status_code == 400
    assert env.notifications() == []
    assert query(env).outcome is Outcome.PENDING


def test_notification_goes_to_ipn_url_without_notify_url(env: Env) -> None:
    resp = env.api("/payments", {k: v for k, v in VALID_CREATE.items() if k != "notify_url"})
    path = urlsplit(resp.get_json()["payment_url"]).path
    env.client.post(path, data={"outcome": "success"})
    assert env.notifications(NOTIFY_URL) == []
    [note_request] = env.notifications(IPN_URL)
    assert env.provider.verify_callback(note_request).outcome is Outcome.SUCCEEDED


def test_drop_fault_takes_the_payment_without_notifying(env: Env) -> None:
    env.blueprint.faults["drop"] = True
    redirect = create(env)
    resp = pay(env, "success", redirect)
    assert resp.status_code == 302
    assert env.notifications() == []
    assert query(env).outcome is Outcome.SUCCEEDED  # the query covers the lost notification
    # The signed notification is kept so that a test can deliver it late.
    payment = env.blueprint.payments[redirect.provider_data["bank_reference"]]
    late = CallbackRequest("POST", {}, {"X-Signature": payment.notification_signature}, payment.notification)
    assert env.provider.verify_callback(late).outcome is Outcome.SUCCEEDED


def test_unreachable_notify_url_still_redirects(env: Env) -> None:
    env.mock.replace(responses.POST, NOTIFY_URL, body=requests.ConnectionError("refused"))
    resp = pay(env, "success")
    assert returned(resp).args["status"] == "success"


def test_return_signature_is_over_reference_and_status(env: Env) -> None:
    back = returned(pay(env, "success"))
    verify(env.provider.bank_keys, return_message("GW261125ABC123", "success"), back.args["signature"])
    with pytest.raises(SignatureVerificationError):
        env.provider.verify_return(CallbackRequest("GET", {**back.args, "status": "failed"}, {}, b""))


# ---- query ------------------------------------------------------------------------------------------------


def test_query_states(env: Env) -> None:
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "not_found")  # never created
    redirect = create(env)
    n = query(env)
    assert (n.outcome, n.result_code, n.provider_txn_id) == (Outcome.PENDING, "pending", None)
    pay(env, "success", redirect)
    [note_request] = env.notifications()
    paid = env.provider.verify_callback(note_request)
    n = query(env)
    assert (n.outcome, n.amount, n.provider_txn_id) == (Outcome.SUCCEEDED, 58_000, paid.provider_txn_id)
    assert n.paid_at == paid.paid_at


def test_query_after_failure(env: Env) -> None:
    pay(env, "failure")
    assert query(env).outcome is Outcome.FAILED


# ---- refunds --------------------------------------------------------------------------------------------


def test_partial_refunds_up_to_the_paid_amount(env: Env) -> None:
    pay(env, "success")
    first = env.provider.refund(refund_request("RF1", 20_000))
    assert (first.outcome, first.result_code) == (Outcome.SUCCEEDED, "success")
    assert first.provider_reference is not None
    assert re.fullmatch(r"RF[0-9]{10}", first.provider_reference)
    # A retry of the same refund is answered as before, not refunded twice.
    again = env.provider.refund(refund_request("RF1", 20_000))
    assert (again.outcome, again.provider_reference) == (Outcome.SUCCEEDED, first.provider_reference)
    too_much = env.provider.refund(refund_request("RF2", 38_001))
    assert (too_much.outcome, too_much.result_code) == (Outcome.FAILED, "amount_exceeds")
    rest = env.provider.refund(refund_request("RF3", 38_000))
    assert rest.outcome is Outcome.SUCCEEDED
    one_more = env.provider.refund(refund_request("RF4", 1))
    assert (one_more.outcome, one_more.result_code) == (Outcome.FAILED, "amount_exceeds")
    assert env.provider.query_refund(refund_request("RF3", 38_000)).outcome is Outcome.SUCCEEDED


def test_refund_reference_reused_for_another_refund_is_a_conflict(env: Env) -> None:
    pay(env, "success")
    env.provider.refund(refund_request("RF1", 20_000))
    result = env.provider.refund(refund_request("RF1", 10_000))
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "duplicate_reference")


def test_refund_checks_the_transaction_id(env: Env) -> None:
    pay(env, "success")
    [note_request] = env.notifications()
    txn = env.provider.verify_callback(note_request).provider_txn_id
    wrong = env.provider.refund(refund_request("RF1", 1_000, payment_txn_id="FT0000000000"))
    assert (wrong.outcome, wrong.result_code) == (Outcome.FAILED, "transaction_mismatch")
    assert env.provider.refund(refund_request("RF2", 1_000, payment_txn_id=txn)).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("setup", "code"), [("unpaid", "not_refundable"), ("failed", "not_refundable"), ("unknown", "not_found")]
)
def test_refund_of_an_unpaid_payment_is_refused(env: Env, setup: str, code: str) -> None:
    if setup == "unpaid":
        create(env)
    elif setup == "failed":
        pay(env, "failure")
    result = env.provider.refund(refund_request("RF1", 1_000))
    assert (result.outcome, result.result_code) == (Outcome.FAILED, code)


def test_pending_refund_becomes_final_on_query(env: Env) -> None:
    pay(env, "success")
    env.blueprint.faults["refund_pending"] = True
    result = env.provider.refund(refund_request("RF1", 8_000))
    assert (result.outcome, result.result_code) == (Outcome.PENDING, "pending")
    assert env.provider.query_refund(refund_request("RF1", 8_000)).outcome is Outcome.PENDING
    env.blueprint.faults.clear()
    done = env.provider.query_refund(refund_request("RF1", 8_000))
    assert (done.outcome, done.provider_reference) == (Outcome.SUCCEEDED, result.provider_reference)
    # The pending refund already counted against the paid amount.
    assert env.provider.refund(refund_request("RF2", 50_001)).result_code == "amount_exceeds"


def test_query_refund_of_an_unknown_refund(env: Env) -> None:
    result = env.provider.query_refund(refund_request("RF404", 1))
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "not_found")


# ---- fault switches -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "result_code"),
    [
        ({"status": 503}, "http_503"),
        ({"garbage": True}, "garbage"),
        ({"bad_signature": True}, "bad_signature"),
    ],
)
def test_api_faults_make_calls_unknown(env: Env, faults: dict[str, Any], result_code: str) -> None:
    pay(env, "success")
    env.blueprint.faults.update(faults)
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, result_code)
    refund = env.provider.refund(refund_request("RF1", 1_000))
    assert (refund.outcome, refund.result_code) == (Outcome.UNKNOWN, result_code)
    with pytest.raises(ProviderUnavailable):
        create(env, "GW261125ABC999")
    env.blueprint.faults.clear()
    assert query(env).outcome is Outcome.SUCCEEDED


def test_slow_fault_sleeps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(emulator.time, "sleep", slept.append)
    env.blueprint.faults["slow"] = 2.5
    query(env)
    assert slept == [2.5]


def test_blueprint_is_reachable_by_name(env: Env) -> None:
    assert env.app.blueprints["emulator_rsabank"] is env.blueprint


def test_a_configured_provider_needs_a_bank_key(env: Env) -> None:
    provider = env.provider
    provider.emulator_bank_private_pem = None
    with pytest.raises(ValueError, match="no bank private key"):
        create_blueprint(provider, ipn_url=IPN_URL)


# ---- PSS and a custom mapping, end to end --------------------------------------------------------------


def test_a_pss_bank_end_to_end(instance: str) -> None:
    for env in mount(emulated_provider(instance, RSABANK_SIGNATURE_SCHEME="pss")):
        assert env.provider.scheme is Scheme.PSS
        resp = pay(env, "success")
        [note_request] = env.notifications()
        assert env.provider.verify_callback(note_request).outcome is Outcome.SUCCEEDED
        assert env.provider.verify_return(returned(resp)).outcome is Outcome.SUCCEEDED
        assert query(env).outcome is Outcome.SUCCEEDED


def test_a_custom_mapping_end_to_end(instance: str, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "fields": {
                    "transaction_id": "maGD",
                    "amount": "soTien",
                    "status": "trangThai",
                    "reference": "maTT",
                },
                "signature_header": "Chu-Ky",
                "success_values": ["THANH_CONG"],
                "failure_values": ["THAT_BAI", "HUY"],
            }
        )
    )
    for env in mount(emulated_provider(instance, RSABANK_FIELD_MAP=str(mapping))):
        pay(env, "success")
        [note_request] = env.notifications()
        body = json.loads(note_request.body)
        assert {"maGD", "soTien", "trangThai", "maTT"} <= set(body)
        assert "Chu-Ky" in note_request.headers
        assert "X-Signature" not in note_request.headers
        assert body["trangThai"] == "thanh_cong"  # the bank's own word
        n = env.provider.verify_callback(note_request)
        assert (n.outcome, n.amount, n.reference) == (Outcome.SUCCEEDED, 58_000, "GW261125ABC123")
        failed = pay(env, "cancel", create(env, "GW261125ABC124"))
        assert env.provider.verify_return(returned(failed)).result_code == "huy"
        assert env.provider.verify_callback(env.notifications()[-1]).outcome is Outcome.FAILED


# ---- Forge ----------------------------------------------------------------------------------------------


@pytest.fixture
def forge(env: Env) -> Forge:
    assert env.provider.emulator_bank_private_pem is not None
    return Forge(env.provider, env.provider.emulator_bank_private_pem.decode())


def forged(forge: Forge, result_code: str = "success", secret: str | None = None) -> CallbackRequest:
    return forge.notification(
        reference="GW261125ABC123",
        amount=58_000,
        result_code=result_code,
        provider_txn_id="FT2433100001",
        secret=secret,
    )


def test_forge_notification_verifies(env: Env, forge: Forge) -> None:
    request = forged(forge)
    assert request.method == "POST"
    assert set(json.loads(request.body)) == set(Forge.signed_fields)
    n = env.provider.verify_callback(request)
    assert (n.reference, n.amount, n.provider_txn_id, n.outcome) == (
        "GW261125ABC123",
        58_000,
        "FT2433100001",
        Outcome.SUCCEEDED,
    )
    assert Forge.result_codes[Forge.success_code] is Outcome.SUCCEEDED


@pytest.mark.parametrize("code", sorted(Forge.result_codes))
def test_forge_result_codes_map_as_documented(env: Env, forge: Forge, code: str) -> None:
    assert env.provider.verify_callback(forged(forge, code)).outcome is Forge.result_codes[code]


@pytest.mark.parametrize("field", Forge.signed_fields)
def test_forge_tampered_fields_are_refused(env: Env, forge: Forge, field: str) -> None:
    request = forged(forge)
    tampered = forge.tamper(request, field)
    assert tampered.body != request.body
    assert tampered.headers == request.headers
    with pytest.raises(SignatureVerificationError):
        env.provider.verify_callback(tampered)


def test_forge_strip_signature(env: Env, forge: Forge) -> None:
    with pytest.raises(SignatureVerificationError, match="missing"):
        env.provider.verify_callback(forge.strip_signature(forged(forge)))


def test_forge_wrong_secrets_are_refused(env: Env, forge: Forge) -> None:
    for secret in ("wrong", "x" + forge.secret, generate_private_key_pem().decode()):
        with pytest.raises(SignatureVerificationError):
            env.provider.verify_callback(forged(forge, secret=secret))

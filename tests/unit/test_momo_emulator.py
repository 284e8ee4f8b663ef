"""The MoMo emulator against the real adapter: create, pay page, IPN, redirect, query, refund (§2)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import flask
import pytest
import requests
import responses
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from gateway.domain.errors import GatewayError, ProviderUnavailable, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.base import CallbackRequest, Notification, Outcome, PaymentRequest, QueryRequest, RefundRequest
from providers.emulators import momo as emulator
from providers.emulators.momo import Forge, MomoEmulatorBlueprint, create_blueprint, ipn_json, signed_ipn
from providers.momo import (
    EMULATOR_ACCESS_KEY,
    EMULATOR_PARTNER_CODE,
    EMULATOR_SECRET_KEY,
    MomoProvider,
    create_signature_raw,
    ipn_signature_raw,
    query_signature_raw,
    refund_signature_raw,
)
from providers.signing import hmac_hex

BASE_URL = "http://gateway.test"
PREFIX = "/_emulator/momo"
NOTIFY_URL = "http://gateway.test/callbacks/momo"
FALLBACK_IPN_URL = "http://gateway.test/callbacks/momo-fallback"
RETURN_URL = "http://gateway.test/return/momo?lang=vi"
REFERENCE = "GW240723ABC123"


@dataclass
class Env:
    app: flask.Flask
    provider: MomoProvider
    blueprint: MomoEmulatorBlueprint
    client: FlaskClient
    mock: responses.RequestsMock

    def ipn_calls(self, url: str = NOTIFY_URL) -> list[responses.Call]:
        return [c for c in self.mock.calls if c.request.url == url]

    def ipn_bodies(self, url: str = NOTIFY_URL) -> list[bytes]:
        bodies = []
        for call in self.ipn_calls(url):
            body = call.request.body
            assert isinstance(body, bytes)
            bodies.append(body)
        return bodies


def emulated_provider() -> MomoProvider:
    return MomoProvider(
        ProviderCredentials(code="momo", values={}, emulated=True),
        base_url=BASE_URL,
        session=requests.Session(),
    )


def mount(
    provider: MomoProvider, http: requests.Session | None = None
) -> tuple[flask.Flask, MomoEmulatorBlueprint]:
    blueprint = create_blueprint(provider, ipn_url=FALLBACK_IPN_URL, http=http or requests.Session())
    app = flask.Flask(__name__)
    app.register_blueprint(blueprint, url_prefix=PREFIX)
    return app, blueprint


@pytest.fixture
def env() -> Iterator[Env]:
    provider = emulated_provider()
    app, blueprint = mount(provider)
    client = app.test_client()

    def forward(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        # The adapter speaks HTTP through requests; hand its call to the emulator in-process, on the
        # host it addressed (the emulator derives payUrl from it).
        parts = urlsplit(request.url or "")
        resp = client.post(
            parts.path,
            data=request.body,
            content_type="application/json",
            base_url=f"{parts.scheme}://{parts.netloc}",
        )
        return resp.status_code, {"Content-Type": resp.content_type or ""}, resp.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(NOTIFY_URL, status=204)
        mock.post(FALLBACK_IPN_URL, status=204)
        for url in (provider.create_url, provider.query_url, provider.refund_url):
            mock.add_callback(responses.POST, url, callback=forward)
        yield Env(app, provider, blueprint, client, mock)


def payment_request(reference: str = REFERENCE, amount: int = 150_000, **changes: Any) -> PaymentRequest:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "reference": reference,
        "amount": amount,
        "order_info": "Lệ phí hồ sơ Đăng ký #12/ABC",
        "return_url": RETURN_URL,
        "notify_url": NOTIFY_URL,
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": now,
        "expires_at": now + timedelta(minutes=15),
    }
    values.update(changes)
    return PaymentRequest(**values)


def create(env: Env, **changes: Any) -> str:
    """Create through the adapter; returns the payUrl's path."""
    redirect = env.provider.build_payment_request(payment_request(**changes))
    assert redirect.redirect_url is not None
    parts = urlsplit(redirect.redirect_url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    return parts.path


def create_and_pay(env: Env, outcome: str, **changes: Any) -> TestResponse:
    path = create(env, **changes)
    page = env.client.get(path)
    assert page.status_code == 200
    return env.client.post(path, data={"outcome": outcome})


def verify(env: Env, body: bytes) -> Notification:
    return env.provider.verify_callback(
        CallbackRequest(method="POST", args={}, headers={"Content-Type": "application/json"}, body=body)
    )


def query(env: Env, reference: str = REFERENCE) -> Notification:
    return env.provider.query(QueryRequest(reference, 150_000, datetime.now(UTC), "Le phi ho so"))


def refund_request(reference: str, amount: int, txn_id: str | None, **changes: Any) -> RefundRequest:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "reference": reference,
        "payment_reference": REFERENCE,
        "payment_txn_id": txn_id,
        "amount": amount,
        "payment_amount": 150_000,
        "already_refunded": 0,
        "reason": "Hoàn phí nộp trùng",
        "actor": "finance@example.gov.vn",
        "created_at": now,
        "payment_created_at": now,
        "payment_provider_data": {"requestType": "captureWallet"},
    }
    values.update(changes)
    return RefundRequest(**values)


def signed_api_body(builder: Any, **fields: Any) -> dict[str, Any]:
    fields["signature"] = hmac_hex(
        EMULATOR_SECRET_KEY, builder({**fields, "accessKey": EMULATOR_ACCESS_KEY}), "sha256"
    )
    return fields


def create_body(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "partnerCode": EMULATOR_PARTNER_CODE,
        "partnerName": "x",
        "storeId": EMULATOR_PARTNER_CODE,
        "requestId": "REQ-1",
        "amount": 50_000,
        "orderId": "ORDER-1",
        "orderInfo": "Le phi",
        "redirectUrl": RETURN_URL,
        "ipnUrl": NOTIFY_URL,
        "lang": "vi",
        "extraData": "",
        "requestType": "captureWallet",
    }
    fields.update(changes)
    return signed_api_body(create_signature_raw, **fields)


# ---- create (§2.2) ---------------------------------------------------------------------------------------


def test_create_answers_a_pay_url_on_the_requested_host(env: Env) -> None:
    redirect = env.provider.build_payment_request(payment_request())
    assert redirect.redirect_url == f"{BASE_URL}{PREFIX}/pay/{REFERENCE}"
    assert redirect.provider_data["requestType"] == "captureWallet"
    stored = env.blueprint.payments[REFERENCE]
    assert stored.request_id == redirect.provider_data["requestId"]
    assert stored.order_info == "Le phi ho so Dang ky 12ABC"
    assert stored.ipn_url == NOTIFY_URL
    assert stored.amount == 150_000


def test_create_answer_shape(env: Env) -> None:
    answer = env.client.post(
        f"{PREFIX}/v2/gateway/api/create", json=create_body(), base_url="https://other.example:8443"
    ).get_json()
    assert answer["resultCode"] == 0
    assert answer["payUrl"] == f"https://other.example:8443{PREFIX}/pay/ORDER-1"
    assert answer["deeplink"].startswith("momo://app?")
    assert answer["qrCodeUrl"] == answer["deeplink"]
    assert (answer["orderId"], answer["requestId"], answer["amount"]) == ("ORDER-1", "REQ-1", 50_000)
    assert answer["partnerCode"] == EMULATOR_PARTNER_CODE
    assert isinstance(answer["responseTime"], int)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**create_body(), "amount": 60_000}, 13),  # tampered after signing
        ({**create_body(), "signature": "0" * 64}, 13),
        ({k: v for k, v in create_body().items() if k != "signature"}, 13),
        (create_body(partnerCode="SOMEONE"), 13),
        (create_body(amount=999), 22),
        (create_body(amount=50_000_001), 22),
        (create_body(requestType="payWithATM", amount=9_999), 22),
        (create_body(amount=50_000.0), 21),
        (create_body(amount="lots"), 21),
        (create_body(requestType="payWithCC"), 20),
        (create_body(ipnUrl=""), 20),
        (create_body(orderId="bad id!"), 42),
    ],
)
def test_create_refusals(env: Env, body: dict[str, Any], code: int) -> None:
    answer = env.client.post(f"{PREFIX}/v2/gateway/api/create", json=body).get_json()
    assert answer["resultCode"] == code
    assert "payUrl" not in answer
    assert env.blueprint.payments == {}


def test_create_refuses_non_json(env: Env) -> None:
    resp = env.client.post(f"{PREFIX}/v2/gateway/api/create", data=b"oops", content_type="application/json")
    assert resp.get_json()["resultCode"] == 20


def test_create_duplicates(env: Env) -> None:
    url = f"{PREFIX}/v2/gateway/api/create"
    assert env.client.post(url, json=create_body()).get_json()["resultCode"] == 0
    assert env.client.post(url, json=create_body()).get_json()["resultCode"] == 40  # same requestId
    assert env.client.post(url, json=create_body(requestId="REQ-2")).get_json()["resultCode"] == 41


def test_adapter_sees_a_duplicate_order_as_a_definite_refusal(env: Env) -> None:
    create(env)
    with pytest.raises(GatewayError, match="resultCode 41") as info:
        create(env)
    assert not isinstance(info.value, ProviderUnavailable)


def test_adapter_signature_with_a_wrong_secret_is_refused_with_13() -> None:
    provider = emulated_provider()
    app, _ = mount(provider)
    other = emulated_provider()
    other.secrets = ("not-the-emulator-secret",)
    client = app.test_client()
    with responses.RequestsMock() as mock:
        mock.add_callback(
            responses.POST,
            other.create_url,
            callback=lambda r: (
                200,
                {},
                client.post(
                    urlsplit(r.url or "").path, data=r.body, content_type="application/json"
                ).get_data(),
            ),
        )
        with pytest.raises(GatewayError, match="resultCode 13"):
            other.build_payment_request(payment_request())


# ---- pay page -----------------------------------------------------------------------------------------


def test_checkout_page_shows_the_order(env: Env) -> None:
    path = create(env, method="payWithATM")
    page = env.client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "150.000 VND" in html
    assert REFERENCE in html
    assert "Le phi ho so Dang ky 12ABC" in html
    assert "Thẻ ATM nội địa (NAPAS)" in html
    assert f'action="{PREFIX}/pay/{REFERENCE}"' in html
    for label in ("Thanh toán thành công", "Thất bại — không đủ số dư", "Từ chối thanh toán"):
        assert label in html
    assert "<script" not in html
    assert 'name="viewport"' in html


def test_checkout_page_escapes_untrusted_values(env: Env) -> None:
    body = create_body(orderInfo='<script>alert("x")</script>')
    assert env.client.post(f"{PREFIX}/v2/gateway/api/create", json=body).get_json()["resultCode"] == 0
    html = env.client.get(f"{PREFIX}/pay/ORDER-1").get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_unknown_order_page_is_404(env: Env) -> None:
    assert env.client.get(f"{PREFIX}/pay/NOPE").status_code == 404
    assert env.client.post(f"{PREFIX}/pay/NOPE", data={"outcome": "success"}).status_code == 404


# ---- pay → IPN + redirect (§2.3) --------------------------------------------------------------------------


def test_success_sends_a_verifiable_ipn_and_redirects(env: Env) -> None:
    resp = create_and_pay(env, "success")
    [call] = env.ipn_calls()
    assert call.request.headers["Content-Type"] == "application/json"
    [body] = env.ipn_bodies()
    sent = json.loads(body)
    # JSON numbers, as MoMo sends them.
    for name in ("amount", "transId", "resultCode", "responseTime"):
        assert type(sent[name]) is int
    assert sent["payType"] == "qr"
    assert sent["orderType"] == "momo_wallet"
    assert sent["partnerCode"] == EMULATOR_PARTNER_CODE
    assert sent["requestId"] == env.blueprint.payments[REFERENCE].request_id
    assert sent["signature"] == hmac_hex(
        EMULATOR_SECRET_KEY, ipn_signature_raw({**sent, "accessKey": EMULATOR_ACCESS_KEY}), "sha256"
    )

    n = verify(env, body)
    assert n.outcome is Outcome.SUCCEEDED
    assert n.reference == REFERENCE
    assert n.amount == 150_000
    assert n.result_code == "0"
    assert n.provider_txn_id == str(sent["transId"])
    assert n.paid_at is not None
    assert abs(n.paid_at - datetime.now(UTC)) < timedelta(minutes=1)

    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(RETURN_URL + "&")  # the return URL already had a query
    returned = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    assert returned.pop("lang") == "vi"
    assert returned == {k: str(v) for k, v in sent.items()}
    assert env.provider.verify_return(CallbackRequest("GET", returned, {}, b"")) == n


def test_response_time_follows_the_gateway_clock(env: Env) -> None:
    instant = datetime(2024, 7, 23, 7, 44, 23, 942000, tzinfo=UTC)
    env.app.config["GATEWAY_CLOCK"] = lambda: instant
    create_and_pay(env, "success")
    [body] = env.ipn_bodies()
    assert json.loads(body)["responseTime"] == 1721720663942
    assert verify(env, body).paid_at == instant


def test_atm_payment_is_paid_through_napas(env: Env) -> None:
    create_and_pay(env, "success", method="payWithATM")
    [body] = env.ipn_bodies()
    assert json.loads(body)["payType"] == "napas"
    assert verify(env, body).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(("outcome", "code"), [("failure", "1001"), ("cancel", "1006")])
def test_failure_and_cancel_are_failed(env: Env, outcome: str, code: str) -> None:
    resp = create_and_pay(env, outcome)
    assert resp.status_code == 302
    [body] = env.ipn_bodies()
    n = verify(env, body)
    assert (n.outcome, n.result_code) == (Outcome.FAILED, code)


def test_english_messages(env: Env) -> None:
    create_and_pay(env, "cancel", locale="en")
    [body] = env.ipn_bodies()
    assert json.loads(body)["message"] == "Transaction denied by user."


def test_a_finished_payment_cannot_be_paid_again(env: Env) -> None:
    create_and_pay(env, "success")
    path = f"{PREFIX}/pay/{REFERENCE}"
    assert env.client.get(path).status_code == 400
    assert env.client.post(path, data={"outcome": "success"}).status_code == 400
    assert len(env.ipn_calls()) == 1


def test_unknown_outcome_is_refused(env: Env) -> None:
    resp = create_and_pay(env, "maybe")
    assert resp.status_code == 400
    assert env.ipn_calls() == []
    assert query(env).outcome is Outcome.PENDING


def test_ipn_goes_to_the_create_request_ipn_url(env: Env) -> None:
    create_and_pay(env, "success")
    assert len(env.ipn_calls(NOTIFY_URL)) == 1
    assert env.ipn_calls(FALLBACK_IPN_URL) == []


def test_drop_fault_accepts_the_payment_without_notifying(env: Env) -> None:
    env.blueprint.faults["drop"] = True
    resp = create_and_pay(env, "success")
    assert resp.status_code == 302
    assert env.ipn_calls() == []
    # The query API still knows (that is how lost IPNs are recovered), and the IPN is kept for a replay.
    assert query(env).outcome is Outcome.SUCCEEDED
    assert verify(env, env.blueprint.payments[REFERENCE].ipn_body).outcome is Outcome.SUCCEEDED


def test_unreachable_ipn_url_still_redirects(env: Env) -> None:
    env.mock.replace(responses.POST, NOTIFY_URL, body=requests.ConnectionError("refused"))
    resp = create_and_pay(env, "success")
    assert resp.status_code == 302
    assert verify(env, env.blueprint.payments[REFERENCE].ipn_body).outcome is Outcome.SUCCEEDED


def test_signed_ipn_helper_matches_cross_check_d() -> None:
    fields = signed_ipn(
        secret="K951B6PE1waDMi640xX08PD3vg6EkVlz",
        access_key="F8BBA842ECF85",
        partner_code="MOMO",
        order_id="HS-2024-0001",
        request_id="HS-2024-0001-r1",
        amount=50000,
        order_info="Le phi ho so HS-2024-0001",
        trans_id=4088878653,
        result_code=0,
        message="Successful.",
        pay_type="qr",
        response_time=1721720663942,
    )
    assert fields["signature"] == "47e2b440cbc813290ca7d18dc143ad4c67ab35c011bd83367f1ed119939cc375"
    assert json.loads(ipn_json(fields)) == fields


# ---- query (§2.4) ---------------------------------------------------------------------------------------


def test_query_states(env: Env) -> None:
    assert (query(env).outcome, query(env).result_code) == (Outcome.UNKNOWN, "42")  # never created
    create(env)
    pending = query(env)
    assert (pending.outcome, pending.result_code, pending.provider_txn_id) == (Outcome.PENDING, "1000", None)
    env.client.post(f"{PREFIX}/pay/{REFERENCE}", data={"outcome": "failure"})
    assert (query(env).outcome, query(env).result_code) == (Outcome.FAILED, "1001")


def test_query_after_payment_is_succeeded(env: Env) -> None:
    create_and_pay(env, "success")
    [body] = env.ipn_bodies()
    n = query(env)
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 150_000
    assert n.provider_txn_id == str(json.loads(body)["transId"])
    assert n.paid_at == verify(env, body).paid_at
    assert n.raw["payType"] == "qr"


def test_query_with_a_bad_signature_is_refused(env: Env) -> None:
    body = signed_api_body(
        query_signature_raw, partnerCode=EMULATOR_PARTNER_CODE, requestId="Q1", orderId=REFERENCE, lang="vi"
    )
    body["orderId"] = "OTHER"
    assert env.client.post(f"{PREFIX}/v2/gateway/api/query", json=body).get_json()["resultCode"] == 13


@pytest.mark.parametrize(
    ("faults", "result_code"),
    [({"status": 503}, "http_503"), ({"garbage": True}, "garbage")],
)
def test_api_faults_make_query_unknown(env: Env, faults: dict[str, Any], result_code: str) -> None:
    create_and_pay(env, "success")
    env.blueprint.faults.update(faults)
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, result_code)
    env.blueprint.faults.clear()
    assert query(env).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("faults", "detail"), [({"status": 503}, "http_503"), ({"garbage": True}, "garbage")]
)
def test_api_faults_make_create_unavailable(env: Env, faults: dict[str, Any], detail: str) -> None:
    env.blueprint.faults.update(faults)
    with pytest.raises(ProviderUnavailable, match=detail):
        create(env)


def test_slow_fault_sleeps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(emulator.time, "sleep", slept.append)
    env.blueprint.faults["slow"] = 2.5
    query(env)
    assert slept == [2.5]


def test_slow_fault_fires_the_adapter_timeout() -> None:
    """Over a real socket: the emulator sleeps longer than the adapter waits -> unknown, never failed."""
    provider = emulated_provider()
    app, blueprint = mount(provider)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        slow = MomoProvider(
            ProviderCredentials(code="momo", values={}, emulated=True),
            base_url=f"http://127.0.0.1:{server.server_port}",
            timeout=0.2,
        )
        blueprint.faults["slow"] = 1.0
        with pytest.raises(ProviderUnavailable, match="unreachable"):
            slow.build_payment_request(payment_request())
        n = slow.query(QueryRequest(REFERENCE, 150_000, datetime.now(UTC), "x"))
        assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "unreachable")
        refund = slow.refund(refund_request("RF-1", 10_000, "4000000001"))
        assert (refund.outcome, refund.result_code) == (Outcome.UNKNOWN, "unreachable")
        slow.session.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- refund (§2.5) --------------------------------------------------------------------------------------


def paid_txn_id(env: Env) -> str:
    create_and_pay(env, "success")
    [body] = env.ipn_bodies()
    return str(json.loads(body)["transId"])


def test_partial_refunds_up_to_the_paid_amount(env: Env) -> None:
    txn = paid_txn_id(env)
    first = env.provider.refund(refund_request(f"{REFERENCE}-RF1", 100_000, txn))
    assert (first.outcome, first.result_code) == (Outcome.SUCCEEDED, "0")
    assert first.provider_reference is not None
    assert first.provider_reference != txn

    too_much = env.provider.refund(refund_request(f"{REFERENCE}-RF2", 50_001, txn))
    assert (too_much.outcome, too_much.result_code) == (Outcome.FAILED, "1081")

    rest = env.provider.refund(refund_request(f"{REFERENCE}-RF3", 50_000, txn))
    assert rest.outcome is Outcome.SUCCEEDED
    assert env.blueprint.payments[REFERENCE].refunded == 150_000

    # The purchase's query lists its refunds; each refund is found under its own orderId.
    refunds = query(env).raw["refundTrans"]
    assert [(r["orderId"], r["amount"]) for r in refunds] == [
        (f"{REFERENCE}-RF1", "100000"),  # the raw JSON number text (providers/momo.py loads_raw)
        (f"{REFERENCE}-RF3", "50000"),
    ]
    status = env.provider.query_refund(refund_request(f"{REFERENCE}-RF1", 100_000, txn))
    assert (status.outcome, status.provider_reference) == (Outcome.SUCCEEDED, first.provider_reference)
    unknown = env.provider.query_refund(refund_request(f"{REFERENCE}-RF2", 50_001, txn))
    assert (unknown.outcome, unknown.result_code) == (Outcome.UNKNOWN, "42")  # refused: never created


def test_a_reused_refund_order_id_is_unknown_not_failed(env: Env) -> None:
    txn = paid_txn_id(env)
    assert env.provider.refund(refund_request("RF-1", 10_000, txn)).outcome is Outcome.SUCCEEDED
    again = env.provider.refund(refund_request("RF-1", 10_000, txn))
    assert (again.outcome, again.result_code) == (Outcome.UNKNOWN, "41")
    purchase_id = env.provider.refund(refund_request(REFERENCE, 10_000, txn))  # not a NEW orderId
    assert (purchase_id.outcome, purchase_id.result_code) == (Outcome.UNKNOWN, "41")
    assert env.blueprint.payments[REFERENCE].refunded == 10_000


def test_refund_of_a_failed_payment_is_refused(env: Env) -> None:
    create_and_pay(env, "failure")
    [body] = env.ipn_bodies()
    txn = str(json.loads(body)["transId"])
    result = env.provider.refund(refund_request("RF-1", 10_000, txn))
    assert (result.outcome, result.result_code) == (Outcome.FAILED, "1088")


def test_refund_of_an_unknown_transaction_is_refused(env: Env) -> None:
    result = env.provider.refund(refund_request("RF-1", 10_000, "4000000001"))
    assert (result.outcome, result.result_code) == (Outcome.FAILED, "42")


def test_refund_checks(env: Env) -> None:
    txn = paid_txn_id(env)
    url = f"{PREFIX}/v2/gateway/api/refund"
    base = {
        "partnerCode": EMULATOR_PARTNER_CODE,
        "orderId": "RF-9",
        "requestId": "RF-9-r",
        "amount": 10_000,
        "transId": int(txn),
        "lang": "vi",
        "description": "",
    }
    bad = {**signed_api_body(refund_signature_raw, **base), "amount": 20_000}
    assert env.client.post(url, json=bad).get_json()["resultCode"] == 13
    small = signed_api_body(refund_signature_raw, **{**base, "amount": 500})
    assert env.client.post(url, json=small).get_json()["resultCode"] == 22
    ok = signed_api_body(refund_signature_raw, **{**base, "requestId": "RF-9-r2"})
    answer = env.client.post(url, json=ok).get_json()
    assert (answer["resultCode"], answer["orderId"], answer["amount"]) == (0, "RF-9", 10_000)
    dup = signed_api_body(refund_signature_raw, **{**base, "orderId": "RF-10", "requestId": "RF-9-r2"})
    assert env.client.post(url, json=dup).get_json()["resultCode"] == 40


@pytest.mark.parametrize(("faults", "code"), [({"status": 503}, "http_503"), ({"garbage": True}, "garbage")])
def test_api_faults_make_refund_unknown(env: Env, faults: dict[str, Any], code: str) -> None:
    txn = paid_txn_id(env)
    env.blueprint.faults.update(faults)
    result = env.provider.refund(refund_request("RF-1", 10_000, txn))
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, code)
    assert env.blueprint.payments[REFERENCE].refunded == 0


# ---- Forge (contract suite) --------------------------------------------------------------------------------


@pytest.fixture
def forge() -> Forge:
    return Forge(emulated_provider(), EMULATOR_SECRET_KEY)


def test_forge_declares_the_protocol(forge: Forge) -> None:
    assert forge.success_code == "0"
    assert forge.signed_fields == (
        "amount",
        "extraData",
        "message",
        "orderId",
        "orderInfo",
        "orderType",
        "partnerCode",
        "payType",
        "requestId",
        "responseTime",
        "resultCode",
        "transId",
    )
    assert len(forge.result_codes) == 33  # every code of §2.6
    assert forge.result_codes["0"] is Outcome.SUCCEEDED
    assert forge.result_codes["9000"] is Outcome.PENDING
    assert forge.result_codes["1006"] is Outcome.FAILED
    assert forge.result_codes["41"] is Outcome.UNKNOWN
    assert forge.result_codes["99"] is Outcome.UNKNOWN


def test_forged_notification_is_what_momo_sends(forge: Forge) -> None:
    request = forge.notification(
        reference=REFERENCE, amount=150_000, result_code="0", provider_txn_id="4088878653"
    )
    assert request.method == "POST"
    assert request.args == {}
    assert request.headers == {"Content-Type": "application/json"}
    fields = json.loads(request.body)
    assert (fields["amount"], fields["transId"], fields["resultCode"]) == (150_000, 4088878653, 0)
    n = forge.provider.verify_callback(request)
    assert (n.reference, n.amount, n.provider_txn_id, n.outcome) == (
        REFERENCE,
        150_000,
        "4088878653",
        Outcome.SUCCEEDED,
    )


def test_forged_result_codes_map_as_declared(forge: Forge) -> None:
    for code, outcome in forge.result_codes.items():
        request = forge.notification(
            reference=REFERENCE, amount=10_000, result_code=code, provider_txn_id="42"
        )
        n = forge.provider.verify_callback(request)
        assert (n.outcome, n.result_code) == (outcome, code)


def test_forged_tampering_and_stripping_are_rejected(forge: Forge) -> None:
    request = forge.notification(
        reference=REFERENCE, amount=150_000, result_code="0", provider_txn_id="4088878653"
    )
    for name in forge.signed_fields:
        tampered = forge.tamper(request, name)
        assert json.loads(tampered.body)[name] != json.loads(request.body)[name]
        with pytest.raises(SignatureVerificationError):
            forge.provider.verify_callback(tampered)
    with pytest.raises(SignatureVerificationError):
        forge.provider.verify_callback(forge.strip_signature(request))
    wrong = forge.notification(
        reference=REFERENCE, amount=150_000, result_code="0", provider_txn_id="1", secret="wrong-secret"
    )
    with pytest.raises(SignatureVerificationError):
        forge.provider.verify_callback(wrong)


def test_forge_with_a_non_numeric_txn_id(forge: Forge) -> None:
    request = forge.notification(reference=REFERENCE, amount=1_000, result_code="0", provider_txn_id="T-1")
    assert forge.provider.verify_callback(request).provider_txn_id == "T-1"


def test_blueprint_is_reachable_by_name(env: Env) -> None:
    assert env.app.blueprints["emulator_momo"] is env.blueprint

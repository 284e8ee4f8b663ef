"""The ZaloPay emulator against the real adapter: create, pay page, callback, query, refunds (§3)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from providers.base import CallbackRequest, Notification, Outcome, PaymentRequest, QueryRequest, RefundRequest
from providers.emulators import zalopay as emulator
from providers.emulators.zalopay import Forge, ZalopayEmulatorBlueprint, callback_body, create_blueprint
from providers.signing import hmac_hex
from providers.zalopay import (
    EMULATOR_APP_ID,
    EMULATOR_KEY1,
    EMULATOR_KEY2,
    ZalopayProvider,
    create_mac_data,
    epoch_ms,
    gmt7_yymmdd,
    refund_mac_data,
)

BASE_URL = "http://gateway.test"
EMULATOR = "/_emulator/zalopay"
NOTIFY_URL = "http://gateway.test/callbacks/zalopay"  # sent as callback_url in the create request
DEFAULT_IPN_URL = "http://gateway.test/callbacks/zalopay-app-default"  # ZaloPay's per-app default
RETURN_URL = "http://gateway.test/return/zalopay?lang=vi"
ACK_OK = '{"return_code":1,"return_message":"success"}'


@dataclass
class Env:
    app: flask.Flask
    provider: ZalopayProvider
    blueprint: ZalopayEmulatorBlueprint
    client: FlaskClient
    mock: responses.RequestsMock
    now: list[datetime]  # the gateway clock the emulator follows (GATEWAY_CLOCK)

    def callbacks(self, url: str = NOTIFY_URL) -> list[requests.PreparedRequest]:
        return [c.request for c in self.mock.calls if c.request.url == url]

    def verify(self, request: requests.PreparedRequest) -> Notification:
        body = request.body
        assert isinstance(body, bytes)
        return self.provider.verify_callback(
            CallbackRequest("POST", {}, dict(request.headers), body, remote_addr="127.0.0.1")
        )

    def advance(self, **kwargs: float) -> None:
        self.now[0] += timedelta(**kwargs)


def make_provider(clock: Callable[[], datetime], **values: str) -> ZalopayProvider:
    if values:
        creds = ProviderCredentials("zalopay", values, emulated=False)
    else:
        creds = ProviderCredentials("zalopay", {}, emulated=True)
    return ZalopayProvider(creds, base_url=BASE_URL, session=requests.Session(), clock=clock)


@pytest.fixture
def env() -> Iterator[Env]:
    now = [datetime.now(UTC).replace(microsecond=0)]
    provider = make_provider(lambda: now[0])
    blueprint = create_blueprint(provider, ipn_url=DEFAULT_IPN_URL, http=requests.Session())
    app = flask.Flask(__name__)
    app.config["GATEWAY_CLOCK"] = lambda: now[0]
    app.register_blueprint(blueprint, url_prefix=EMULATOR)
    client = app.test_client()

    def forward(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        # The adapter speaks HTTP through requests; hand its call to the emulator in-process.
        resp = client.post(
            urlsplit(request.url or "").path,
            data=request.body,
            content_type=request.headers.get("Content-Type", ""),
            base_url=BASE_URL,
        )
        return resp.status_code, {"Content-Type": resp.content_type or ""}, resp.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for url in (NOTIFY_URL, DEFAULT_IPN_URL):
            mock.post(url, body=ACK_OK, content_type="application/json")
        mock.add_callback(
            responses.POST, re.compile(re.escape(provider.endpoint) + "/v2/.*"), callback=forward
        )
        yield Env(app, provider, blueprint, client, mock, now)


def payment_request(env: Env, reference: str = "GW261126ABC123", **changes: Any) -> PaymentRequest:
    values: dict[str, Any] = {
        "reference": reference,
        "amount": 150_000,
        "order_info": "Lệ phí hồ sơ Đăng ký #12/ABC",
        "return_url": RETURN_URL,
        "notify_url": NOTIFY_URL,
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": env.now[0],
        "expires_at": env.now[0] + timedelta(minutes=15),
        "method": "vietqr",
    }
    values.update(changes)
    return PaymentRequest(**values)


def create(env: Env, reference: str = "GW261126ABC123", **changes: Any) -> str:
    """Create an order through the adapter; the pay page path."""
    url = env.provider.build_payment_request(payment_request(env, reference, **changes)).redirect_url
    assert url is not None
    return urlsplit(url).path


def pay(env: Env, outcome: str, reference: str = "GW261126ABC123", **changes: Any) -> TestResponse:
    path = create(env, reference, **changes)
    assert env.client.get(path).status_code == 200
    return env.client.post(path, data={"outcome": outcome})


def query(env: Env, reference: str = "GW261126ABC123") -> Notification:
    app_trans_id = f"{gmt7_yymmdd(env.now[0])}_{reference}"
    return env.provider.query(
        QueryRequest(reference, 150_000, env.now[0], "x", provider_data={"app_trans_id": app_trans_id})
    )


def raw_create(env: Env, **changes: Any) -> dict[str, Any]:
    """A create request re-signed with the emulator's key1 after ``changes`` (checks behind the MAC)."""
    fields: dict[str, Any] = {
        "app_id": EMULATOR_APP_ID,
        "app_user": "dvc",
        "app_trans_id": f"{gmt7_yymmdd(env.now[0])}_RAW1",
        "app_time": epoch_ms(env.now[0]),
        "amount": 50_000,
        "item": "[]",
        "embed_data": json.dumps({"redirecturl": RETURN_URL}),
        "description": "Le phi",
        "bank_code": "",
    }
    fields.update(changes)
    fields["mac"] = hmac_hex(EMULATOR_KEY1, create_mac_data(fields), "sha256")
    answer: dict[str, Any] = env.client.post(
        f"{EMULATOR}/v2/create", json=fields, base_url=BASE_URL
    ).get_json()
    return answer


# ---- create (§3.2) ---------------------------------------------------------------------------------------


def test_create_answers_an_order_url_on_the_emulator(env: Env) -> None:
    redirect = env.provider.build_payment_request(payment_request(env))
    app_trans_id = f"{gmt7_yymmdd(env.now[0])}_GW261126ABC123"
    assert redirect.redirect_url == f"{BASE_URL}{EMULATOR}/pay/{app_trans_id}"
    assert redirect.provider_data["app_trans_id"] == app_trans_id
    assert redirect.provider_data["zp_trans_token"] == env.blueprint.orders[app_trans_id].zp_trans_token
    order = env.blueprint.orders[app_trans_id]
    assert (order.amount, order.app_user, order.callback_url) == (150_000, "dvc", NOTIFY_URL)
    assert order.preferred == ("vietqr",)
    assert order.redirect_url == RETURN_URL


def test_create_across_midnight_gmt7(env: Env) -> None:
    env.now[0] = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)  # 00:30 on 26 Nov in GMT+7
    assert create(env).endswith("/pay/261126_GW261126ABC123")
    # A request stamped 23:59 on 25 Nov GMT+7 reaches ZaloPay on the 26th: wrong day, refused (-401).
    late = datetime(2026, 11, 25, 16, 59, tzinfo=UTC)
    with pytest.raises(GatewayError, match="-401") as excinfo:
        env.provider.build_payment_request(payment_request(env, "GW2", created_at=late, expires_at=late))
    assert excinfo.type is GatewayError


def test_create_with_a_wrong_key1_is_refused(env: Env) -> None:
    other = make_provider(
        lambda: env.now[0],
        ZALOPAY_APP_ID=str(EMULATOR_APP_ID),
        ZALOPAY_KEY1="not-the-emulator-key1",
        ZALOPAY_KEY2=EMULATOR_KEY2,
        ZALOPAY_ENDPOINT=env.provider.endpoint,
    )
    with pytest.raises(GatewayError, match="-402") as excinfo:
        other.build_payment_request(payment_request(env))
    assert excinfo.type is GatewayError  # a definite refusal: the attempt fails
    assert env.blueprint.orders == {}


def test_create_for_another_app_is_refused(env: Env) -> None:
    assert raw_create(env, app_id=2553)["sub_return_code"] == -402


def test_tampered_create_is_refused(env: Env) -> None:
    fields: dict[str, Any] = {
        "app_id": EMULATOR_APP_ID,
        "app_user": "dvc",
        "app_trans_id": f"{gmt7_yymmdd(env.now[0])}_RAW1",
        "app_time": epoch_ms(env.now[0]),
        "amount": 50_000,
        "item": "[]",
        "embed_data": "{}",
        "description": "x",
    }
    fields["mac"] = hmac_hex(EMULATOR_KEY1, create_mac_data(fields), "sha256")
    fields["amount"] = 1
    answer = env.client.post(f"{EMULATOR}/v2/create", json=fields).get_json()
    assert (answer["return_code"], answer["sub_return_code"]) == (2, -402)
    del fields["mac"]
    assert env.client.post(f"{EMULATOR}/v2/create", json=fields).get_json()["sub_return_code"] == -402


def test_duplicate_app_trans_id_is_refused(env: Env) -> None:
    create(env)
    with pytest.raises(GatewayError, match="-68") as excinfo:
        create(env)
    assert excinfo.type is GatewayError


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 0},
        {"amount": "12.5"},
        {"app_user": ""},
        {"app_user": "u" * 51},
        {"app_time": -1},
        {"embed_data": "not json"},
        {"embed_data": "[]"},
        {"item": "{}"},
        {"description": "d" * 257},
        {"expire_duration_seconds": 299},
        {"expire_duration_seconds": 2_592_001},
        {"app_trans_id": "RAW1"},
        {"app_trans_id": "201231_RAW1"},
        {"app_trans_id": f"{'9' * 6}_{'R' * 34}"},
    ],
)
def test_signed_but_invalid_create_is_refused(env: Env, changes: dict[str, Any]) -> None:
    answer = raw_create(env, **changes)
    assert (answer["return_code"], answer["sub_return_code"]) == (2, -401)


def test_create_accepts_a_form_body(env: Env) -> None:
    fields = {
        "app_id": str(EMULATOR_APP_ID),
        "app_user": "dvc",
        "app_trans_id": f"{gmt7_yymmdd(env.now[0])}_FORM1",
        "app_time": str(epoch_ms(env.now[0])),
        "amount": "20000",
        "item": "[]",
        "embed_data": "{}",
        "description": "Le phi",
    }
    fields["mac"] = hmac_hex(EMULATOR_KEY1, create_mac_data(fields), "sha256")
    answer = env.client.post(f"{EMULATOR}/v2/create", data=fields, base_url=BASE_URL).get_json()
    assert answer["return_code"] == 1
    assert env.blueprint.orders[fields["app_trans_id"]].amount == 20_000


# ---- checkout page ----------------------------------------------------------------------------------------


def test_checkout_page_shows_the_order(env: Env) -> None:
    path = create(env)
    page = env.client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "150.000 VND" in html
    assert f"{gmt7_yymmdd(env.now[0])}_GW261126ABC123" in html
    assert "Le phi ho so Dang ky 12ABC" in html
    assert "vietqr" in html
    assert f'action="{path}"' in html
    for label in ("Thanh toán thành công", "Hủy giao dịch", 'name="viewport"'):
        assert label in html
    assert "<script" not in html


def test_checkout_page_escapes_untrusted_values(env: Env) -> None:
    answer = raw_create(env, description='<script>alert("x")</script>')
    assert answer["return_code"] == 1
    html = env.client.get(urlsplit(answer["order_url"]).path).get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_unknown_order_page(env: Env) -> None:
    assert env.client.get(f"{EMULATOR}/pay/261126_NOPE").status_code == 404


def test_unknown_outcome_is_refused(env: Env) -> None:
    resp = pay(env, "maybe")
    assert resp.status_code == 400
    assert env.callbacks() == []


# ---- pay -> callback + redirect (§3.3, §3.4) ---------------------------------------------------------------


def test_success_sends_a_verifiable_callback_and_redirects(env: Env) -> None:
    resp = pay(env, "success")
    [sent] = env.callbacks()
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.req_kwargs["timeout"] == emulator.CALLBACK_TIMEOUT_SECONDS  # type: ignore[attr-defined]
    n = env.verify(sent)
    assert n.outcome is Outcome.SUCCEEDED
    assert (n.reference, n.amount, n.result_code) == ("GW261126ABC123", 150_000, "1")
    assert n.provider_txn_id is not None
    assert n.provider_txn_id.startswith(gmt7_yymmdd(env.now[0]))
    assert n.paid_at == env.now[0]

    body = sent.body
    assert isinstance(body, bytes)
    outer = json.loads(body)
    assert outer["type"] == 1
    data = outer["data"]
    # Serialised once, compactly, and signed as that very string with key2.
    assert json.dumps(json.loads(data), separators=(",", ":")) == data
    assert outer["mac"] == hmac_hex(EMULATOR_KEY2, data, "sha256")
    payload = json.loads(data)
    assert list(payload) == list(Forge.signed_fields)
    assert payload["app_id"] == EMULATOR_APP_ID
    assert payload["embed_data"] == env.blueprint.orders[payload["app_trans_id"]].embed_data
    assert payload["channel"] == 38  # vietqr goes through the ZaloPay channel

    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(RETURN_URL + "&")  # the return URL already had a query
    returned = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    assert returned.pop("lang") == "vi"
    assert returned["status"] == "1"
    assert returned["amount"] == "150000"
    back = env.provider.verify_return(CallbackRequest("GET", returned, {}, b""))
    assert (back.outcome, back.reference, back.amount) == (Outcome.SUCCEEDED, "GW261126ABC123", 150_000)


def test_cancel_sends_no_callback_and_redirects_as_failed(env: Env) -> None:
    resp = pay(env, "cancel")
    assert env.callbacks() == []  # §3.3: ZaloPay only calls back for collected money
    assert resp.status_code == 302
    returned = dict(parse_qsl(urlsplit(resp.headers["Location"]).query, keep_blank_values=True))
    assert returned["status"] == "-49"
    assert env.provider.verify_return(CallbackRequest("GET", returned, {}, b"")).outcome is Outcome.FAILED
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.FAILED, "2/-329")


def test_callback_goes_to_the_app_default_without_callback_url(env: Env) -> None:
    pay(env, "success", notify_url="")
    assert env.callbacks() == []
    [sent] = env.callbacks(DEFAULT_IPN_URL)
    assert env.verify(sent).outcome is Outcome.SUCCEEDED


def test_method_sets_the_channel(env: Env) -> None:
    resp = pay(env, "success", method="CC")
    assert dict(parse_qsl(urlsplit(resp.headers["Location"]).query))["pmcid"] == "36"
    assert json.loads(json.loads(env.callbacks()[0].body or b"")["data"])["channel"] == 36


def test_a_paid_or_cancelled_order_cannot_be_paid_again(env: Env) -> None:
    pay(env, "success")
    path = f"{EMULATOR}/pay/{gmt7_yymmdd(env.now[0])}_GW261126ABC123"
    assert env.client.get(path).status_code == 400
    assert env.client.post(path, data={"outcome": "success"}).status_code == 400
    assert len(env.callbacks()) == 1
    pay(env, "cancel", reference="GW2")
    assert (
        env.client.post(
            f"{EMULATOR}/pay/{gmt7_yymmdd(env.now[0])}_GW2", data={"outcome": "success"}
        ).status_code
        == 400
    )


def test_an_expired_order_cannot_be_paid(env: Env) -> None:
    path = create(env)
    env.advance(minutes=16)
    resp = env.client.post(path, data={"outcome": "success"})
    assert resp.status_code == 400
    assert "hết hạn" in resp.get_data(as_text=True)
    assert env.callbacks() == []


def test_without_redirecturl_a_result_page_is_shown(env: Env) -> None:
    answer = raw_create(env, embed_data="{}")
    resp = env.client.post(urlsplit(answer["order_url"]).path, data={"outcome": "success"})
    assert resp.status_code == 200
    assert "Thanh toán thành công" in resp.get_data(as_text=True)
    assert len(env.callbacks(DEFAULT_IPN_URL)) == 1


def test_drop_fault_accepts_the_payment_without_a_callback(env: Env) -> None:
    env.blueprint.faults["drop"] = True
    resp = pay(env, "success")
    assert resp.status_code == 302
    assert env.callbacks() == []
    assert query(env).outcome is Outcome.SUCCEEDED  # the query covers the lost callback (§3.5)
    # The signed callback is kept so that a test can replay it.
    order = env.blueprint.orders[f"{gmt7_yymmdd(env.now[0])}_GW261126ABC123"]
    n = env.provider.verify_callback(CallbackRequest("POST", {}, {}, order.callback_body))
    assert n.outcome is Outcome.SUCCEEDED


def test_unreachable_callback_url_still_redirects(env: Env) -> None:
    env.mock.replace(responses.POST, NOTIFY_URL, body=requests.ConnectionError("refused"))
    resp = pay(env, "success")
    assert resp.status_code == 302
    assert query(env).outcome is Outcome.SUCCEEDED


# ---- query (§3.5) ----------------------------------------------------------------------------------------


def test_query_states(env: Env) -> None:
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "2/-401")  # never created
    create(env)
    assert query(env).outcome is Outcome.PENDING  # created, not paid
    env.client.post(f"{EMULATOR}/pay/{gmt7_yymmdd(env.now[0])}_GW261126ABC123", data={"outcome": "success"})
    [sent] = env.callbacks()
    paid = query(env)
    assert paid.outcome is Outcome.SUCCEEDED
    assert paid.amount == 150_000
    assert paid.provider_txn_id == env.verify(sent).provider_txn_id
    assert paid.paid_at == env.now[0]


def test_query_of_an_expired_order_is_failed(env: Env) -> None:
    create(env)
    env.advance(minutes=15, seconds=1)
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.FAILED, "2/-54")


def test_query_with_a_wrong_key1_is_unknown(env: Env) -> None:
    pay(env, "success")
    other = make_provider(
        lambda: env.now[0],
        ZALOPAY_APP_ID=str(EMULATOR_APP_ID),
        ZALOPAY_KEY1="not-the-emulator-key1",
        ZALOPAY_KEY2=EMULATOR_KEY2,
        ZALOPAY_ENDPOINT=env.provider.endpoint,
    )
    app_trans_id = f"{gmt7_yymmdd(env.now[0])}_GW261126ABC123"
    n = other.query(
        QueryRequest("GW261126ABC123", 1, env.now[0], "x", provider_data={"app_trans_id": app_trans_id})
    )
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "2/-402")


@pytest.mark.parametrize(
    ("faults", "result_code"), [({"status": 503}, "http_503"), ({"garbage": True}, "garbage")]
)
def test_api_faults_make_query_unknown(env: Env, faults: dict[str, Any], result_code: str) -> None:
    pay(env, "success")
    env.blueprint.faults.update(faults)
    n = query(env)
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, result_code)
    env.blueprint.faults.clear()
    assert query(env).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize("faults", [{"status": 503}, {"garbage": True}])
def test_api_faults_make_create_unavailable(env: Env, faults: dict[str, Any]) -> None:
    env.blueprint.faults.update(faults)
    with pytest.raises(ProviderUnavailable):
        create(env)


def test_slow_fault_sleeps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(emulator.time, "sleep", slept.append)
    env.blueprint.faults["slow"] = 2.5
    query(env)
    create(env)
    assert slept == [2.5, 2.5]


# ---- refunds (§3.6) --------------------------------------------------------------------------------------


def paid_txn(env: Env, amount: int = 150_000) -> str:
    pay(env, "success", amount=amount)
    txn = env.verify(env.callbacks()[-1]).provider_txn_id
    assert txn is not None
    return txn


def refund_request(env: Env, txn: str | None, amount: int, reference: str = "RF1") -> RefundRequest:
    return RefundRequest(
        reference=reference,
        payment_reference="GW261126ABC123",
        payment_txn_id=txn,
        amount=amount,
        payment_amount=150_000,
        already_refunded=0,
        reason="Hoàn phí hồ sơ",
        actor="finance@example.vn",
        created_at=env.now[0],
        payment_created_at=env.now[0],
    )


def test_small_refund_succeeds_at_once(env: Env) -> None:
    txn = paid_txn(env)
    result = env.provider.refund(refund_request(env, txn, 50_000))
    assert (result.outcome, result.result_code) == (Outcome.SUCCEEDED, "1")
    assert result.provider_reference == f"{gmt7_yymmdd(env.now[0])}_{EMULATOR_APP_ID}_RF1"
    assert isinstance(result.raw["refund_id"], int)
    # The same m_refund_id again is the same refund (idempotent), not a second one.
    again = env.provider.refund(refund_request(env, txn, 50_000))
    assert (again.outcome, again.raw["refund_id"]) == (Outcome.SUCCEEDED, result.raw["refund_id"])
    assert env.provider.query_refund(refund_request(env, txn, 50_000)).outcome is Outcome.SUCCEEDED


def test_large_refund_is_processing_until_polled(env: Env) -> None:
    txn = paid_txn(env, amount=2_000_000)
    request = refund_request(env, txn, 1_000_000)
    result = env.provider.refund(request)
    assert (result.outcome, result.result_code) == (Outcome.PENDING, "3")
    env.advance(days=1)  # polled the next day: the same m_refund_id is rebuilt from created_at
    polled = env.provider.query_refund(request)
    assert (polled.outcome, polled.provider_reference) == (Outcome.SUCCEEDED, result.provider_reference)
    assert len(env.blueprint.refunds[result.provider_reference or ""].queries) == 1


@pytest.mark.parametrize(("txn", "amount"), [("999", 10_000), (None, 150_001)])
def test_refund_refusals_are_failed(env: Env, txn: str | None, amount: int) -> None:
    paid = paid_txn(env)
    result = env.provider.refund(refund_request(env, txn or paid, amount))
    assert (result.outcome, result.result_code) == (Outcome.FAILED, "2/-401")


def test_refunds_cannot_exceed_the_payment(env: Env) -> None:
    txn = paid_txn(env)
    assert env.provider.refund(refund_request(env, txn, 100_000, "RF1")).outcome is Outcome.SUCCEEDED
    assert env.provider.refund(refund_request(env, txn, 50_001, "RF2")).outcome is Outcome.FAILED
    assert env.provider.refund(refund_request(env, txn, 50_000, "RF3")).outcome is Outcome.SUCCEEDED


def test_refund_with_a_bad_mac_is_failed(env: Env) -> None:
    txn = paid_txn(env)
    fields: dict[str, Any] = {
        "app_id": EMULATOR_APP_ID,
        "m_refund_id": f"{gmt7_yymmdd(env.now[0])}_{EMULATOR_APP_ID}_RF9",
        "zp_trans_id": txn,
        "amount": 1000,
        "timestamp": epoch_ms(env.now[0]),
        "description": "x",
    }
    fields["mac"] = hmac_hex(EMULATOR_KEY1, refund_mac_data(fields), "sha256")
    good = env.client.post(f"{EMULATOR}/v2/refund", json=fields).get_json()
    assert good["return_code"] == 1
    forged = {**fields, "m_refund_id": fields["m_refund_id"] + "0", "amount": 2000}
    assert env.client.post(f"{EMULATOR}/v2/refund", json=forged).get_json()["sub_return_code"] == -402
    bad_id = {**fields, "m_refund_id": "RF9"}
    bad_id["mac"] = fields["mac"]  # m_refund_id is not in the MAC: the format check catches it
    assert env.client.post(f"{EMULATOR}/v2/refund", json=bad_id).get_json()["sub_return_code"] == -401


def test_query_refund_of_an_unknown_refund_is_unknown(env: Env) -> None:
    result = env.provider.query_refund(refund_request(env, "1", 1000, "NEVER"))
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "2/-401")


def test_refund_faults_are_unknown(env: Env) -> None:
    txn = paid_txn(env)
    env.blueprint.faults["status"] = 503
    result = env.provider.refund(refund_request(env, txn, 1000))
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "http_503")
    assert env.provider.query_refund(refund_request(env, txn, 1000)).outcome is Outcome.UNKNOWN


# ---- Forge (contract suite) -----------------------------------------------------------------------------


@pytest.fixture
def forge(env: Env) -> Forge:
    return Forge(env.provider, EMULATOR_KEY2)


def test_forge_notification_verifies(env: Env, forge: Forge) -> None:
    request = forge.notification(
        reference="GW1", amount=75_000, result_code="1", provider_txn_id="261126000000001"
    )
    assert request.method == "POST"
    n = env.provider.verify_callback(request)
    assert (n.reference, n.amount, n.provider_txn_id) == ("GW1", 75_000, "261126000000001")
    assert n.outcome is forge.result_codes[forge.success_code]
    assert json.loads(json.loads(request.body)["data"])["zp_trans_id"] == 261126000000001


@pytest.mark.parametrize("txn", ["TXN-42", "0042"])
def test_forge_keeps_non_numeric_transaction_ids(env: Env, forge: Forge, txn: str) -> None:
    request = forge.notification(reference="GW1", amount=1, result_code="1", provider_txn_id=txn)
    assert env.provider.verify_callback(request).provider_txn_id == txn


def test_forge_every_result_code_maps(env: Env, forge: Forge) -> None:
    for code, outcome in forge.result_codes.items():
        n = env.provider.verify_callback(
            forge.notification(reference="GW1", amount=1000, result_code=code, provider_txn_id="7")
        )
        assert (n.outcome, n.result_code) == (outcome, code)
    with pytest.raises(ValueError, match="paid only"):
        forge.notification(reference="GW1", amount=1, result_code="2", provider_txn_id="7")


@pytest.mark.parametrize("field", Forge.signed_fields)
def test_forge_tamper_changes_data_but_not_mac(env: Env, forge: Forge, field: str) -> None:
    request = forge.notification(reference="GW1", amount=1000, result_code="1", provider_txn_id="7")
    tampered = forge.tamper(request, field)
    before, after = json.loads(request.body), json.loads(tampered.body)
    assert after["mac"] == before["mac"]
    assert json.loads(after["data"])[field] != json.loads(before["data"])[field]
    with pytest.raises(SignatureVerificationError):
        env.provider.verify_callback(tampered)


def test_forge_strip_signature_and_wrong_key(env: Env, forge: Forge) -> None:
    request = forge.notification(reference="GW1", amount=1000, result_code="1", provider_txn_id="7")
    stripped = forge.strip_signature(request)
    assert "mac" not in json.loads(stripped.body)
    with pytest.raises(SignatureVerificationError):
        env.provider.verify_callback(stripped)
    wrong = forge.notification(
        reference="GW1", amount=1000, result_code="1", provider_txn_id="7", secret="other"
    )
    with pytest.raises(SignatureVerificationError):
        env.provider.verify_callback(wrong)


def test_callback_body_helper_signs_the_serialised_string() -> None:
    body = callback_body("k", {"b": 1, "a": "x"})
    outer = json.loads(body)
    assert outer["data"] == '{"b":1,"a":"x"}'
    assert outer["mac"] == hmac_hex("k", '{"b":1,"a":"x"}', "sha256")
    assert outer["type"] == 1


def test_blueprint_is_reachable_by_name(env: Env) -> None:
    # Fault switches are reached through the app once the factory has mounted the emulator.
    assert env.app.blueprints["emulator_zalopay"] is env.blueprint

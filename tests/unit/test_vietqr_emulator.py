"""The VietQR "banking app" emulator against the real adapter: scan, pay, the bank's notification (§4)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import flask
import pytest
import requests
import responses
from flask.testing import FlaskClient

from gateway.settings import ProviderCredentials
from providers.base import CallbackRequest, Notification, Outcome, PaymentRequest
from providers.emqr import build_vietqr, parse_vietqr
from providers.emulators import vietqr as emulator
from providers.emulators.vietqr import Forge, VietqrEmulatorBlueprint, create_blueprint
from providers.vietqr import EMULATOR_ACCOUNT_NO, EMULATOR_BANK_BIN, VietqrProvider

BASE_URL = "http://gateway.test"
IPN_URL = "http://gateway.test/callbacks/vietqr"
REFERENCE = "GW261125ABC123"
ACK_OK = '{"code":"00","message":"ok"}'


@dataclass
class Env:
    app: flask.Flask
    provider: VietqrProvider
    blueprint: VietqrEmulatorBlueprint
    client: FlaskClient
    mock: responses.RequestsMock

    def notifications(self) -> list[CallbackRequest]:
        return [
            CallbackRequest(
                method=c.request.method or "",
                args={},
                headers=dict(c.request.headers),
                body=c.request.body if isinstance(c.request.body, bytes) else str(c.request.body).encode(),
            )
            for c in self.mock.calls
            if c.request.url == IPN_URL
        ]

    def verify(self, request: CallbackRequest) -> Notification:
        return self.provider.verify_callback(request)


@pytest.fixture(scope="module")
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One instance folder for the module: the emulator bank's RSA key is generated once.
    return tmp_path_factory.mktemp("instance")


@pytest.fixture
def env(instance_path: Path) -> Iterator[Env]:
    provider = VietqrProvider(
        ProviderCredentials(code="vietqr", values={}, emulated=True, instance_path=str(instance_path)),
        base_url=BASE_URL,
        session=requests.Session(),
    )
    blueprint = create_blueprint(provider, ipn_url=IPN_URL, http=requests.Session())
    app = flask.Flask(__name__)
    app.register_blueprint(blueprint, url_prefix="/_emulator/vietqr")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(IPN_URL, body=ACK_OK, content_type="application/json")
        yield Env(app, provider, blueprint, app.test_client(), mock)


def qr_payload(env: Env, amount: int = 58_000) -> str:
    now = datetime.now(UTC)
    redirect = env.provider.build_payment_request(
        PaymentRequest(
            reference=REFERENCE,
            amount=amount,
            order_info="Lệ phí hộ tịch",
            return_url=f"{BASE_URL}/return/vietqr",
            notify_url=IPN_URL,
            client_ip="203.0.113.10",
            locale="vi",
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
    )
    assert redirect.qr_payload is not None
    return redirect.qr_payload


def scan(env: Env, payload: str) -> Any:
    return env.client.get("/_emulator/vietqr/scan?payload=" + quote(payload, safe=""))


def pay(env: Env, payload: str, choice: str, amount: str = "") -> Any:
    return env.client.post(
        "/_emulator/vietqr/pay", data={"payload": payload, "choice": choice, "amount": amount}
    )


# ---- scanning ---------------------------------------------------------------------------------------------


def test_scan_form(env: Env) -> None:
    page = env.client.get("/_emulator/vietqr/scan")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<textarea id="payload" name="payload"' in html
    assert 'action="/_emulator/vietqr/scan"' in html
    assert "<script" not in html


def test_scan_shows_the_transfer(env: Env) -> None:
    page = scan(env, qr_payload(env))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "58.000 VND" in html
    assert f"{env.provider.bank_name} ({EMULATOR_BANK_BIN})" in html
    assert EMULATOR_ACCOUNT_NO in html
    assert env.provider.account_name in html
    assert REFERENCE in html
    assert 'value="exact"' in html
    assert 'value="other"' in html
    assert 'value="cancel"' in html
    assert 'action="/_emulator/vietqr/pay"' in html
    assert "<script" not in html


def test_bad_crc_is_refused_visibly(env: Env) -> None:
    payload = qr_payload(env)
    bad = payload[:-4] + ("0000" if payload[-4:] != "0000" else "1111")
    page = scan(env, bad)
    assert page.status_code == 400
    assert "CRC mismatch" in page.get_data(as_text=True)
    assert "Mã QR không hợp lệ" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # providers.md §7: a VNPAY-QR merchant code is not a bank transfer QR.
        (
            "00020101021126280010A0000007750110010531314453037045408210900005802VN5910CELLPHONES"
            "62600312CPSHN ONLINE0517021908061613127850705ONLHN0810CellphoneS63047685",
            "tag 38",
        ),
        # providers.md §7: a valid VietQR, but to an account the emulator bank does not hold.
        (
            "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN"
            "62160812chuyen khoan6304722F",
            "không thuộc ngân hàng giả lập",
        ),
        ("not a qr", "Unreadable VietQR"),
    ],
)
def test_unusable_qr_is_refused(env: Env, payload: str, message: str) -> None:
    page = scan(env, payload)
    assert page.status_code == 400
    assert message in page.get_data(as_text=True)


def test_untrusted_values_are_escaped(env: Env) -> None:
    payload = build_vietqr(EMULATOR_BANK_BIN, EMULATOR_ACCOUNT_NO, 1000, '<b onclick="x">hi</b>')
    html = scan(env, payload).get_data(as_text=True)
    assert "<b onclick" not in html
    assert "&lt;b onclick=" in html


# ---- paying ---------------------------------------------------------------------------------------------


def test_pay_exact_amount_sends_a_verifiable_credit(env: Env) -> None:
    payload = qr_payload(env)
    page = pay(env, payload, "exact")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Chuyển khoản thành công" in html
    assert f'href="{BASE_URL}/pay/qr/{REFERENCE}"' in html

    [request] = env.notifications()
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Signature"]
    body = json.loads(request.body)
    assert body["direction"] == "credit"
    assert body["status"] == "success"
    assert body["currency"] == "VND"
    assert body["account_no"] == EMULATOR_ACCOUNT_NO
    assert body["amount"] == 58_000
    assert body["remittance"] == f"{REFERENCE} chuyen tien"
    assert "reference" not in body  # a plain transfer only has the remittance text
    assert re.fullmatch(r"FT[0-9]{12}", body["transaction_id"])
    assert datetime.fromisoformat(body["transacted_at"]).utcoffset() == timedelta(hours=7)
    assert body["transaction_id"] in html

    n = env.verify(request)
    assert (n.outcome, n.reference, n.amount) == (Outcome.SUCCEEDED, REFERENCE, 58_000)
    assert n.provider_txn_id == body["transaction_id"]
    [transfer] = env.blueprint.transfers
    assert transfer.delivered is True
    assert transfer.reference == REFERENCE


def test_pay_a_different_amount(env: Env) -> None:
    page = pay(env, qr_payload(env), "other", "50000")
    assert page.status_code == 200
    assert "50.000 VND" in page.get_data(as_text=True)
    [request] = env.notifications()
    n = env.verify(request)
    # The adapter reports what was credited; the pipeline records the difference (BAD_AMOUNT).
    assert (n.outcome, n.amount) == (Outcome.SUCCEEDED, 50_000)


@pytest.mark.parametrize("amount", ["", "0", "-5", "50.000", "1e5", "12345678901234", "５０"])
def test_invalid_other_amount_is_refused(env: Env, amount: str) -> None:
    page = pay(env, qr_payload(env), "other", amount)
    assert page.status_code == 400
    assert "Số tiền không hợp lệ" in page.get_data(as_text=True)
    assert env.notifications() == []


def test_cancel_sends_nothing(env: Env) -> None:
    page = pay(env, qr_payload(env), "cancel")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Đã hủy giao dịch" in html
    assert f'href="{BASE_URL}/pay/qr/{REFERENCE}"' in html
    assert env.notifications() == []
    assert env.blueprint.transfers == []


@pytest.mark.parametrize("choice", ["", "maybe"])
def test_unknown_choice_is_refused(env: Env, choice: str) -> None:
    assert pay(env, qr_payload(env), choice).status_code == 400
    assert env.notifications() == []


def test_tampered_hidden_payload_is_refused(env: Env) -> None:
    payload = qr_payload(env).replace("540558000", "540550000")
    page = pay(env, payload, "exact")
    assert page.status_code == 400
    assert "CRC mismatch" in page.get_data(as_text=True)
    assert env.notifications() == []


# ---- /scan/<reference> and static QRs -------------------------------------------------------------------


def test_scan_reference_without_a_scanned_qr_gives_a_static_qr(env: Env) -> None:
    resp = env.client.get(f"/_emulator/vietqr/scan/{REFERENCE}")
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/_emulator/vietqr/scan"
    page = env.client.get(f"{location.path}?{location.query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'value="exact"' not in html  # a static QR: the payer types the amount
    assert REFERENCE in html

    payload = re.search(r'name="payload" value="([^"]+)"', html)
    assert payload is not None
    qr = parse_vietqr(payload.group(1))
    assert (qr.dynamic, qr.amount, qr.purpose) == (False, None, REFERENCE)
    assert pay(env, qr_payload_static(env), "exact").status_code == 400  # nothing to pay "exactly"
    assert pay(env, payload.group(1), "other", "58000").status_code == 200
    [request] = env.notifications()
    assert env.verify(request).amount == 58_000


def qr_payload_static(env: Env) -> str:
    return build_vietqr(env.provider.bank_bin, env.provider.account_no, None, REFERENCE)


def test_scan_reference_after_a_scan_reopens_that_qr(env: Env) -> None:
    payload = qr_payload(env)
    scan(env, payload)
    resp = env.client.get(f"/_emulator/vietqr/scan/{REFERENCE.lower()}")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("?payload=" + quote(payload, safe=""))


def test_scan_reference_refuses_nonsense(env: Env) -> None:
    assert env.client.get("/_emulator/vietqr/scan/" + "X" * 30).status_code == 400


# ---- faults and delivery ------------------------------------------------------------------------------


def test_drop_fault_keeps_the_transfer_for_replay(env: Env) -> None:
    env.blueprint.faults["drop"] = True
    assert pay(env, qr_payload(env), "exact").status_code == 200
    assert env.notifications() == []
    [transfer] = env.blueprint.transfers
    assert transfer.delivered is False
    assert env.verify(transfer.callback_request()).outcome is Outcome.SUCCEEDED


def test_slow_fault_delays_the_notification(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(emulator.time, "sleep", slept.append)
    env.blueprint.faults["slow"] = 2.5
    pay(env, qr_payload(env), "exact")
    assert slept == [2.5]
    assert len(env.notifications()) == 1


def test_unreachable_gateway_still_shows_the_transfer(env: Env) -> None:
    env.mock.replace(responses.POST, IPN_URL, body=requests.ConnectionError("refused"))
    page = pay(env, qr_payload(env), "exact")
    assert page.status_code == 200
    [transfer] = env.blueprint.transfers
    assert transfer.delivered is False


def test_gateway_error_answer_is_not_delivered(env: Env) -> None:
    env.mock.replace(responses.POST, IPN_URL, status=500, body='{"code":"99","message":"error, retry"}')
    pay(env, qr_payload(env), "exact")
    assert env.blueprint.transfers[0].delivered is False


def test_blueprint_is_reachable_by_name(env: Env) -> None:
    assert env.app.blueprints["emulator_vietqr"] is env.blueprint


# ---- the forge, with the emulator bank's key --------------------------------------------------------------


def test_forge_with_the_emulator_key(env: Env) -> None:
    forge = Forge(env.provider, env.provider.emulator_private_key_pem().decode())
    request = forge.notification(
        reference=REFERENCE, amount=58_000, result_code="success", provider_txn_id="FT1"
    )
    n = env.verify(request)
    assert (n.outcome, n.reference, n.amount, n.provider_txn_id) == (
        Outcome.SUCCEEDED,
        REFERENCE,
        58_000,
        "FT1",
    )
    assert json.loads(request.body)["reference"] == REFERENCE

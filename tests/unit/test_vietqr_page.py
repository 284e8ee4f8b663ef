"""The citizen's VietQR page ``/pay/qr/<reference>`` through the app factory (providers.md §4, contract §5).

Needs the vietqr provider in ``providers.REGISTRY`` and the ``vietqr_page`` blueprint registered by the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.settings import Settings
from providers.emqr import parse_vietqr
from providers.vietqr import EMULATOR_ACCOUNT_NAME, EMULATOR_ACCOUNT_NO, EMULATOR_BANK_NAME
from tests.conftest import BASE_URL, FakeClock, PortalKey
from tests.helpers import create_order, start_attempt

ORDER_TOTAL = 58_000  # tests/conftest.py order_body: 50 000 + 8 000


@pytest.fixture(scope="module")
def provider_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The emulator bank's RSA key is generated once for the module, never into the working directory.
    return tmp_path_factory.mktemp("provider-instance")


@pytest.fixture
def settings(settings: Settings, provider_instance: Path) -> Settings:
    folder = str(provider_instance)
    providers = {code: replace(creds, instance_path=folder) for code, creds in settings.providers.items()}
    return settings.with_overrides(providers=providers)


def qr_attempt(client: FlaskClient, portal: PortalKey) -> tuple[dict[str, Any], dict[str, Any]]:
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"], provider="vietqr")
    return order, attempt


def get_page(client: FlaskClient, url: str, status: int = 200) -> tuple[str, Any]:
    resp = client.get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"
    return resp.get_data(as_text=True), resp


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_attempt_hands_out_the_qr_and_the_page(client: FlaskClient, portal: PortalKey) -> None:
    _, attempt = qr_attempt(client, portal)
    reference = attempt["reference"]
    assert attempt["redirect_url"] == f"{BASE_URL}/pay/qr/{reference}"
    qr = parse_vietqr(attempt["qr_payload"])
    assert (qr.amount, qr.purpose, qr.account) == (ORDER_TOTAL, reference, EMULATOR_ACCOUNT_NO)


def test_page_shows_qr_and_transfer_details(client: FlaskClient, portal: PortalKey) -> None:
    order, attempt = qr_attempt(client, portal)
    reference = attempt["reference"]
    html, resp = get_page(client, f"/pay/qr/{reference}")

    assert '<html lang="vi">' in html
    assert "Chuyển khoản bằng mã VietQR" in html
    assert "đang chờ chuyển khoản" in html
    assert re.search(r"<svg[^>]*viewBox=", html)  # the QR, inline
    assert "58.000 ₫" in html
    for field_id, value in [
        ("f-bank", EMULATOR_BANK_NAME),
        ("f-account", EMULATOR_ACCOUNT_NO),
        ("f-name", EMULATOR_ACCOUNT_NAME),
        ("f-amount", str(ORDER_TOTAL)),
        ("f-content", reference),
    ]:
        assert f'<input id="{field_id}" type="text" value="{value}" readonly>' in html
        # Copy buttons are hidden until the script shows them: without JavaScript no dead button.
        assert f'data-copy="{field_id}"' in html
    assert html.count(" hidden>Sao chép</button>") == 5
    assert f'href="/pay/{order["id"]}"' in html

    # No external asset: nothing is loaded from anywhere.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "<link" not in html
    assert 'src="' not in html

    # The page's own style and script run by hash; nothing else may.
    csp = resp.headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    script = re.search(r"<script>(.*?)</script>", html, re.S)
    assert style is not None
    assert script is not None
    assert f"style-src {_sha256(style.group(1))}" in csp
    assert f"script-src {_sha256(script.group(1))}" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert ' style="' not in html  # inline style attributes would be blocked by the CSP


def test_page_in_english(client: FlaskClient, portal: PortalKey) -> None:
    _, attempt = qr_attempt(client, portal)
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}?lang=en")
    assert '<html lang="en">' in html
    assert "Pay by VietQR bank transfer" in html
    assert "waiting for your transfer" in html
    assert ">Copy</button>" in html
    assert "Tiếng Việt" in html  # the way back to Vietnamese


def test_unknown_reference_is_404(client: FlaskClient) -> None:
    get_page(client, "/pay/qr/GW000000AAAAAA", status=404)


def test_another_providers_reference_is_404(client: FlaskClient, portal: PortalKey) -> None:
    order = create_order(client, portal)
    vnpay = start_attempt(client, portal, order["id"], provider="vnpay")
    get_page(client, f"/pay/qr/{vnpay['reference']}", status=404)


def test_emulator_link_only_when_emulators_are_on(app: Flask, client: FlaskClient, portal: PortalKey) -> None:
    _, attempt = qr_attempt(client, portal)
    link = "/_emulator/vietqr/scan?payload=" + quote(attempt["qr_payload"], safe="")
    app.config["GATEWAY_EMULATORS"] = True
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "Mở ứng dụng ngân hàng giả lập" in html
    assert f'href="{link}"' in html.replace("&amp;", "&")
    app.config["GATEWAY_EMULATORS"] = False
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "/_emulator/" not in html


def test_citizen_choice_leads_to_the_qr_page(client: FlaskClient, portal: PortalKey) -> None:
    order = create_order(client, portal)
    resp = client.post(f"/pay/{order['id']}", data={"provider": "vietqr"})
    assert resp.status_code == 303
    assert re.fullmatch(rf"{BASE_URL}/pay/qr/GW[0-9]{{6}}[0-9A-Z]{{6}}", resp.headers["Location"])


def _pay_in_emulator(client: FlaskClient, payload: str, choice: str, amount: str = "") -> str:
    resp = client.post("/_emulator/vietqr/pay", data={"payload": payload, "choice": choice, "amount": amount})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def test_paid_through_the_emulator_bank(client: FlaskClient, portal: PortalKey) -> None:
    order, attempt = qr_attempt(client, portal)
    done = _pay_in_emulator(client, attempt["qr_payload"], "exact")
    assert f'href="{BASE_URL}/pay/qr/{attempt["reference"]}"' in done

    api = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert api["status"] == "paid"
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "đã thanh toán" in html
    assert "<svg" not in html  # no QR that would invite a second transfer
    assert "<input" not in html


def test_a_different_amount_is_not_paid(client: FlaskClient, portal: PortalKey) -> None:
    order, attempt = qr_attempt(client, portal)
    _pay_in_emulator(client, attempt["qr_payload"], "other", "50000")
    api = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert api["status"] != "paid"
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "đang chờ chuyển khoản" in html


def test_cancelled_order_shows_no_qr(client: FlaskClient, portal: PortalKey) -> None:
    order, attempt = qr_attempt(client, portal)
    resp = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=portal.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "đã hủy" in html
    assert "<svg" not in html


def test_past_the_deadline_the_qr_is_withdrawn(
    client: FlaskClient, portal: PortalKey, clock: FakeClock
) -> None:
    _, attempt = qr_attempt(client, portal)
    clock.advance(seconds=3600)  # order_body: expires_in 3600; the running transfer keeps a grace period
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "đang chờ ngân hàng xác nhận" in html
    assert "Vui lòng không chuyển khoản thêm" in html
    assert "<svg" not in html
    clock.advance(days=2)  # past the grace: the order expires
    html, _ = get_page(client, f"/pay/qr/{attempt['reference']}")
    assert "đã hết hạn" in html
    assert "<svg" not in html

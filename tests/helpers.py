"""Test helpers that speak the providers' wire protocols (signed with the emulator secrets)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from providers.emulators.vnpay import build_ipn_query
from providers.vnpay import EMULATOR_HASH_SECRET, EMULATOR_TMN_CODE
from tests.conftest import PortalKey, order_body


def create_order(client: FlaskClient, portal: PortalKey, **overrides: Any) -> dict[str, Any]:
    r = client.post("/api/v1/orders", json=order_body(**overrides), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def start_attempt(
    client: FlaskClient, portal: PortalKey, order_id: str, provider: str = "vnpay"
) -> dict[str, Any]:
    r = client.post(
        f"/api/v1/orders/{order_id}/attempts", json={"provider": provider}, headers=portal.headers
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def vnpay_ipn_params(reference: str, amount: int, **overrides: str) -> dict[str, str]:
    """The parameter set VNPAY sends to the IPN URL (providers.md §1.5)."""
    params = {
        "vnp_TmnCode": EMULATOR_TMN_CODE,
        "vnp_Amount": str(amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": "VNP14422574",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": "Thanh toan ho so",
        "vnp_PayDate": "20261125100500",
        "vnp_ResponseCode": "00",
        "vnp_TransactionNo": "14422574",
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": reference,
    }
    params.update(overrides)
    return params


def vnpay_ipn_query(
    reference: str, amount: int, *, secret: str = EMULATOR_HASH_SECRET, **overrides: str
) -> str:
    return build_ipn_query(secret, vnpay_ipn_params(reference, amount, **overrides))


def pay_with_vnpay_emulator(client: FlaskClient, attempt: dict[str, Any], outcome: str = "success") -> None:
    """Drive the VNPAY emulator like a citizen: open the pay page, press a button (it sends the IPN)."""
    from urllib.parse import urlsplit

    url = urlsplit(attempt["redirect_url"])
    page = client.get(f"{url.path}?{url.query}")
    assert page.status_code == 200, page.get_data(as_text=True)
    done = client.post("/_emulator/vnpay/paymentv2/pay", data={"query": url.query, "outcome": outcome})
    assert done.status_code == 302, done.get_data(as_text=True)


def paid_order(client: FlaskClient, portal: PortalKey, **overrides: Any) -> dict[str, Any]:
    order = create_order(client, portal, **overrides)
    attempt = start_attempt(client, portal, order["id"])
    pay_with_vnpay_emulator(client, attempt)
    body = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert body["status"] == "paid", body
    return body

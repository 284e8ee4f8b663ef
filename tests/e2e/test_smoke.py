from __future__ import annotations

from tests.conftest import order_body


def test_create_and_read_order(client, portal):
    r = client.post("/api/v1/orders", json=order_body(), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    order = r.get_json()
    assert order["amount"] == 58000
    assert order["status"] == "pending"
    assert order["checkout_url"] == f"http://gateway.test/pay/{order['id']}"
    r2 = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers)
    assert r2.status_code == 200
    assert r2.get_json()["id"] == order["id"]

"""Refunds through the VNPAY emulator's refund API (contract §4, providers.md §1.9)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.storage.models import OutboxEvent, Refund
from tests.conftest import count_rows
from tests.helpers import create_order, paid_order


def refund(client, portal, order_id, amount, reason="Hồ sơ bị từ chối", key=None):
    headers = dict(portal.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/api/v1/orders/{order_id}/refunds", json={"amount": amount, "reason": reason}, headers=headers
    )


def test_partial_then_full_refund(client, portal, sessions):
    order = paid_order(client, portal)
    r = refund(client, portal, order["id"], 20000)
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert body["status"] == "succeeded"
    assert body["amount"] == 20000
    assert body["provider_reference"]
    state = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert (state["status"], state["refunded_amount"]) == ("partially_refunded", 20000)

    r2 = refund(client, portal, order["id"], 38000)
    assert r2.status_code == 201
    state = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert (state["status"], state["refunded_amount"]) == ("refunded", 58000)
    with sessions() as s:
        types = list(s.scalars(select(OutboxEvent.type).where(OutboxEvent.order_id == order["id"])))
    assert types.count("order.refunded") == 2


def test_over_refund_is_409_and_writes_nothing(client, portal, engine):
    order = paid_order(client, portal)
    assert refund(client, portal, order["id"], 50000).status_code == 201
    before = count_rows(engine)
    r = refund(client, portal, order["id"], 8001)
    assert r.status_code == 409
    assert r.mimetype == "application/problem+json"
    assert "amount" in r.get_json()["errors"]
    assert count_rows(engine) == before


def test_unpaid_order_cannot_be_refunded(client, portal, engine):
    order = create_order(client, portal)
    before = count_rows(engine)
    assert refund(client, portal, order["id"], 1000).status_code == 409
    assert count_rows(engine) == before


@pytest.mark.parametrize("amount", [0, -5, 100.5, "1000", True, None])
def test_bad_amount_is_422(client, portal, engine, amount):
    order = paid_order(client, portal)
    before = count_rows(engine)
    r = refund(client, portal, order["id"], amount)
    assert r.status_code == 422
    assert "amount" in r.get_json()["errors"]
    assert count_rows(engine) == before


def test_foreign_order_is_404(client, portal, other_portal):
    order = paid_order(client, portal)
    assert refund(client, other_portal, order["id"], 1000).status_code == 404


def test_idempotency_key_replays_and_refuses_other_bodies(client, portal, sessions):
    order = paid_order(client, portal)
    first = refund(client, portal, order["id"], 10000, key="rf-1")
    again = refund(client, portal, order["id"], 10000, key="rf-1")
    assert first.status_code == again.status_code == 201
    assert first.get_data() == again.get_data()
    other = refund(client, portal, order["id"], 12000, key="rf-1")
    assert other.status_code == 409
    with sessions() as s:
        assert len(list(s.scalars(select(Refund)))) == 1


def test_provider_down_leaves_the_refund_pending_and_reserved(client, portal, app, sessions):
    order = paid_order(client, portal)
    app.blueprints["emulator_vnpay"].faults["status"] = 503
    r = refund(client, portal, order["id"], 58000)
    assert r.status_code == 201
    assert r.get_json()["status"] == "pending"  # internally unknown: never "failed" on a 503
    with sessions() as s:
        assert s.scalars(select(Refund.status)).one() == "unknown"
    # The unknown refund still holds its amount: nothing more can be refunded meanwhile.
    app.blueprints["emulator_vnpay"].faults.clear()
    assert refund(client, portal, order["id"], 1000).status_code == 409
    state = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert state["status"] == "paid"

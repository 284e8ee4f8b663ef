"""Stuck-payment recovery and the expiry sweep, driven by the VNPAY emulator's querydr (issue 5.4, 5.5)."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from gateway.jobs.tasks import expire_orders, janitor, purge_idempotency_keys
from gateway.storage.models import AuditLog, IdempotencyRecord, OutboxEvent, PaymentAttempt
from tests.helpers import create_order, start_attempt


def svc(app):
    return app.extensions["gateway"]


def lose_ipns(app) -> None:
    """The citizen pays, but VNPAY's IPN never reaches us."""
    app.blueprints["emulator_vnpay"].ipn_url = "http://127.0.0.1:9/callbacks/vnpay"


def pay_at_emulator(client, attempt, outcome="success"):
    url = urlsplit(attempt["redirect_url"])
    assert client.get(f"{url.path}?{url.query}").status_code == 200
    assert (
        client.post(
            "/_emulator/vnpay/paymentv2/pay", data={"query": url.query, "outcome": outcome}
        ).status_code
        == 302
    )


def status(client, portal, order_id):
    return client.get(f"/api/v1/orders/{order_id}", headers=portal.headers).get_json()


def test_lost_ipn_is_recovered_by_the_janitor_on_schedule(app, client, portal, clock, sessions):
    lose_ipns(app)
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    pay_at_emulator(client, attempt)
    assert status(client, portal, order["id"])["status"] == "processing"

    clock.advance(seconds=299)
    assert janitor(svc(app)) == 0  # the first step is 5 minutes after the attempt's last change
    clock.advance(seconds=2)
    assert janitor(svc(app)) == 1
    body = status(client, portal, order["id"])
    assert body["status"] == "paid"
    assert body["attempts"][0]["status"] == "succeeded"
    with sessions() as s:
        assert list(s.scalars(select(OutboxEvent.type))) == ["order.paid"]
        sources = list(s.scalars(select(AuditLog.source).where(AuditLog.entity_id == order["id"])))
    assert sources[-1] == "janitor"


def test_provider_down_keeps_climbing_the_ladder_then_flags_for_finance(app, client, portal, clock, sessions):
    order = create_order(client, portal, expires_in=604800)
    attempt = start_attempt(client, portal, order["id"])
    app.blueprints["emulator_vnpay"].faults["status"] = 503
    schedule = svc(app).settings.janitor_schedule
    for step in schedule:
        clock.advance(seconds=step)
        assert janitor(svc(app)) == 1
    with sessions() as s:
        row = s.get(PaymentAttempt, attempt["id"])
        assert row.status == "redirected"  # never failed on a 503
        assert row.needs_review is True
        assert row.check_count == len(schedule)
        flagged = s.scalars(select(AuditLog.action).where(AuditLog.entity_id == attempt["id"])).all()
    assert "flagged_for_review" in flagged
    clock.advance(days=2)
    assert janitor(svc(app)) == 0  # a flagged attempt waits for a person


def test_abandoned_checkout_after_expiry_is_closed_as_failed(app, client, portal, clock, sessions):
    order = create_order(client, portal, expires_in=300)
    attempt = start_attempt(client, portal, order["id"])
    url = urlsplit(attempt["redirect_url"])
    client.get(f"{url.path}?{url.query}")  # opened VNPAY's page, then walked away: querydr says 01
    for step in svc(app).settings.janitor_schedule:
        clock.advance(seconds=step)
        expire_orders(svc(app))
        janitor(svc(app))
    body = status(client, portal, order["id"])
    assert body["status"] == "expired"
    assert body["attempts"][0]["status"] == "failed"
    with sessions() as s:
        assert s.get(PaymentAttempt, attempt["id"]).needs_review is False


def test_sweep_expires_pending_orders_with_an_event(app, client, portal, clock, sessions):
    order = create_order(client, portal, expires_in=300)
    clock.advance(seconds=301)
    assert expire_orders(svc(app)) == 1
    assert expire_orders(svc(app)) == 0
    with sessions() as s:
        assert list(s.scalars(select(OutboxEvent.type))) == ["order.expired"]
    assert status(client, portal, order["id"])["status"] == "expired"


def test_sweep_asks_the_provider_first_so_a_last_second_payment_is_never_expired(
    app, client, portal, clock, sessions
):
    lose_ipns(app)
    order = create_order(client, portal, expires_in=300)
    attempt = start_attempt(client, portal, order["id"])
    clock.advance(seconds=299)
    pay_at_emulator(client, attempt)  # paid one second before the deadline; the IPN is lost
    clock.advance(seconds=2)
    assert expire_orders(svc(app)) == 0
    assert status(client, portal, order["id"])["status"] == "paid"
    with sessions() as s:
        assert list(s.scalars(select(OutboxEvent.type))) == ["order.paid"]


def test_sweep_waits_while_the_provider_is_unreachable(app, client, portal, clock):
    order = create_order(client, portal, expires_in=300)
    start_attempt(client, portal, order["id"])
    app.blueprints["emulator_vnpay"].faults["status"] = 502
    clock.advance(seconds=301)
    assert expire_orders(svc(app)) == 0
    clock.advance(minutes=15)
    assert expire_orders(svc(app)) == 1
    assert status(client, portal, order["id"])["status"] == "expired"


def test_idempotency_records_are_purged_after_retention(app, client, portal, clock, sessions):
    from tests.conftest import order_body

    headers = {**portal.headers, "Idempotency-Key": "purge-me"}
    assert client.post("/api/v1/orders", json=order_body(), headers=headers).status_code == 201
    clock.advance(hours=24)
    assert purge_idempotency_keys(svc(app)) == 0  # kept at least 24 h (contract §4)
    clock.advance(hours=25)
    assert purge_idempotency_keys(svc(app)) == 1
    with sessions() as s:
        assert s.scalars(select(IdempotencyRecord)).all() == []


def test_a_callback_that_fails_verification_brings_a_query_forward(app, client, portal, clock, sessions):
    lose_ipns(app)
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    pay_at_emulator(client, attempt)
    # A forged (or corrupted) notification naming the attempt is never trusted...
    forged = f"vnp_TxnRef={attempt['reference']}&vnp_ResponseCode=00&vnp_Amount=5800000&vnp_SecureHash=00"
    assert client.get(f"/callbacks/vnpay?{forged}").get_json()["RspCode"] == "97"
    assert status(client, portal, order["id"])["status"] == "processing"
    # ...but it makes the janitor ask VNPAY now instead of in five minutes.
    assert janitor(svc(app)) == 1
    assert status(client, portal, order["id"])["status"] == "paid"


def test_forged_callbacks_cannot_make_us_hammer_the_provider(app, client, portal, clock, sessions):
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    forged = f"vnp_TxnRef={attempt['reference']}&vnp_SecureHash=00"
    client.get(f"/callbacks/vnpay?{forged}")
    assert janitor(svc(app)) == 1  # one query brought forward...
    for _ in range(5):
        client.get(f"/callbacks/vnpay?{forged}")
    assert janitor(svc(app)) == 0  # ...and no more until the ladder says so
    with sessions() as s:
        assert s.get(PaymentAttempt, attempt["id"]).check_count == 1

"""The IPN pipeline end to end through ``/callbacks/vnpay`` (contract §6, providers.md §1.5)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.storage.models import AuditLog, InboundNotification, OutboxEvent
from tests.helpers import create_order, start_attempt, vnpay_ipn_query

# The FakeClock starts at 2026-11-25 03:00 UTC = 10:00 GMT+7; a pay date a few minutes later.
PAY_DATE = "20261125100500"


@pytest.fixture
def paying(client, portal) -> tuple[dict[str, Any], dict[str, Any]]:
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    return order, attempt


def ipn(client, query: str) -> dict[str, str]:
    r = client.get(f"/callbacks/vnpay?{query}")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    return r.get_json()


def order_status(client, portal, order_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/orders/{order_id}", headers=portal.headers).get_json()


def events(sessions, order_id: str) -> list[str]:
    with sessions() as s:
        return list(
            s.scalars(
                select(OutboxEvent.type)
                .where(OutboxEvent.order_id == order_id)
                .order_by(OutboxEvent.created_at)
            )
        )


def test_success_marks_paid_once_with_event_and_audit(client, portal, paying, sessions):
    order, attempt = paying
    assert ipn(client, vnpay_ipn_query(attempt["reference"], 58000, vnp_PayDate=PAY_DATE)) == {
        "RspCode": "00",
        "Message": "Confirm Success",
    }
    body = order_status(client, portal, order["id"])
    assert body["status"] == "paid"
    assert body["paid_amount"] == 58000
    assert body["attempts"][0]["status"] == "succeeded"
    assert body["attempts"][0]["provider_txn_id"] == "14422574"
    assert events(sessions, order["id"]) == ["order.paid"]
    with sessions() as s:
        audit = s.execute(
            select(AuditLog.from_status, AuditLog.to_status, AuditLog.actor, AuditLog.source)
            .where(AuditLog.entity_id == order["id"])
            .order_by(AuditLog.id)
        ).all()
    assert [tuple(a) for a in audit] == [
        ("pending", "processing", portal.client_id, "attempt"),
        ("processing", "paid", "vnpay", "ipn"),
    ]

    # The duplicate: VNPAY's "already confirmed", nothing else changes.
    assert ipn(client, vnpay_ipn_query(attempt["reference"], 58000))["RspCode"] == "02"
    assert events(sessions, order["id"]) == ["order.paid"]
    with sessions() as s:
        rows = s.execute(select(InboundNotification.verified, InboundNotification.ack_code)).all()
        assert sorted(tuple(r) for r in rows) == [(True, "already"), (True, "ok")]
        dedupe = s.scalars(
            select(InboundNotification.dedupe_key).where(InboundNotification.dedupe_key.isnot(None))
        )
        assert list(dedupe) == [f"vnpay:{attempt['reference']}:14422574:payment"]


def test_unknown_reference_is_01(client, paying):
    assert ipn(client, vnpay_ipn_query("GW261125NOPE00", 58000))["RspCode"] == "01"


def test_wrong_amount_is_04_and_changes_nothing(client, portal, paying, sessions):
    order, attempt = paying
    assert ipn(client, vnpay_ipn_query(attempt["reference"], 57000))["RspCode"] == "04"
    assert order_status(client, portal, order["id"])["status"] == "processing"
    assert events(sessions, order["id"]) == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("vnp_Amount=5800000", "vnp_Amount=5800100"),
        lambda q: q.replace("vnp_ResponseCode=24", "vnp_ResponseCode=00"),
        lambda q: q.split("&vnp_SecureHash=")[0],
        lambda q: q.split("&vnp_SecureHash=")[0] + "&vnp_SecureHash=",
    ],
    ids=["amount", "result", "missing-hash", "empty-hash"],
)
def test_bad_signature_is_97_stored_unverified(client, portal, paying, sessions, tamper):
    order, attempt = paying
    query = tamper(
        vnpay_ipn_query(attempt["reference"], 58000, vnp_ResponseCode="24", vnp_TransactionStatus="02")
    )
    assert ipn(client, query) == {"RspCode": "97", "Message": "Invalid signature"}
    assert order_status(client, portal, order["id"])["status"] == "processing"
    with sessions() as s:
        row = s.scalars(select(InboundNotification)).one()
    assert row.verified is False
    assert row.outcome == "bad_signature"
    assert row.query_string == query
    assert row.method == "GET"


def test_wrong_key_is_97(client, paying):
    _, attempt = paying
    assert (
        ipn(client, vnpay_ipn_query(attempt["reference"], 58000, secret="not-the-secret"))["RspCode"] == "97"
    )


def test_failed_payment_is_recorded_00_and_order_reopens(client, portal, paying, sessions):
    order, attempt = paying
    q = vnpay_ipn_query(
        attempt["reference"], 58000, vnp_ResponseCode="24", vnp_TransactionStatus="02", vnp_TransactionNo="0"
    )
    assert ipn(client, q)["RspCode"] == "00"
    body = order_status(client, portal, order["id"])
    assert body["status"] == "pending"
    assert body["attempts"][0]["status"] == "failed"
    assert body["attempts"][0]["result_code"] == "24"
    assert events(sessions, order["id"]) == ["order.failed"]
    # The citizen can try again with a new attempt and a new reference.
    second = start_attempt(client, portal, order["id"])
    assert second["reference"] != attempt["reference"]
    assert ipn(client, q)["RspCode"] == "02"


def test_success_for_cancelled_order_is_late_payment(client, portal, paying, sessions):
    order, attempt = paying
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=portal.headers).status_code == 200
    assert ipn(client, vnpay_ipn_query(attempt["reference"], 58000, vnp_PayDate=PAY_DATE))["RspCode"] == "00"
    body = order_status(client, portal, order["id"])
    assert body["status"] == "cancelled"
    assert body["attempts"][0]["status"] == "succeeded"
    assert events(sessions, order["id"]) == ["order.cancelled", "order.late_payment"]


def test_second_attempt_paid_is_double_payment(client, portal, sessions):
    order = create_order(client, portal)
    first = start_attempt(client, portal, order["id"])
    second = start_attempt(client, portal, order["id"])
    assert ipn(client, vnpay_ipn_query(first["reference"], 58000, vnp_PayDate=PAY_DATE))["RspCode"] == "00"
    q2 = vnpay_ipn_query(second["reference"], 58000, vnp_PayDate=PAY_DATE, vnp_TransactionNo="14422999")
    assert ipn(client, q2)["RspCode"] == "00"
    assert order_status(client, portal, order["id"])["status"] == "paid"
    assert events(sessions, order["id"]) == ["order.paid", "order.double_payment"]


def test_payment_after_the_deadline_is_late_not_paid(client, portal, paying, sessions):
    order, attempt = paying
    # expires_in 3600 from 10:00 GMT+7: paid at 11:30 GMT+7 is after the deadline.
    assert (
        ipn(client, vnpay_ipn_query(attempt["reference"], 58000, vnp_PayDate="20261125113000"))["RspCode"]
        == "00"
    )
    assert order_status(client, portal, order["id"])["status"] == "expired"
    assert events(sessions, order["id"]) == ["order.expired", "order.late_payment"]


def test_suspected_fraud_code_leaves_attempt_unknown(client, portal, paying):
    order, attempt = paying
    q = vnpay_ipn_query(attempt["reference"], 58000, vnp_ResponseCode="07", vnp_TransactionStatus="07")
    assert ipn(client, q)["RspCode"] == "00"
    body = order_status(client, portal, order["id"])
    assert body["status"] == "processing"
    assert body["attempts"][0]["status"] == "unknown"


def test_signed_but_malformed_is_99(client, paying, sessions):
    _, attempt = paying
    assert ipn(client, vnpay_ipn_query(attempt["reference"], 58000, vnp_Amount="58000.5"))["RspCode"] == "99"
    with sessions() as s:
        assert s.scalars(select(InboundNotification.outcome)).one() == "malformed"


def test_post_is_405_and_unknown_provider_404(client):
    assert client.post("/callbacks/vnpay").status_code == 405
    assert client.get("/callbacks/nosuchbank").status_code == 404


def test_every_notification_is_stored(client, paying, sessions):
    _, attempt = paying
    ipn(client, vnpay_ipn_query(attempt["reference"], 58000, secret="wrong"))
    ipn(client, vnpay_ipn_query(attempt["reference"], 58000))
    ipn(client, vnpay_ipn_query(attempt["reference"], 58000))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundNotification)) == 3

"""Refunds from the console (issue 7.4): same service as the API, four-eyes above the threshold."""

from __future__ import annotations

import re

from sqlalchemy import select

from gateway.storage.models import AuditLog, Refund, RefundApproval
from tests.console.conftest import login, post
from tests.helpers import create_order, paid_order, start_attempt

BIG_ITEMS = [{"code": "LP-99", "kind": "fee", "description": "Lệ phí cấp phép", "amount": 6_000_000}]


def api_order(client, portal, order_id):
    return client.get(f"/api/v1/orders/{order_id}", headers=portal.headers).get_json()


def ask_refund(client, order_id, amount, reason="Hồ sơ bị từ chối"):
    return post(
        client,
        f"/console/orders/{order_id}/refunds",
        {"amount": str(amount), "reason": reason},
        page=f"/console/orders/{order_id}",
    )


def approvals(sessions):
    with sessions() as s:
        return list(s.scalars(select(RefundApproval).order_by(RefundApproval.created_at)))


def refunds(sessions):
    with sessions() as s:
        return list(s.scalars(select(Refund).order_by(Refund.created_at)))


def test_below_the_threshold_the_refund_goes_straight_to_the_provider(client, portal, finance, sessions):
    order = paid_order(client, portal)
    login(client, finance)
    page = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "Số còn có thể hoàn: 58.000 ₫." in page
    resp = ask_refund(client, order["id"], "20.000")  # typed with the Vietnamese thousands separator
    assert resp.status_code == 303
    state = api_order(client, portal, order["id"])  # refunded through the VNPAY emulator's refund API
    assert (state["status"], state["refunded_amount"]) == ("partially_refunded", 20000)
    [refund] = refunds(sessions)
    assert (refund.status, refund.requested_by, refund.provider) == ("succeeded", finance.email, "vnpay")
    [approval] = approvals(sessions)
    assert (approval.status, approval.refund_id, approval.needs_approval) == ("done", refund.id, False)
    page = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "Đã hoàn 20.000 ₫ thành công." in page
    with sessions() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "refund_requested")).one()
    assert (entry.actor, entry.source, entry.entity_id) == (finance.email, "console", order["id"])


def test_over_the_balance_is_refused_and_nothing_is_written(client, portal, finance, sessions):
    order = paid_order(client, portal)
    login(client, finance)
    resp = ask_refund(client, order["id"], 58_001)
    assert resp.status_code == 409
    assert "Số tiền vượt quá số còn có thể hoàn" in resp.get_data(as_text=True)
    assert approvals(sessions) == []
    assert refunds(sessions) == []
    assert ask_refund(client, order["id"], 0).status_code == 422
    assert ask_refund(client, order["id"], "abc").status_code == 422
    assert ask_refund(client, order["id"], 1000, reason="").status_code == 422


def test_four_eyes_above_the_threshold(app, client, portal, finance, finance2, sessions):
    order = paid_order(client, portal, items=BIG_ITEMS)
    login(client, finance)
    assert ask_refund(client, order["id"], 5_000_000).status_code == 303  # at the threshold: approval needed
    [approval] = approvals(sessions)
    assert (approval.status, approval.requested_by, approval.needs_approval) == (
        "pending",
        finance.email,
        True,
    )
    assert refunds(sessions) == []  # no provider call, nothing the API can see
    assert api_order(client, portal, order["id"])["status"] == "paid"
    page = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "Cần một kế toán khác phê duyệt." in page

    # The requester cannot approve their own request.
    refused = post(client, f"/console/refund-requests/{approval.id}/approve", page="/console/refunds")
    assert refused.status_code == 403
    assert "Nguyên tắc hai người duyệt" in refused.get_data(as_text=True)
    assert approvals(sessions)[0].status == "pending"

    # The waiting amount holds its place: 1 000 000 VND is all that is left to ask for.
    other = app.test_client()
    login(other, finance2)
    assert ask_refund(other, order["id"], 1_000_001).status_code == 409
    queue = other.get("/console/refunds").get_data(as_text=True)
    assert "5.000.000 ₫" in queue
    assert finance.email in queue

    approved = post(other, f"/console/refund-requests/{approval.id}/approve", page="/console/refunds")
    assert approved.status_code == 303
    [refund] = refunds(sessions)
    assert refund.status == "succeeded"
    assert refund.amount == 5_000_000
    [approval] = approvals(sessions)
    assert (approval.status, approval.decided_by, approval.refund_id) == ("done", finance2.email, refund.id)
    state = api_order(client, portal, order["id"])
    assert (state["status"], state["refunded_amount"]) == ("partially_refunded", 5_000_000)
    # Deciding twice is refused.
    again = post(other, f"/console/refund-requests/{approval.id}/approve", page="/console/refunds")
    assert again.status_code == 303
    assert len(refunds(sessions)) == 1
    with sessions() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.source == "console"))]
    assert {"refund_requested", "refund_approved"} <= set(actions)


def test_a_waiting_request_can_be_rejected_or_withdrawn(app, client, portal, finance, finance2, sessions):
    order = paid_order(client, portal, items=BIG_ITEMS)
    login(client, finance)
    ask_refund(client, order["id"], 6_000_000)
    [approval] = approvals(sessions)
    other = app.test_client()
    login(other, finance2)
    resp = post(
        other,
        f"/console/refund-requests/{approval.id}/reject",
        {"note": "Thiếu chứng từ"},
        page="/console/refunds",
    )
    assert resp.status_code == 303
    [approval] = approvals(sessions)
    assert (approval.status, approval.decided_by, approval.error) == (
        "rejected",
        finance2.email,
        "Thiếu chứng từ",
    )
    assert refunds(sessions) == []
    # The balance is free again: the requester asks anew, then withdraws.
    assert ask_refund(client, order["id"], 6_000_000).status_code == 303
    new = approvals(sessions)[-1]
    assert (
        post(client, f"/console/refund-requests/{new.id}/reject", page="/console/refunds").status_code == 303
    )
    assert approvals(sessions)[-1].status == "rejected"


def test_a_request_awaiting_approval_holds_its_amount_against_api_refunds(
    app, client, portal, finance, finance2, sessions
):
    order = paid_order(client, portal, items=BIG_ITEMS)
    login(client, finance)
    ask_refund(client, order["id"], 5_500_000)
    held = order["paid_amount"] - 5_500_000
    over = client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount": held + 1, "reason": "API"},
        headers=portal.headers,
    )
    assert over.status_code == 409  # the API refund path sees the request waiting for its second approver
    assert "amount" in over.get_json()["errors"]
    fits = client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount": held, "reason": "API"},
        headers=portal.headers,
    )
    assert fits.status_code == 201
    [approval] = approvals(sessions)
    other = app.test_client()
    login(other, finance2)
    resp = post(other, f"/console/refund-requests/{approval.id}/approve", page="/console/refunds")
    assert resp.status_code == 303
    [approval] = approvals(sessions)
    assert approval.status == "done"
    state = api_order(client, portal, order["id"])
    assert (state["status"], state["refunded_amount"]) == ("refunded", order["paid_amount"])  # never over


def _paid_by_vietqr(client, portal):
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"], provider="vietqr")
    done = client.post(
        "/_emulator/vietqr/pay", data={"payload": attempt["qr_payload"], "choice": "exact", "amount": ""}
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert api_order(client, portal, order["id"])["status"] == "paid"
    return order


def test_a_vietqr_refund_is_completed_by_recording_the_bank_transfer(client, portal, finance, sessions):
    order = _paid_by_vietqr(client, portal)
    login(client, finance)
    assert ask_refund(client, order["id"], 58_000).status_code == 303
    [refund] = refunds(sessions)
    assert (refund.provider, refund.status) == ("vietqr", "pending")  # no refund API: staff pay it back
    queue = client.get("/console/refunds").get_data(as_text=True)
    assert order["dossier_code"] in queue
    page = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert f"/console/refunds/{refund.id}/complete" in page
    assert re.search(r'<label for="bt-ref_[0-9a-f]+">Mã giao dịch chuyển khoản</label>', page)

    empty = post(
        client, f"/console/refunds/{refund.id}/complete", {"bank_transfer_ref": " "}, page="/console/refunds"
    )
    assert empty.status_code == 422
    done = post(
        client,
        f"/console/refunds/{refund.id}/complete",
        {"bank_transfer_ref": "FT26330912345"},
        page="/console/refunds",
    )
    assert done.status_code == 303
    [refund] = refunds(sessions)
    assert (refund.status, refund.bank_transfer_ref) == ("succeeded", "FT26330912345")
    state = api_order(client, portal, order["id"])
    assert (state["status"], state["refunded_amount"]) == ("refunded", 58_000)
    with sessions() as s:
        trail = s.scalars(select(AuditLog).where(AuditLog.entity_id == refund.id)).all()
    assert any(
        a.actor == finance.email and a.source == "console" and a.to_status == "succeeded" for a in trail
    )


def test_a_provider_refund_cannot_be_completed_by_hand(client, portal, finance, sessions):
    order = paid_order(client, portal)
    login(client, finance)
    ask_refund(client, order["id"], 1000)
    [refund] = refunds(sessions)
    resp = post(
        client,
        f"/console/refunds/{refund.id}/complete",
        {"bank_transfer_ref": "FT1"},
        page="/console/refunds",
    )
    assert resp.status_code == 409
    assert refunds(sessions)[0].bank_transfer_ref is None

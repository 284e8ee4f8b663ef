"""Races between the paths that change one order (issue 5.6) and a database failing mid-IPN (issue 5.7)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from gateway.jobs.tasks import janitor
from gateway.storage.models import AuditLog, InboundNotification, OutboxEvent, PaymentAttempt
from tests.helpers import create_order, start_attempt, vnpay_ipn_query


def _count(sessions, model, *where):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_ipn_return_page_and_janitor_race_to_one_transition(
    app, client, portal, clock, live_server, sessions
):
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    url = urlsplit(attempt["redirect_url"])
    client.get(f"{url.path}?{url.query}")  # the emulator now knows the transaction
    app.blueprints["emulator_vnpay"].ipn_url = "http://127.0.0.1:9/"  # the emulator's own IPN is lost
    assert (
        client.post(
            "/_emulator/vnpay/paymentv2/pay", data={"query": url.query, "outcome": "success"}
        ).status_code
        == 302
    )
    query = app.blueprints["emulator_vnpay"].transactions[attempt["reference"]].ipn_query
    clock.advance(seconds=301)  # the janitor's first step is due
    barrier = Barrier(3)

    def ipn() -> str:
        barrier.wait(timeout=20)
        return requests.get(f"{live_server.url}/callbacks/vnpay?{query}", timeout=30).json()["RspCode"]

    def return_page() -> int:
        barrier.wait(timeout=20)
        return requests.get(f"{live_server.url}/return/vnpay?{query}", timeout=30).status_code

    def run_janitor() -> int:
        barrier.wait(timeout=20)
        with app.app_context():
            return janitor(app.extensions["gateway"])

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(ipn), pool.submit(return_page), pool.submit(run_janitor)]
        rsp, page, _queried = (f.result() for f in futures)
    assert rsp in {"00", "02"}
    assert page == 200
    body = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert body["status"] == "paid"
    assert _count(sessions, AuditLog, AuditLog.entity_id == order["id"], AuditLog.to_status == "paid") == 1
    assert (
        _count(sessions, AuditLog, AuditLog.entity_id == attempt["id"], AuditLog.to_status == "succeeded")
        == 1
    )
    assert _count(sessions, OutboxEvent, OutboxEvent.type == "order.paid") == 1


@pytest.mark.parametrize("round_", range(3))
def test_cancel_racing_a_successful_ipn_is_never_both_silently(client, portal, live_server, sessions, round_):
    order = create_order(client, portal, dossier_code=f"RACE-{round_}")
    attempt = start_attempt(client, portal, order["id"])
    query = vnpay_ipn_query(attempt["reference"], 58000, vnp_PayDate="20261125100500")
    barrier = Barrier(2)

    def cancel() -> int:
        barrier.wait(timeout=20)
        return requests.post(
            f"{live_server.url}/api/v1/orders/{order['id']}/cancel", headers=portal.headers, timeout=30
        ).status_code

    def ipn() -> str:
        barrier.wait(timeout=20)
        return requests.get(f"{live_server.url}/callbacks/vnpay?{query}", timeout=30).json()["RspCode"]

    with ThreadPoolExecutor(2) as pool:
        cancel_future, ipn_future = pool.submit(cancel), pool.submit(ipn)
        cancelled, rsp = cancel_future.result(), ipn_future.result()
    assert rsp == "00"
    final = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["status"]
    with sessions() as s:
        types = sorted(s.scalars(select(OutboxEvent.type).where(OutboxEvent.order_id == order["id"])))
    if final == "paid":
        assert cancelled == 409
        assert types == ["order.paid"]
    else:
        assert final == "cancelled"
        assert cancelled == 200
        assert types == ["order.cancelled", "order.late_payment"]  # the money is raised, not lost


def test_database_failing_during_an_ipn_answers_retry_and_writes_half_nothing(app, client, portal, sessions):
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    engine = app.extensions["gateway"].engine

    def fail_on_attempt_update(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE PAYMENT_ATTEMPTS"):
            raise OperationalError(
                statement, parameters, Exception("server closed the connection unexpectedly")
            )

    event.listen(engine, "before_cursor_execute", fail_on_attempt_update)
    try:
        answer = client.get(f"/callbacks/vnpay?{vnpay_ipn_query(attempt['reference'], 58000)}").get_json()
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_attempt_update)
    assert answer == {"RspCode": "99", "Message": "Unknown error"}  # VNPAY will call again
    with sessions() as s:
        assert s.get(PaymentAttempt, attempt["id"]).status == "redirected"
        assert s.scalars(select(OutboxEvent)).all() == []
        stored = s.scalars(select(InboundNotification)).one()  # stored first, before anything failed
        assert stored.dedupe_key is None
    # The provider's retry, with the database back, applies it exactly once.
    assert (
        client.get(f"/callbacks/vnpay?{vnpay_ipn_query(attempt['reference'], 58000)}").get_json()["RspCode"]
        == "00"
    )
    assert client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["status"] == "paid"

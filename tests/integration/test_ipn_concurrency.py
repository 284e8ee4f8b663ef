"""50 identical successful IPNs at once, over real HTTP, on both databases (issue 3.9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests
from sqlalchemy import func, select

from gateway.storage.models import AuditLog, InboundNotification, OutboxEvent
from tests.helpers import create_order, start_attempt, vnpay_ipn_query

N = 50


def test_fifty_duplicate_ipns_apply_exactly_once(client, portal, live_server, sessions):
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"])
    query = vnpay_ipn_query(attempt["reference"], 58000, vnp_PayDate="20261125100500")
    barrier = Barrier(N)

    def fire(_: int) -> str:
        with requests.Session() as http:
            barrier.wait(timeout=30)
            r = http.get(f"{live_server.url}/callbacks/vnpay?{query}", timeout=60)
            assert r.status_code == 200
            return r.json()["RspCode"]

    with ThreadPoolExecutor(max_workers=N) as pool:
        answers = list(pool.map(fire, range(N)))

    assert answers.count("00") == 1
    assert answers.count("02") == N - 1
    with sessions() as s:
        paid_transitions = s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity_id == order["id"], AuditLog.to_status == "paid")
        )
        attempt_transitions = s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity_id == attempt["id"], AuditLog.to_status == "succeeded")
        )
        paid_events = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.order_id == order["id"], OutboxEvent.type == "order.paid")
        )
        all_events = s.scalar(select(func.count()).select_from(OutboxEvent))
        stored = s.scalar(select(func.count()).select_from(InboundNotification))
    assert (paid_transitions, attempt_transitions, paid_events, all_events) == (1, 1, 1, 1)
    assert stored == N
    body = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert body["status"] == "paid"
    assert body["paid_amount"] == 58000
